import { describe, expect, it } from "vitest";
import { assertCanonicalPath, canonicalizePath, normalisePathPrefix, PATH_LIMITS } from "../../src/capabilities/canonical-path.js";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { buildUpstreamUrl } from "../../src/proxy/build-upstream-url.js";
import type { UpstreamTarget } from "../../src/proxy/upstream-target.js";

/**
 * One path grammar: the path a capability is authorized on is byte for byte the path sent upstream, and a grant
 * prefix is accepted only if some request could have it. Checked on random paths built from the characters that make
 * paths ambiguous (dots, slashes, escapes, ';', non-ASCII), with a seeded generator (PATH_SEED reproduces a run).
 */

const SEED = Number(process.env.PATH_SEED ?? Date.now() % 1_000_000);
const target: UpstreamTarget = { baseUrl: "https://api.example.com/v3", allowedHosts: ["api.example.com"], credentialHeader: { name: "authorization", scheme: "Bearer" } };

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const PIECES = ["a", "Z", "0", "-", "_", "~", ".", "..", "/", "//", "%2e", "%2E", "%2f", "%5c", "%3b", ";", ":", "@", "%41", "%c3%a9", "%e2%80%ae", "%20", "%25", "!", "$", "&", "'", "(", ")", "*", "+", ",", "=", "é", " ", "\"", "%", "%zz", "?", "#"];

function randomPath(next: () => number): string {
  let p = "/";
  const n = 1 + Math.floor(next() * 12);
  for (let i = 0; i < n; i++) p += PIECES[Math.floor(next() * PIECES.length)];
  return p;
}

describe(`the one path grammar (PATH_SEED=${SEED})`, () => {
  it("a canonical path is authorized unchanged and sent byte for byte; canonicalization is idempotent", () => {
    const next = rng(SEED);
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      const raw = randomPath(next);
      let path: string;
      try {
        path = canonicalizePath(raw, PATH_LIMITS).path;
      } catch (err) {
        expect(CapvaultError.is(err, "PATH_INVALID"), `${JSON.stringify(raw)} fails only with PATH_INVALID`).toBe(true);
        continue;
      }
      accepted++;
      expect(assertCanonicalPath(path), `authorization takes ${JSON.stringify(path)} as it is`).toBe(path);
      expect(canonicalizePath(path, PATH_LIMITS).path).toBe(path);
      const url = buildUpstreamUrl(target, { path, queryString: "" });
      expect(url.pathAndQuery, `sent for ${JSON.stringify(raw)}`).toBe(`/v3${path === "/" ? "/" : path}`);
      expect(new URL(url.href).pathname).toBe(url.pathAndQuery);
    }
    expect(accepted).toBeGreaterThan(500);
  });

  it("a grant prefix is accepted only in canonical form: `/repos/a;b` names no request, `/repos/a%3Bb` does", () => {
    expect(() => normalisePathPrefix("/repos/a;b")).toThrow(expect.objectContaining({ reason: "PATH_INVALID" }));
    expect(normalisePathPrefix("/repos/a%3Bb")).toBe("/repos/a%3Bb/");
    expect(canonicalizePath("/repos/a;b/issues", PATH_LIMITS).path.startsWith(normalisePathPrefix("/repos/a%3Bb"))).toBe(true);
  });
});
