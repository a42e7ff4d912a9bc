import { afterAll, describe, expect, it } from "vitest";
import { expectReason, harness } from "./fixtures.js";

const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
afterAll(() => h.caps.close());

describe("inspect", () => {
  it("returns blocks with structured facts, checks as text, expiries, revocation ids and identity", async () => {
    const { token } = await h.caps.mint({
      rootKey: h.rootKey,
      tenant: "acme",
      subject: 'agent "seven"',
      grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
      ttlSeconds: 3600,
      now: NOW,
    });
    const t1 = (await h.caps.attenuate(token, { pathPrefix: "/repos/acme/widgets", ttlSeconds: 300, query: [{ name: "state", values: ["open"] }] }, h.publicKeys, NOW)).token;
    const i = await h.caps.inspect(t1, h.publicKeys);
    expect(i).toMatchObject({
      rootKeyId: "1",
      tenant: "acme",
      subject: 'agent "seven"',
      operator: false,
      grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
      expiresAt: new Date("2030-01-15T12:05:00Z"),
      revoked: false,
    });
    expect(i.revocationIds).toHaveLength(2);
    expect(i.blocks.map((b) => b.revocationId)).toEqual(i.revocationIds);
    expect(i.blocks[0]).toMatchObject({ index: 0, expiresAt: new Date("2030-01-15T13:00:00Z") });
    expect(i.blocks[0].facts[1]).toEqual({ name: "subject", terms: [{ string: 'agent "seven"' }] });
    expect(i.blocks[1]).toMatchObject({
      index: 1,
      facts: [],
      rules: [],
      expiresAt: new Date("2030-01-15T12:05:00Z"),
      checks: [
        'check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")',
        "check if time($time), $time <= 2030-01-15T12:05:00Z",
        'check all query("state", $v), {"open"}.contains($v)',
      ],
    });
  });

  it("refuses what authorize refuses", async () => {
    await expectReason(h.caps.inspect("nope", h.publicKeys), "CAPABILITY_MALFORMED");
    await expectReason(h.caps.inspect("", h.publicKeys), "CAPABILITY_MISSING");
  });
});
