import { describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { buildUpstreamUrl, keepsItsForm, upstreamUrlFor } from "../../src/proxy/build-upstream-url.js";
import type { UpstreamTarget } from "../../src/proxy/upstream-target.js";

const target = (baseUrl: string, allowedHosts = ["api.github.com"]): UpstreamTarget => ({
  baseUrl,
  allowedHosts,
  credentialHeader: { name: "authorization", scheme: "Bearer" },
});

function forbidden(t: UpstreamTarget, path = "/x", queryString = ""): void {
  try {
    buildUpstreamUrl(t, { path, queryString });
  } catch (err) {
    expect(CapvaultError.is(err, "UPSTREAM_HOST_FORBIDDEN")).toBe(true);
    return;
  }
  throw new Error("expected UPSTREAM_HOST_FORBIDDEN");
}

describe("buildUpstreamUrl", () => {
  it("joins baseUrl, canonical path and query", () => {
    expect(buildUpstreamUrl(target("https://api.github.com"), { path: "/repos/a/b", queryString: "per_page=5" })).toEqual({
      origin: "https://api.github.com",
      hostname: "api.github.com",
      pathAndQuery: "/repos/a/b?per_page=5",
      href: "https://api.github.com/repos/a/b?per_page=5",
    });
  });
  it("keeps a base path prefix (with or without a trailing slash)", () => {
    for (const base of ["https://www.googleapis.com/gmail/v1", "https://www.googleapis.com/gmail/v1/"]) {
      const u = buildUpstreamUrl(target(base, ["www.googleapis.com"]), { path: "/users/me", queryString: "" });
      expect(u.href).toBe("https://www.googleapis.com/gmail/v1/users/me");
    }
  });
  it("keeps the explicit port of baseUrl, and only that", () => {
    expect(buildUpstreamUrl(target("https://api.test:8443", ["api.test"]), { path: "/", queryString: "" }).origin).toBe("https://api.test:8443");
  });
  it("compares hosts exactly and case-insensitively", () => {
    expect(buildUpstreamUrl(target("https://API.GitHub.com", ["api.github.COM"]), { path: "/", queryString: "" }).hostname).toBe("api.github.com");
    forbidden(target("https://api.github.com.", ["api.github.com"]));
    forbidden(target("https://uploads.github.com", ["api.github.com"]));
    forbidden(target("https://github.com", ["api.github.com"]));
  });
  it("refuses other hosts, http, userinfo, and hosts smuggled through userinfo", () => {
    forbidden(target("https://evil.test"));
    forbidden(target("http://api.github.com"));
    forbidden(target("https://user:pw@api.github.com"));
    forbidden(target("https://api.github.com@evil.test", ["api.github.com", "evil.test"].slice(0, 1)));
    forbidden(target("https://api.github.com@evil.test", ["api.github.com", "evil.test"]));
    forbidden(target("not a url"));
  });
  it.each([
    ["https://2130706433/", "2130706433"],
    ["https://0x7f.1/", "0x7f.1"],
    ["https://0177.0.0.1/", "0177.0.0.1"],
    ["https://127.1/", "127.1"],
    ["https://127.0.0.1/", "127.0.0.1"],
    ["https://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]"],
    ["https://[::1]/", "::1"],
  ])("refuses the IP literal %s even when allowlisted", (base, allowed) => {
    forbidden(target(base, [allowed, "127.0.0.1", "[::ffff:7f00:1]", "::ffff:7f00:1"]));
  });
  it("cannot be steered off-host by a path (the path is always below the origin)", () => {
    for (const path of ["/@evil.test/x", "/.evil.test", "/:443@evil.test"]) {
      expect(buildUpstreamUrl(target("https://api.github.com"), { path, queryString: "" }).hostname).toBe("api.github.com");
    }
    // canonicalizePath refuses "//evil.test"; even if it did not, the URL would be checked
    forbidden(target("https://api.github.com"), "//evil.test/x");
  });
});

describe("upstreamUrlFor", () => {
  it("builds once per canonical request and target, and never hands one target's URL to another", () => {
    const request = Object.freeze({ path: "/repos/acme/widgets", queryString: "state=open" });
    const github = target("https://api.github.com");
    const gitlab = target("https://gitlab.example", ["gitlab.example"]);
    const first = upstreamUrlFor(github, request);
    expect(first).toEqual(buildUpstreamUrl(github, request));
    expect(upstreamUrlFor(github, request)).toBe(first);
    const other = upstreamUrlFor(gitlab, request);
    expect(other.origin).toBe("https://gitlab.example");
    expect(upstreamUrlFor(github, request).origin).toBe("https://api.github.com");
  });

  it("fences exactly like buildUpstreamUrl, every time", () => {
    const request = Object.freeze({ path: "/x", queryString: "" });
    for (let i = 0; i < 2; i++) expect(() => upstreamUrlFor(target("https://127.0.0.1", ["127.0.0.1"]), request)).toThrow(CapvaultError);
  });
});

describe("buildUpstreamUrl and the URL parser", () => {
  it("refuses a path or query the WHATWG parser would send elsewhere or rewrite", () => {
    const github = target("https://api.github.com");
    for (const path of ["/a/../b", "/a/./b", "/a/%2e%2e/b", "/x#frag", "/\\evil.test/x", "evil", "/a\tb"]) forbidden(github, path);
    forbidden(github, "/x", "a=1#frag");
  });
  it("keeps the base path, port and host whatever the path, and checks the base once per target", () => {
    const t = target("https://api.test:8443/v1/", ["api.test"]);
    expect(buildUpstreamUrl(t, { path: "/a", queryString: "" })).toEqual({
      origin: "https://api.test:8443",
      hostname: "api.test",
      pathAndQuery: "/v1/a",
      href: "https://api.test:8443/v1/a",
    });
    expect(buildUpstreamUrl(t, { path: "/b", queryString: "x=1" }).href).toBe("https://api.test:8443/v1/b?x=1");
  });
  it("skips the parse only for strings the parser gives back unchanged (generated strings, seeded)", () => {
    // Characters that make the parser rewrite, drop, encode or re-route: dots and slashes (dot segments, "//host"),
    // escapes, "\\", "#", "?", ";", "'", spaces, tabs, quotes, brackets, non-ASCII.
    const alphabet = ["/", "/", "/", ".", ".", "a", "Z", "0", "%", "2", "e", "E", "?", "#", "\\", ";", "'", "=", "&", "~", ":", "@", " ", "\t", "\n", '"', "<", "[", "{", "^", "`", "|", "é", "．"];
    const seed = Number(process.env.URL_SEED ?? Date.now() % 1_000_000);
    let state = seed || 1;
    const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const origin = "https://api.test:8443";
    let skipped = 0;
    for (let i = 0; i < 20_000; i++) {
      let s = "/";
      const length = 1 + Math.floor(next() * 12);
      for (let j = 0; j < length; j++) s += alphabet[Math.floor(next() * alphabet.length)];
      if (!keepsItsForm(s)) continue;
      skipped++;
      expect(new URL(s, origin).href, `URL_SEED=${seed}: ${JSON.stringify(s)}`).toBe(origin + s);
    }
    expect(skipped).toBeGreaterThan(1000);
    for (const s of ["", "//evil.test/x", "/a/../b", "/a/.", "/..", "/a/./b", "/a/..?x=1", "/a%2e", "/a/%2e%2e/b", "/a#b", "/a b", "/a\\b", "/a;b", "/x?a'b", "/é"]) {
      expect(keepsItsForm(s), JSON.stringify(s)).toBe(false);
    }
    for (const s of ["/", "/repos/acme/widgets/issues/12", "/a/", "/a/...", "/a/.b/c.", "/x?a=1&b=%2F", "/v1/a?"]) expect(keepsItsForm(s), s).toBe(true);
  });
});

describe("buildUpstreamUrl and the target it is given", () => {
  it("checks an unfrozen target's base every time (it may have changed), a frozen one's once", () => {
    const open = { ...target("https://api.github.com"), allowedHosts: ["api.github.com"] } as { -readonly [K in keyof UpstreamTarget]: UpstreamTarget[K] };
    expect(buildUpstreamUrl(open, { path: "/x", queryString: "" }).origin).toBe("https://api.github.com");
    open.baseUrl = "https://evil.test";
    forbidden(open);
    const frozen = Object.freeze({ ...target("https://api.github.com"), allowedHosts: Object.freeze(["api.github.com"]) });
    for (let i = 0; i < 2; i++) expect(buildUpstreamUrl(frozen, { path: `/x${i}`, queryString: "" }).href).toBe(`https://api.github.com/x${i}`);
  });
});
