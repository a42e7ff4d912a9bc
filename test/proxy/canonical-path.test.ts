import { describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { canonicalizePath } from "../../src/capabilities/canonical-path.js";

const LIMITS = { maxPathLength: 4096, maxPathSegments: 128 };
const canon = (p: string) => canonicalizePath(p, LIMITS);

function refused(p: string): CapvaultError {
  try {
    canon(p);
  } catch (err) {
    expect(CapvaultError.is(err, "PATH_INVALID")).toBe(true);
    return err as CapvaultError;
  }
  throw new Error(`expected ${JSON.stringify(p)} to be refused`);
}

describe("canonicalizePath", () => {
  it.each([
    ["/", "/"],
    ["/repos/acme/widgets", "/repos/acme/widgets"],
    ["/repos/acme/widgets/", "/repos/acme/widgets/"],
    ["/a//b///c", "/a/b/c"],
    ["/a/./b", "/a/b"],
    ["/a/b/.", "/a/b/"],
    ["/a/b/..", "/a/"],
    ["/a/../b", "/b"],
    ["/a/%2e/b", "/a/b"],
    ["/a/%2E%2E/b", "/b"],
    ["/a/.%2e/b", "/b"],
    ["/a/%2e./b", "/b"],
    ["/a/b/%2e%2e/", "/a/"],
    ["/a/..", "/"],
    // unreserved characters are decoded; everything else re-encoded the same way, upper-case hex
    ["/%7Euser/%41bc", "/~user/Abc"],
    ["/x%3ay", "/x:y"],
    ["/file%20name", "/file%20name"],
    ["/caf%c3%a9", "/caf%C3%A9"],
    ["/a%3Fb%23c", "/a%3Fb%23c"],
    ["/a%25b", "/a%25b"],
    ["/v1/projects/p:run", "/v1/projects/p:run"],
    ["/@scope/pkg", "/@scope/pkg"],
    ["/compare/main...feature", "/compare/main...feature"],
    ["/matrix;x=1", "/matrix%3Bx=1"],
  ])("%s -> %s", (input, expected) => {
    expect(canon(input).path).toBe(expected);
  });

  it("gives the same canonical form to every spelling of the same path", () => {
    const spellings = ["/a/b", "/a//b", "/a/./b", "/x/../a/b", "/%61/%62", "/a/c/%2e%2E/b"];
    expect(new Set(spellings.map((s) => canon(s).path))).toEqual(new Set(["/a/b"]));
  });

  it("exposes decoded segments, with a trailing slash as a final empty segment", () => {
    expect(canon("/a/caf%C3%A9/").segments).toEqual(["a", "café", ""]);
    expect(canon("/").segments).toEqual([]);
  });

  it.each([
    ["", "empty"],
    ["repos/acme", "relative"],
    ["http://evil.test/x", "absolute-form"],
    ["https://api.github.com/user", "absolute-form"],
    ["api.github.com:443", "authority-form"],
    ["*", "asterisk-form"],
    ["//evil.com/x", "scheme-relative"],
    ["///evil.com/x", "scheme-relative"],
    ["/a\\b", "backslash"],
    ["/\\evil.com", "backslash"],
    ["/a%5cb", "encoded backslash"],
    ["/a%2fb", "encoded slash"],
    ["/a%2Fb", "encoded slash"],
    ["/%2e%2e/", "encoded traversal above root"],
    ["/%2e%2e%2fetc", "encoded traversal with encoded slash"],
    ["/a/%2E%2E/%2e%2e/b", "traversal above root"],
    ["/..", "traversal above root"],
    ["/a/../../b", "traversal above root"],
    ["/.%2e/x", "traversal above root"],
    ["/a\r\nHost: evil", "CR/LF"],
    ["/a%0d%0aX:y", "encoded CR/LF"],
    ["/a\u0000b", "NUL"],
    ["/a%00b", "encoded NUL"],
    ["/a#frag", "fragment"],
    ["/a?b=c", "query in path"],
    ["/a b", "raw space"],
    ["/café", "raw non-ASCII"],
    ["/a%zz", "malformed escape"],
    ["/a%2", "truncated escape"],
    ["/a%c0%ae%c0%ae/b", "overlong UTF-8 dots"],
    ["/a/..;/admin", "Tomcat path-parameter traversal"],
    ["/a/%2e%2e%3b/admin", "encoded path-parameter traversal"],
    ["/a/%EF%BC%8E%EF%BC%8E/b", "full-width dots"],
    ["/a/b%EF%BC%8Fc", "full-width slash"],
  ])("refuses %j (%s)", (input) => {
    refused(input);
  });

  it("refuses over-long paths and too many segments", () => {
    refused("/" + "a".repeat(5000));
    refused("/a".repeat(200));
  });

  it("never echoes the path in the public message", () => {
    expect(refused("/a%2fsecret-ish").message).not.toContain("secret-ish");
  });
});
