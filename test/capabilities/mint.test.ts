import { afterAll, describe, expect, it } from "vitest";
import { expectReason, githubRequest, harness } from "./fixtures.js";

const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
afterAll(() => h.caps.close());

const grant = { connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" };
const base = () => ({ rootKey: h.rootKey, tenant: "acme", subject: "agent-7", grants: [grant], ttlSeconds: 600, now: NOW });

describe("mint", () => {
  it("returns a base64url token, its expiry, revocation id and root key id", async () => {
    const out = await h.caps.mint(base());
    expect(out.token).toMatch(/^[A-Za-z0-9_-]+=*$/);
    expect(out.expiresAt).toEqual(new Date("2030-01-15T12:10:00Z"));
    expect(out.revocationIds).toHaveLength(1);
    expect(out.revocationIds[0]).toMatch(/^[0-9a-f]{128}$/);
    expect(out.rootKeyId).toBe("1");
  });

  it("writes exactly the documented authority block: no rules, tuple grants", async () => {
    const out = await h.caps.mint({ ...base(), grants: [grant, { connection: "conn-slack-1", method: "post", pathPrefix: "/api" }] });
    const i = await h.caps.inspect(out.token, h.publicKeys);
    expect(i.blocks).toHaveLength(1);
    expect(i.blocks[0].facts).toEqual([
      { name: "tenant", terms: [{ string: "acme" }] },
      { name: "subject", terms: [{ string: "agent-7" }] },
      { name: "right", terms: [{ string: "conn-github-1" }, { string: "GET" }, { string: "/repos/acme/" }] },
      { name: "right", terms: [{ string: "conn-slack-1" }, { string: "POST" }, { string: "/api/" }] },
    ]);
    expect(i.blocks[0].rules).toEqual([]);
    expect(i.blocks[0].checks).toEqual(["check if time($time), $time <= 2030-01-15T12:10:00Z"]);
  });

  it("two grants are two tuples, never a cross product", async () => {
    const out = await h.caps.mint({
      ...base(),
      grants: [
        { connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" },
        { connection: "conn-github-1", method: "POST", pathPrefix: "/repos/acme/widgets/issues" },
      ],
    });
    const authorize = (o: Parameters<typeof githubRequest>[0]) => h.caps.authorize(out.token, githubRequest(o), { publicKeys: h.publicKeys, now: NOW });
    expect((await authorize({ method: "GET", path: "/repos/acme/x" })).allowed).toBe(true);
    expect((await authorize({ method: "POST", path: "/repos/acme/widgets/issues" })).allowed).toBe(true);
    expect((await authorize({ method: "POST", path: "/repos/acme/x" })).reason).toBe("NO_MATCHING_GRANT");
  });

  it("operator tokens carry operator(true)", async () => {
    const out = await h.caps.mint({ ...base(), grants: [], operator: true });
    const i = await h.caps.inspect(out.token, h.publicKeys);
    expect(i.operator).toBe(true);
    expect(i.blocks[0].facts.at(-1)).toEqual({ name: "operator", terms: [{ boolean: true }] });
  });

  it("validates its input", async () => {
    await expectReason(h.caps.mint({ ...base(), grants: [] }), "INVALID_REQUEST");
    await expectReason(h.caps.mint({ ...base(), grants: [{ ...grant, method: "GET /" }] }), "METHOD_INVALID");
    // A token but not an HTTP method an API uses, or one the Proxy never sends: such a grant could never be used.
    for (const method of ["FETCH", "TRACE", "CONNECT"]) {
      await expectReason(h.caps.mint({ ...base(), grants: [{ ...grant, method }] }), "METHOD_INVALID");
    }
    expect((await h.caps.mint({ ...base(), grants: [{ ...grant, method: "patch" }] })).token).toBeTruthy();
    await expectReason(h.caps.mint({ ...base(), grants: [{ ...grant, pathPrefix: "/repos/acme/../" }] }), "PATH_INVALID");
    await expectReason(h.caps.mint({ ...base(), grants: [{ ...grant, pathPrefix: "repos" }] }), "PATH_INVALID");
    await expectReason(h.caps.mint({ ...base(), grants: [{ ...grant, connection: "" }] }), "INVALID_REQUEST");
    await expectReason(h.caps.mint({ ...base(), ttlSeconds: 0 }), "INVALID_REQUEST");
    await expectReason(h.caps.mint({ ...base(), ttlSeconds: 400 * 86_400 }), "INVALID_REQUEST");
    await expectReason(h.caps.mint({ ...base(), tenant: "" }), "INVALID_REQUEST");
    await expectReason(h.caps.mint({ ...base(), subject: "x".repeat(300) }), "INVALID_REQUEST");
    await expectReason(h.caps.mint({ ...base(), rootKey: { id: 1, privateKeyHex: "00" } }), "CONFIG_INVALID");
    await expectReason(h.caps.mint({ ...base(), rootKey: { id: -1, privateKeyHex: h.rootKey.privateKeyHex } }), "CONFIG_INVALID");
  });

  it("accepts the proto Duration shape for ttl", async () => {
    const out = await h.caps.mint({ ...base(), ttlSeconds: undefined, ttl: { seconds: 90, nanos: 0 } });
    expect(out.expiresAt).toEqual(new Date("2030-01-15T12:01:30Z"));
  });
});
