import { describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { assertCanonicalPath, canonicalizePath, canonicalPath, isCanonicalPath, normalisePathPrefix, PATH_LIMITS } from "../../src/capabilities/canonical-path.js";
import { expectThrowsReason } from "./fixtures.js";

describe("canonicalPath", () => {
  it.each([
    ["/", "/"],
    ["/repos/acme/widgets", "/repos/acme/widgets"],
    ["/repos/acme/widgets/", "/repos/acme/widgets/"],
    ["/repos//acme///widgets", "/repos/acme/widgets"],
    ["/repos/acme/./widgets", "/repos/acme/widgets"],
    ["/repos/acme/widgets/..", "/repos/acme/"],
    ["/repos/acme/widgets/../../acme-evil/x", "/repos/acme-evil/x"],
    ["/repos/acme/widgets/%2e%2e/gadgets", "/repos/acme/gadgets"],
    ["/repos/acme/widgets/%2E%2e/gadgets", "/repos/acme/gadgets"],
    ["/repos/acme/widgets/.%2e/gadgets", "/repos/acme/gadgets"],
    ["/a/%7Euser/%41b", "/a/~user/Ab"],
    ["/a/%3a%3A", "/a/::"],
    ["/a%20b/%c3%a9", "/a%20b/%C3%A9"],
    ["/a/%22x%22", "/a/%22x%22"],
    ["/repos/a;b", "/repos/a%3Bb"],
  ])("%s → %s", (raw, canonical) => {
    expect(canonicalPath(raw)).toBe(canonical);
    expect(isCanonicalPath(canonical)).toBe(true);
  });

  it("takes a plain path as it is exactly when the full way gives the same (generated paths, seeded)", () => {
    // The full way is forced by writing the first byte of a segment as its %XX escape: it decodes, checks and
    // re-encodes every segment, and must land on what the shortcut returned for the unescaped path.
    const alphabet = ["/", "/", ".", ".", "a", "Z", "9", "-", "_", "~", "!", "$", "&", "'", "(", "*", "+", ",", "=", ":", "@", ";", "%41"];
    const seed = Number(process.env.PATH_SEED ?? Date.now() % 1_000_000);
    let state = seed || 1;
    const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const limits = { maxPathLength: 4096, maxPathSegments: 6 };
    let compared = 0;
    for (let i = 0; i < 20_000; i++) {
      let raw = "/";
      const length = 1 + Math.floor(next() * 14);
      for (let j = 0; j < length; j++) raw += alphabet[Math.floor(next() * alphabet.length)];
      if (raw.startsWith("//")) continue;
      let fast;
      try {
        fast = canonicalizePath(raw, limits);
      } catch {
        continue;
      }
      const at = raw.search(/\/[^/%]/);
      if (at < 0) continue;
      const escaped = raw.slice(0, at + 1) + "%" + raw.charCodeAt(at + 1).toString(16).toUpperCase() + raw.slice(at + 2);
      const full = canonicalizePath(escaped, limits);
      expect({ path: full.path, segments: [...full.segments] }, `PATH_SEED=${seed}: ${raw}`).toEqual({ path: fast.path, segments: [...fast.segments] });
      compared++;
    }
    expect(compared).toBeGreaterThan(1000);
    // The shortcut's own limit: too many segments is refused as before.
    expectThrowsReason(() => canonicalizePath("/a/b/c/d/e/f/g", limits), "PATH_INVALID");
    expect(canonicalizePath("/", limits)).toEqual({ path: "/", segments: [] });
    expect(canonicalizePath("/a/b/", limits)).toEqual({ path: "/a/b/", segments: ["a", "b", ""] });
  });

  it("recognises canonical paths it never produced, and remembers none beyond the default limits", () => {
    const fresh = `/never/seen/${randomUUID()}`;
    expect(isCanonicalPath(fresh)).toBe(true);
    expect(isCanonicalPath(`${fresh}/../x`)).toBe(false);
    expect(isCanonicalPath(`/never//${randomUUID()}`)).toBe(false);
    // Produced under wider limits: canonical in form, but longer than the default limits allow.
    const long = `/${randomUUID()}/${"a".repeat(PATH_LIMITS.maxPathLength)}`;
    expect(canonicalizePath(long, { maxPathLength: 2 * PATH_LIMITS.maxPathLength, maxPathSegments: 8 }).path).toBe(long);
    expect(isCanonicalPath(long)).toBe(false);
    const deep = "/" + Array.from({ length: PATH_LIMITS.maxPathSegments + 1 }, () => randomUUID().slice(0, 4)).join("/");
    expect(canonicalizePath(deep, { maxPathLength: PATH_LIMITS.maxPathLength, maxPathSegments: 1000 }).path).toBe(deep);
    expect(isCanonicalPath(deep)).toBe(false);
  });

  it.each([
    ["", "no leading slash"],
    ["/a b/é", "a raw space or non-ASCII byte (must be percent-encoded)"],
    ["/a/\"x\"", "a raw quote (must be percent-encoded)"],
    ["repos/acme", "no leading slash"],
    ["/..", "above the root"],
    ["/repos/../../etc", "above the root"],
    ["/repos/%2e%2e/%2e%2e/x", "above the root"],
    ["/repos/acme%2f..%2fevil", "encoded slash"],
    ["/repos/acme%2F..%2Fevil", "encoded slash"],
    ["/repos/acme%5cevil", "encoded backslash"],
    ["/repos\\acme", "backslash"],
    ["/repos/acme%00", "encoded NUL"],
    ["/repos/acme\u0000", "NUL"],
    ["/repos/acme%", "bad escape"],
    ["/repos/acme%zz", "bad escape"],
    ["/repos/acme?x=1", "query"],
    ["/repos/acme#x", "fragment"],
  ])("refuses %j (%s)", (raw) => {
    expectThrowsReason(() => canonicalPath(raw), "PATH_INVALID");
    expect(isCanonicalPath(raw)).toBe(false);
  });

  it("authorization only accepts canonical paths", () => {
    expect(assertCanonicalPath("/repos/acme/x")).toBe("/repos/acme/x");
    for (const p of ["/repos/acme/../x", "/repos/%2e%2e/x", "/repos//x", "/a/%7e", "/a/%3a", 42]) {
      expectThrowsReason(() => assertCanonicalPath(p), "PATH_INVALID");
    }
  });

  it("prefixes are canonical and end on a segment boundary", () => {
    expect(normalisePathPrefix("/repos/acme")).toBe("/repos/acme/");
    expect(normalisePathPrefix("/repos/acme/")).toBe("/repos/acme/");
    expect(normalisePathPrefix("/")).toBe("/");
    expectThrowsReason(() => normalisePathPrefix("/repos/acme/.."), "PATH_INVALID");
    expectThrowsReason(() => normalisePathPrefix("repos"), "PATH_INVALID");
  });
});
