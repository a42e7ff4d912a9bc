import { describe, expect, it } from "vitest";
import { upstreamUrlFor } from "../../src/proxy/build-upstream-url.js";
import { canonicalizeRequest } from "../../src/proxy/canonical-request.js";
import type { ConnectionRoute } from "../../src/proxy/connection-directory.js";
import { accessRequestOf } from "../../src/proxy/proxy-pipeline.js";

const route: ConnectionRoute = {
  id: "conn-github-1",
  tenant: "acme",
  provider: "github",
  target: { baseUrl: "https://api.github.com", allowedHosts: ["api.github.com"], credentialHeader: { name: "authorization", scheme: "Bearer" } },
};

function canonical(path: string) {
  return canonicalizeRequest({ connection: route.id, method: "GET", path, query: [{ name: "state", value: "open" }], headers: [], body: Buffer.alloc(0) });
}

/**
 * The access request of a canonical request is what authorization compiles and what the decision cache keys on (by
 * identity): a repeated request must get the very same object, or every repeated call is compiled and decided again.
 */
describe("accessRequestOf", () => {
  it("gives a repeated request (same canonical request, route and URL) the same frozen access request", () => {
    const request = canonical("/repos/acme/widgets/issues");
    const url = upstreamUrlFor(route.target, request);
    const first = accessRequestOf(request, route, url);
    expect(Object.isFrozen(first)).toBe(true);
    expect(first).toMatchObject({ tenant: "acme", connection: "conn-github-1", host: "api.github.com", method: "GET", path: "/repos/acme/widgets/issues" });
    expect(first.approved).toBeUndefined();
    expect(accessRequestOf(request, route, url)).toBe(first);
    expect(accessRequestOf(request, route, url, "proxy", false)).toBe(first);
  });

  it("keeps an approved request apart from the unapproved one, and remembers each", () => {
    const request = canonical("/repos/acme/widgets/pulls");
    const url = upstreamUrlFor(route.target, request);
    const approved = accessRequestOf(request, route, url, "proxy", true);
    expect(approved.approved).toBe(true);
    expect(accessRequestOf(request, route, url, "proxy", true)).toBe(approved);
    const unapproved = accessRequestOf(request, route, url);
    expect(unapproved).not.toBe(approved);
    expect(unapproved.approved).toBeUndefined();
    expect(accessRequestOf(request, route, url)).toBe(unapproved);
  });

  it("builds a new access request for another route, URL or operation", () => {
    const request = canonical("/repos/acme/widgets/commits");
    const url = upstreamUrlFor(route.target, request);
    const first = accessRequestOf(request, route, url);
    const other = accessRequestOf(request, { ...route, id: "conn-github-2" }, url);
    expect(other).not.toBe(first);
    expect(other.connection).toBe("conn-github-2");
    expect(accessRequestOf(request, route, url, "authorize")).not.toBe(accessRequestOf(request, route, url));
  });
});
