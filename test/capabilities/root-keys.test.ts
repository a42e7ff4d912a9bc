import { afterAll, describe, expect, it } from "vitest";
import { Capabilities } from "../../src/capabilities/capabilities.js";
import { generateRootKey, publicKeyFromPrivate, selectSigningKey, toPublicKey, verificationKey } from "../../src/capabilities/root-keys.js";
import { expectReason, expectThrowsReason, githubRequest } from "./fixtures.js";

const caps = new Capabilities({ workers: 1 });
afterAll(() => caps.close());
const NOW = new Date("2030-01-15T12:00:00Z");
const grants = [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }];

describe("root keys", () => {
  it("generates Ed25519 keys whose public half derives from the private half", () => {
    const k = generateRootKey(3);
    expect(k).toMatchObject({ id: 3, algorithm: "ed25519" });
    expect(k.privateKeyHex).toMatch(/^[0-9a-f]{64}$/);
    expect(publicKeyFromPrivate(k.privateKeyHex)).toBe(k.publicKeyHex);
    expect(generateRootKey(3).privateKeyHex).not.toBe(k.privateKeyHex);
    expectThrowsReason(() => generateRootKey(2 ** 32), "CONFIG_INVALID");
  });

  it("the newest non-retired key signs", () => {
    const keys = [{ id: 1 }, { id: 3, retired: true }, { id: 2 }];
    expect(selectSigningKey(keys).id).toBe(2);
    expectThrowsReason(() => selectSigningKey([{ id: 1, retired: true }]), "CONFIG_INVALID");
    expectThrowsReason(() => verificationKey([], 1), "CAPABILITY_UNKNOWN_ROOT_KEY");
    expectThrowsReason(() => verificationKey([{ id: 1, publicKeyHex: "a".repeat(64) }], undefined), "CAPABILITY_UNKNOWN_ROOT_KEY");
  });

  it("rotation: older keys still verify until retired; tokens carry their key id", async () => {
    const k1 = generateRootKey(1);
    const k2 = generateRootKey(2);
    const old = await caps.mint({ rootKey: k1, tenant: "acme", subject: "a", grants, ttlSeconds: 600, now: NOW });
    const signer = selectSigningKey([k1, k2]);
    expect(signer.id).toBe(2);
    const fresh = await caps.mint({ rootKey: signer, tenant: "acme", subject: "a", grants, ttlSeconds: 600, now: NOW });
    expect(fresh.rootKeyId).toBe("2");

    const both = [toPublicKey(k1), toPublicKey(k2)];
    for (const t of [old.token, fresh.token]) {
      expect((await caps.authorize(t, githubRequest(), { publicKeys: both, now: NOW })).allowed).toBe(true);
    }
    expect((await caps.inspect(old.token, both)).rootKeyId).toBe("1");

    const retired = [toPublicKey(k1, true), toPublicKey(k2)];
    await expectReason(caps.authorize(old.token, githubRequest(), { publicKeys: retired, now: NOW }), "CAPABILITY_UNKNOWN_ROOT_KEY");
    expect((await caps.authorize(fresh.token, githubRequest(), { publicKeys: retired, now: NOW })).allowed).toBe(true);
    // a key id is not a key: swapping which public key carries id 1 breaks verification
    await expectReason(
      caps.authorize(old.token, githubRequest(), { publicKeys: [{ id: 1, publicKeyHex: k2.publicKeyHex }], now: NOW }),
      "CAPABILITY_SIGNATURE_INVALID",
    );
  });
});
