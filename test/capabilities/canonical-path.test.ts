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
