import { afterAll, describe, expect, it } from "vitest";
import { compileRequest } from "../../src/capabilities/request-facts.js";
import { compileRestriction } from "../../src/capabilities/restriction-block.js";
import { authoritySnippet } from "../../src/capabilities/vocabulary.js";
import { DEFAULT_LIMITS } from "../../src/capabilities/limits.js";
import { expectReason, githubRequest, harness } from "./fixtures.js";

/**
 * Datalog injection (checklist 22): every user-controlled value is a parameter. Values crafted to close a string and
 * add facts (`u1"); right("evil`) stay single string terms, whether they go through mint, attenuate or authorize.
 */
const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
const INJECT = 'u1"); right("conn-github-1", "DELETE", "/"); operator(true); tenant("x';
afterAll(() => h.caps.close());

describe("Datalog injection", () => {
  it("the code sent to the binding never contains a value", () => {
    const mintCode = authoritySnippet({
      tenant: INJECT,
      subject: INJECT,
      grants: [{ connection: INJECT, method: "GET", pathPrefix: "/" }],
      expiresAt: NOW,
      operator: false,
    }).code;
    const restrictionCode = compileRestriction(
      { connections: [INJECT], query: [{ name: INJECT, values: [INJECT] }], body: [{ name: INJECT, values: [INJECT] }] },
      NOW,
      DEFAULT_LIMITS,
    ).block.code;
    const requestCode = compileRequest(
      githubRequest({ tenant: INJECT, connection: INJECT, provider: INJECT, query: [{ name: INJECT, value: INJECT }], body: { [INJECT]: INJECT } }),
      NOW,
      DEFAULT_LIMITS,
    ).snippet.code;
    for (const code of [mintCode, restrictionCode, requestCode]) {
      expect(code).not.toContain("u1");
      expect(code).not.toContain("DELETE");
    }
  });

  it("through mint: subject, tenant and connection stay single terms", async () => {
    const t = await h.caps.mint({
      rootKey: h.rootKey,
      tenant: INJECT,
      subject: INJECT,
      grants: [{ connection: INJECT, method: "GET", pathPrefix: "/repos/acme/" }],
      ttlSeconds: 600,
      now: NOW,
    });
    const i = await h.caps.inspect(t.token, h.publicKeys);
    expect(i.subject).toBe(INJECT);
    expect(i.tenant).toBe(INJECT);
    expect(i.operator).toBe(false);
    expect(i.grants).toEqual([{ connection: INJECT, method: "GET", pathPrefix: "/repos/acme/" }]);
    expect(i.blocks[0].facts.map((f) => f.name)).toEqual(["tenant", "subject", "right"]);
    // Inspect escapes quotes in display text, so the printed check cannot be mistaken for more Datalog either.
    const d = await h.caps.authorize(t.token, githubRequest({ tenant: INJECT, connection: "conn-github-1", method: "DELETE", path: "/x" }), {
      publicKeys: h.publicKeys,
      now: NOW,
    });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("NO_MATCHING_GRANT");
    const op = await h.caps.authorize(t.token, { tenant: INJECT, operation: "revoke" }, { publicKeys: h.publicKeys, now: NOW });
    expect(op.reason).toBe("OPERATOR_REQUIRED");
  });

  it("through authorize: connection, query and body values cannot add facts", async () => {
    const { token } = await h.caps.mint({
      rootKey: h.rootKey,
      tenant: "acme",
      subject: "agent",
      grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
      ttlSeconds: 600,
      now: NOW,
    });
    const narrowed = (
      await h.caps.attenuate(token, { query: [{ name: "state", values: ["open"] }], body: [{ name: "title", values: ["hi"] }] }, h.publicKeys, NOW)
    ).token;
    const authorize = (overrides: Parameters<typeof githubRequest>[0]) =>
      h.caps.authorize(narrowed, githubRequest({ query: [{ name: "state", value: "open" }], body: { title: "hi" }, ...overrides }), {
        publicKeys: h.publicKeys,
        now: NOW,
      });
    expect((await authorize({})).allowed).toBe(true);
    const viaConnection = await authorize({ connection: 'conn-github-2"); connection("conn-github-1' });
    expect(viaConnection.reason).toBe("NO_MATCHING_GRANT");
    const viaQuery = await authorize({ query: [{ name: "state", value: 'closed"); query("state", "open' }] });
    expect(viaQuery.allowed).toBe(false);
    const viaQueryName = await authorize({ query: [{ name: 'x", "y"); query("state', value: "open" }] });
    expect(viaQueryName.allowed).toBe(false);
    const viaBody = await authorize({ body: { title: 'nope"); body("title", "hi' } });
    expect(viaBody.allowed).toBe(false);
    await expectReason(authorize({ method: 'GET"); method("DELETE' }), "METHOD_INVALID");
  }, 30_000);

  it("through the path: quotes are not canonical", async () => {
    const { token } = await h.caps.mint({
      rootKey: h.rootKey,
      tenant: "acme",
      subject: "agent",
      grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
      ttlSeconds: 600,
      now: NOW,
    });
    await expectReason(
      h.caps.authorize(token, githubRequest({ path: '/repos/acme/x"); path("/repos/acme/' }), { publicKeys: h.publicKeys, now: NOW }),
      "PATH_INVALID",
    );
    // percent-encoded, the quote is just part of one path segment
    // (in canonical form: the one path grammar always encodes ';', see canonical-path.ts)
    const d = await h.caps.authorize(token, githubRequest({ path: "/repos/acme/x%22)%3B%20right(%22" }), { publicKeys: h.publicKeys, now: NOW });
    expect(d.allowed).toBe(true);
    expect(d.canonicalPath).toBe("/repos/acme/x%22)%3B%20right(%22");
  });

  it("values that would panic the binding (floats, huge integers, null) never reach it", async () => {
    await expectReason(
      h.caps.attenuate("x", { checks: [{ code: "check if n({n})", params: { n: 1.5 } }] }, h.publicKeys, NOW),
      "CAPABILITY_MALFORMED",
    );
    const { token } = await h.caps.mint({ rootKey: h.rootKey, tenant: "acme", subject: "a", grants: [{ connection: "c", method: "GET", pathPrefix: "/" }], ttlSeconds: 60, now: NOW });
    for (const n of [1.5, 2 ** 60, Number.NaN]) {
      await expectReason(h.caps.attenuate(token, { checks: [{ code: "check if n({n})", params: { n } }] }, h.publicKeys, NOW), "INVALID_REQUEST");
    }
    await expectReason(h.caps.attenuate(token, { checks: [{ code: "check if n({n})", params: { n: null as never } }] }, h.publicKeys, NOW), "INVALID_REQUEST");
    // big integers as bigint are fine
    const ok = await h.caps.attenuate(token, { checks: [{ code: "check if {n} > 0", params: { n: 2n ** 60n } }] }, h.publicKeys, NOW);
    expect(ok.token).toBeTruthy();
    // body numbers that are not safe integers become strings
    const d = await h.caps.authorize(token, githubRequest({ connection: "c", body: Buffer.from('{"a": 1.5, "b": 123456789012345678901234567890, "c": null}') }), {
      publicKeys: h.publicKeys,
      now: NOW,
    });
    expect(d.allowed).toBe(true);
    expect(h.caps.stats().crashed).toBe(0);
    expect(h.caps.stats().replaced).toBe(0);
  });
});
