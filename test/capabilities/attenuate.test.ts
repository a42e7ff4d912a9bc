import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectReason, githubRequest, harness } from "./fixtures.js";

const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
let token: string;

beforeAll(async () => {
  token = (
    await h.caps.mint({
      rootKey: h.rootKey,
      tenant: "acme",
      subject: "agent-7",
      grants: [
        { connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" },
        { connection: "conn-github-1", method: "POST", pathPrefix: "/repos/acme/" },
        { connection: "conn-slack-1", method: "POST", pathPrefix: "/api/" },
      ],
      ttlSeconds: 3600,
      now: NOW,
    })
  ).token;
});
afterAll(() => h.caps.close());

const narrow = async (restriction: Parameters<typeof h.caps.attenuate>[1]) =>
  (await h.caps.attenuate(token, restriction, h.publicKeys, NOW)).token;
const authorize = (t: string, overrides: Parameters<typeof githubRequest>[0] = {}) =>
  h.caps.authorize(t, githubRequest(overrides), { publicKeys: h.publicKeys, now: NOW });

describe("attenuate", () => {
  it("returns the new token with one more revocation id, sharing the parent's", async () => {
    const out = await h.caps.attenuate(token, { methods: ["get"] }, h.publicKeys, NOW);
    const parent = await h.caps.inspect(token, h.publicKeys);
    expect(out.revocationIds).toHaveLength(2);
    expect(out.revocationIds[0]).toBe(parent.revocationIds[0]);
    expect(out.token).toMatch(/^[A-Za-z0-9_-]+=*$/);
  });

  it("connections and methods", async () => {
    const t = await narrow({ connections: ["conn-github-1"], methods: ["get"] });
    expect((await authorize(t)).allowed).toBe(true);
    expect((await authorize(t, { method: "POST" })).denials[0]).toMatchObject({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 1 });
    const slack = await authorize(t, { connection: "conn-slack-1", provider: "slack", host: "slack.com", method: "POST", path: "/api/chat.postMessage" });
    expect(slack.denials.map((d) => [d.blockIndex, d.checkIndex])).toEqual([[1, 0], [1, 1]]);
  });

  it("query constraints: present, with an allowed value, and never repeated with another", async () => {
    const t = await narrow({ query: [{ name: "state", values: ["open", "all"] }] });
    expect((await authorize(t, { query: [{ name: "state", value: "open" }, { name: "page", value: "2" }] })).allowed).toBe(true);
    const rule = 'check all query("state", $v), {"all", "open"}.contains($v)';
    const closed = await authorize(t, { query: [{ name: "state", value: "closed" }] });
    expect(closed.denials).toEqual([expect.objectContaining({ blockIndex: 1, checkIndex: 0, rule })]);
    // `check all` also fails when nothing matches: the parameter must be present
    const absent = await authorize(t);
    expect(absent.denials).toEqual([expect.objectContaining({ blockIndex: 1, checkIndex: 0, rule })]);
    const smuggled = await authorize(t, { query: [{ name: "state", value: "open" }, { name: "state", value: "closed" }] });
    expect(smuggled.allowed).toBe(false);
    expect(smuggled.denials).toEqual([expect.objectContaining({ blockIndex: 1, checkIndex: 0, rule })]);
  });

  it("body constraints on top-level JSON fields", async () => {
    const t = await narrow({ body: [{ name: "channel", values: ["C0123"] }] });
    const post = (body: Uint8Array | Record<string, unknown>) =>
      authorize(t, { connection: "conn-slack-1", provider: "slack", host: "slack.com", method: "POST", path: "/api/chat.postMessage", body: body as never });
    expect((await post(Buffer.from(JSON.stringify({ channel: "C0123", text: "hi", n: 3, ok: true, f: 1.5, z: null })))).allowed).toBe(true);
    expect((await post({ channel: "C0123" })).allowed).toBe(true);
    expect((await post(Buffer.from(JSON.stringify({ channel: "C0999" })))).allowed).toBe(false);
    // not JSON (e.g. form-encoded): no body facts, so `check if body(...)` fails
    expect((await post(Buffer.from("channel=C0123"))).allowed).toBe(false);
    // a non-scalar value becomes its JSON text: it exists (check all cannot pass vacuously) and does not match
    expect((await post(Buffer.from(JSON.stringify({ channel: ["C0123"] })))).allowed).toBe(false);
  });

  it("expiry: ttl and expires_at, the earlier wins", async () => {
    const out = await h.caps.attenuate(token, { ttl: { seconds: 600 }, expiresAt: new Date(NOW.getTime() + 300_000) }, h.publicKeys, NOW);
    expect(out.expiresAt).toEqual(new Date(NOW.getTime() + 300_000));
    const at = (s: number) => h.caps.authorize(out.token, githubRequest(), { publicKeys: h.publicKeys, now: new Date(NOW.getTime() + s * 1000) });
    expect((await at(299)).allowed).toBe(true);
    expect((await at(301)).reason).toBe("CAPABILITY_EXPIRED");
  });

  it("raw checks: exactly one check each, with optional parameters", async () => {
    const t = await narrow({
      checks: ['check if method("GET");', { code: "check if host({h})", params: { h: "api.github.com" } }],
    });
    expect((await authorize(t)).allowed).toBe(true);
    expect((await authorize(t, { method: "POST" })).denials[0]).toMatchObject({ blockIndex: 1, checkIndex: 0, rule: 'check if method("GET")' });
    const all = await narrow({ checks: ["check all query($n, $v), $n != \"debug\""] });
    expect((await authorize(all, { query: [{ name: "debug", value: "1" }] })).allowed).toBe(false);
  });

  it("raw checks that are facts, rules, policies, several statements or unparseable are DATALOG_INVALID", async () => {
    for (const bad of [
      'right("conn-github-1", "DELETE", "/")',
      "operator(true)",
      "right($c, \"DELETE\", \"/\") <- connection($c)",
      "allow if true",
      "deny if false",
      'check if true; right("conn-github-1", "DELETE", "/")',
      "check if true, right(",
      "check if host({h})", // unbound parameter
      "",
    ]) {
      await expectReason(narrow({ checks: [bad] }), "DATALOG_INVALID");
    }
    await expectReason(narrow({ checks: [{ code: "check if host({h})", params: { h: "x", extra: "y" } }] }), "DATALOG_INVALID");
  });

  it("refuses empty or invalid restrictions", async () => {
    await expectReason(narrow({}), "INVALID_REQUEST");
    await expectReason(narrow({ connections: [], methods: [], pathPrefix: "", query: [], body: [], checks: [], approvalMethods: [] }), "INVALID_REQUEST");
    await expectReason(narrow({ pathPrefix: "/repos/acme/../x" }), "PATH_INVALID");
    await expectReason(narrow({ methods: ["G E T"] }), "METHOD_INVALID");
    await expectReason(narrow({ ttlSeconds: -5 }), "INVALID_REQUEST");
    await expectReason(narrow({ query: [{ name: "state", values: [] }] }), "INVALID_REQUEST");
  });

  it("a tampered base token cannot be attenuated", async () => {
    const err = await h.caps.attenuate(token.slice(0, -24) + "AAAAAAAAAAAAAAAAAAAAAAAA", { methods: ["GET"] }, h.publicKeys, NOW).then(
      () => undefined,
      (e) => e,
    );
    expect(["CAPABILITY_SIGNATURE_INVALID", "CAPABILITY_MALFORMED"]).toContain(err?.reason);
  });
});
