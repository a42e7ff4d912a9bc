import { afterAll, describe, expect, it } from "vitest";
import { RevocationSet } from "../../src/capabilities/revocation-set.js";
import { expectReason, githubRequest, harness } from "./fixtures.js";

const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
afterAll(() => h.caps.close());

describe("revocation", () => {
  it("the set answers for any of a token's ids in its tenant, case-insensitively", () => {
    const set = new RevocationSet([{ tenant: "acme", id: "AA" }]);
    expect(set.isRevoked("acme", ["bb", "aa"])).toBe(true);
    expect(set.has("acme", "aa")).toBe(true);
    set.replace([{ tenant: "acme", id: "cc" }]);
    expect(set.isRevoked("acme", ["aa"])).toBe(false);
    set.add([{ tenant: "acme", id: "dd" }]);
    expect(set.size).toBe(2);
  });

  it("a revocation counts only in the tenant that recorded it", () => {
    const set = new RevocationSet([{ tenant: "globex", id: "aa" }]);
    expect(set.isRevoked("acme", ["aa"])).toBe(false);
    expect(set.has("acme", "aa")).toBe(false);
    expect(set.isRevoked("globex", ["aa"])).toBe(true);
  });

  it("revoking a block revokes every token derived from it, and only those", async () => {
    const root = await h.caps.mint({
      rootKey: h.rootKey,
      tenant: "acme",
      subject: "a",
      grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
      ttlSeconds: 600,
      now: NOW,
    });
    const child = await h.caps.attenuate(root.token, { pathPrefix: "/repos/acme/widgets/" }, h.publicKeys, NOW);
    const sibling = await h.caps.attenuate(root.token, { methods: ["GET"] }, h.publicKeys, NOW);
    const opts = (revocations: RevocationSet) => ({ publicKeys: h.publicKeys, now: NOW, revocations });

    const childOnly = new RevocationSet([{ tenant: "acme", id: child.revocationIds[1] }]);
    await expectReason(h.caps.authorize(child.token, githubRequest(), opts(childOnly)), "CAPABILITY_REVOKED");
    expect((await h.caps.authorize(root.token, githubRequest(), opts(childOnly))).allowed).toBe(true);
    expect((await h.caps.authorize(sibling.token, githubRequest(), opts(childOnly))).allowed).toBe(true);

    const rootRevoked = new RevocationSet([{ tenant: "acme", id: root.revocationIds[0] }]);
    for (const t of [root.token, child.token, sibling.token]) {
      await expectReason(h.caps.authorize(t, githubRequest(), opts(rootRevoked)), "CAPABILITY_REVOKED");
    }
    expect((await h.caps.inspect(child.token, h.publicKeys, rootRevoked)).revoked).toBe(true);
    expect((await h.caps.inspect(child.token, h.publicKeys, childOnly)).revoked).toBe(true);
    expect((await h.caps.inspect(sibling.token, h.publicKeys, childOnly)).revoked).toBe(false);
    // another tenant's revocation of the same id does not touch acme's token
    const elsewhere = new RevocationSet([{ tenant: "globex", id: root.revocationIds[0] }]);
    expect((await h.caps.authorize(child.token, githubRequest(), opts(elsewhere))).allowed).toBe(true);
    expect((await h.caps.inspect(child.token, h.publicKeys, elsewhere)).revoked).toBe(false);
    // without a set, every block's id is returned for the caller to check
    expect((await h.caps.authorize(child.token, githubRequest(), { publicKeys: h.publicKeys, now: NOW })).revocationIds).toEqual(child.revocationIds);
  });
});
