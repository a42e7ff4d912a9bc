import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REASONS } from "../../src/errors/reasons.js";
import { status } from "@grpc/grpc-js";
import { resolveLimits } from "../../src/capabilities/limits.js";
import { generateRootKey, toPublicKey } from "../../src/capabilities/root-keys.js";
import { encodeToken, prepareToken } from "../../src/capabilities/token-input.js";
import { expectReason, expectThrowsReason, githubRequest, harness, mintAcmeToken } from "./fixtures.js";

/** Malformed, truncated, tampered, wrong-key, oversized and too-deep tokens: stable reasons, and the pool lives on. */
const h = harness({ limits: { maxBlocks: 4, maxTokenBytes: 4096 } });
const NOW = new Date("2030-01-15T12:00:00Z");
let token: string;

const authorize = (t: string) => h.caps.authorize(t, githubRequest(), { publicKeys: h.publicKeys, now: NOW });
const bytesOf = (t: string) => new Uint8Array(Buffer.from(t, "base64url"));

beforeAll(async () => {
  token = await mintAcmeToken(h, NOW);
});
afterAll(() => h.caps.close());

describe("refused tokens", () => {
  it("missing", async () => {
    await expectReason(authorize(""), "CAPABILITY_MISSING");
    await expectReason(authorize(undefined as unknown as string), "CAPABILITY_MISSING");
  });

  it("not base64url, or not a Biscuit", async () => {
    await expectReason(authorize("not a token!"), "CAPABILITY_MALFORMED");
    await expectReason(authorize(token.replace(/[A-Za-z]/, "+")), "CAPABILITY_MALFORMED");
    await expectReason(authorize(Buffer.from("hello world, this is not protobuf").toString("base64url")), "CAPABILITY_MALFORMED");
    await expectReason(authorize("AAAA"), "CAPABILITY_MALFORMED");
  });

  it("truncated", async () => {
    const bytes = bytesOf(token);
    for (const cut of [1, 10, 64, bytes.length - 40, bytes.length - 1]) {
      const err = await authorize(encodeToken(bytes.subarray(0, cut))).then(
        () => undefined,
        (e) => e,
      );
      expect(["CAPABILITY_MALFORMED", "CAPABILITY_SIGNATURE_INVALID"], `cut at ${cut}`).toContain(err?.reason);
    }
  });

  it("tampered: a changed fact, a changed signature", async () => {
    const bytes = bytesOf(token);
    const text = Buffer.from(bytes);
    const at = text.indexOf("/repos/acme/");
    expect(at).toBeGreaterThan(0);
    const forged = Buffer.from(text);
    forged.write("/repos/acmf/", at); // same length: still valid protobuf, different signed content
    await expectReason(authorize(encodeToken(forged)), "CAPABILITY_SIGNATURE_INVALID");
    const sig = Buffer.from(text);
    sig[sig.length - 70] ^= 0x01;
    const err = await authorize(encodeToken(sig)).then(() => undefined, (e) => e);
    expect(["CAPABILITY_SIGNATURE_INVALID", "CAPABILITY_MALFORMED"]).toContain(err?.reason);
  });

  it("signed by another key under the same key id", async () => {
    const impostor = generateRootKey(1);
    const forged = await h.caps.mint({ rootKey: impostor, tenant: "acme", subject: "x", grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/" }], ttlSeconds: 60, now: NOW });
    await expectReason(authorize(forged.token), "CAPABILITY_SIGNATURE_INVALID");
  });

  it("unknown or retired root key id", async () => {
    const other = generateRootKey(9);
    const t = await h.caps.mint({ rootKey: other, tenant: "acme", subject: "x", grants: [{ connection: "c", method: "GET", pathPrefix: "/" }], ttlSeconds: 60, now: NOW });
    await expectReason(authorize(t.token), "CAPABILITY_UNKNOWN_ROOT_KEY");
    await expectReason(
      h.caps.authorize(token, githubRequest(), { publicKeys: [{ ...h.publicKeys[0], retired: true }], now: NOW }),
      "CAPABILITY_UNKNOWN_ROOT_KEY",
    );
    await expectReason(h.caps.inspect(t.token, h.publicKeys), "CAPABILITY_UNKNOWN_ROOT_KEY");
  });

  it("oversized: refused before decoding", async () => {
    await expectReason(authorize("A".repeat(20_000)), "CAPABILITY_TOO_LARGE");
    await expectReason(
      h.caps.mint({
        rootKey: h.rootKey,
        tenant: "acme",
        subject: "x",
        grants: Array.from({ length: 60 }, (_, i) => ({ connection: `c${i}`, method: "GET", pathPrefix: `/${"p".repeat(60)}/${i}/` })),
        ttlSeconds: 60,
        now: NOW,
      }),
      "CAPABILITY_TOO_LARGE",
    );
  });

  it("too deep: refused before parsing, and attenuation stops at the cap", async () => {
    let t = token;
    for (let i = 0; i < 3; i++) t = (await h.caps.attenuate(t, { methods: ["GET"] }, h.publicKeys, NOW)).token;
    expect((await authorize(t)).allowed).toBe(true); // 4 blocks: at the cap
    await expectReason(h.caps.attenuate(t, { methods: ["GET"] }, h.publicKeys, NOW), "CAPABILITY_TOO_DEEP");
    // a 5-block token made elsewhere (a runtime with a higher cap) is refused by this one
    const { caps } = await import("./fixtures.js").then((m) => ({ caps: m.harness({ limits: { maxBlocks: 16 } }).caps }));
    try {
      const deeper = (await caps.attenuate(t, { methods: ["GET"] }, h.publicKeys, NOW)).token;
      await expectReason(authorize(deeper), "CAPABILITY_TOO_DEEP");
    } finally {
      await caps.close();
    }
  });

  it("every refusal is UNAUTHENTICATED or INVALID_ARGUMENT", () => {
    for (const r of ["CAPABILITY_MISSING", "CAPABILITY_MALFORMED", "CAPABILITY_SIGNATURE_INVALID", "CAPABILITY_UNKNOWN_ROOT_KEY", "CAPABILITY_REVOKED"] as const) {
      expect(REASONS[r].code).toBe(status.UNAUTHENTICATED);
    }
    for (const r of ["CAPABILITY_TOO_LARGE", "CAPABILITY_TOO_DEEP", "DATALOG_INVALID", "PATH_INVALID"] as const) {
      expect(REASONS[r].code).toBe(status.INVALID_ARGUMENT);
    }
  });

  it("the pool never died", async () => {
    expect((await authorize(token)).allowed).toBe(true);
    const stats = h.caps.stats();
    expect(stats.crashed).toBe(0);
    expect(stats.replaced).toBe(0);
    expect(stats.started).toBe(1);
  });

  it("a public key that is not hex is a configuration error", async () => {
    await expectReason(
      h.caps.authorize(token, githubRequest(), { publicKeys: [{ id: 1, publicKeyHex: "zz" }], now: NOW }),
      "CONFIG_INVALID",
    );
    expect(toPublicKey(h.rootKey).publicKeyHex).toMatch(/^[0-9a-f]{64}$/);
  });
});

/** prepareToken memoizes the decoding of a token string: the memo must never weaken the key and limit checks. */
describe("prepareToken memo", () => {
  const defaults = resolveLimits();
  let attenuated: string; // 2 blocks

  beforeAll(async () => {
    attenuated = (await h.caps.attenuate(token, { methods: ["GET"] }, h.publicKeys, NOW)).token;
  });

  it("digest is the hex SHA-256 of the decoded bytes (and affinity its first 32 bits)", () => {
    const bytes = bytesOf(token);
    const expected = createHash("sha256").update(bytes).digest();
    for (let i = 0; i < 2; i++) {
      const p = prepareToken(token, h.publicKeys, defaults);
      expect(p.digest).toBe(expected.toString("hex"));
      expect(p.digest).toMatch(/^[0-9a-f]{64}$/);
      expect(p.affinity).toBe(expected.readUInt32BE(0));
      expect(Buffer.from(p.bytes).equals(Buffer.from(bytes))).toBe(true);
      expect(p.blocks).toBe(1);
    }
    // the same bytes, written without padding: the same digest
    expect(prepareToken(token.replace(/=+$/, ""), h.publicKeys, defaults).digest).toBe(expected.toString("hex"));
    // another token: another digest
    const other = prepareToken(attenuated, h.publicKeys, defaults);
    expect(other.digest).toBe(createHash("sha256").update(bytesOf(attenuated)).digest("hex"));
    expect(other.digest).not.toBe(expected.toString("hex"));
    expect(other.blocks).toBe(2);
  });

  it("a token prepared with one key set, then with its root key retired or absent → CAPABILITY_UNKNOWN_ROOT_KEY", () => {
    const p = prepareToken(token, h.publicKeys, defaults);
    expect(p.key).toEqual({ id: 1, publicKeyHex: h.publicKeys[0].publicKeyHex.toLowerCase() });
    expectThrowsReason(() => prepareToken(token, [{ ...h.publicKeys[0], retired: true }], defaults), "CAPABILITY_UNKNOWN_ROOT_KEY");
    expectThrowsReason(() => prepareToken(token, [toPublicKey(generateRootKey(2))], defaults), "CAPABILITY_UNKNOWN_ROOT_KEY");
    expectThrowsReason(() => prepareToken(token, [], defaults), "CAPABILITY_UNKNOWN_ROOT_KEY");
    // and the verifying key always comes from the key set of the call, not from the memo
    const rotated = toPublicKey(generateRootKey(1));
    expect(prepareToken(token, [{ ...rotated, publicKeyHex: rotated.publicKeyHex.toUpperCase() }], defaults).key).toEqual({ id: 1, publicKeyHex: rotated.publicKeyHex });
    expect(prepareToken(token, h.publicKeys, defaults).key.publicKeyHex).toBe(h.publicKeys[0].publicKeyHex.toLowerCase());
  });

  it("prepared with default limits, then with maxBlocks below its block count → CAPABILITY_TOO_DEEP", () => {
    expect(prepareToken(attenuated, h.publicKeys, defaults).blocks).toBe(2);
    expectThrowsReason(() => prepareToken(attenuated, h.publicKeys, resolveLimits({ maxBlocks: 1 })), "CAPABILITY_TOO_DEEP");
    expect(prepareToken(attenuated, h.publicKeys, resolveLimits({ maxBlocks: 2 })).blocks).toBe(2);
    expectThrowsReason(() => prepareToken(token, h.publicKeys, resolveLimits({ maxBlocks: 0 })), "CAPABILITY_TOO_DEEP");
  });

  it("prepared with default limits, then with maxTokenBytes below its size → CAPABILITY_TOO_LARGE", () => {
    // Unpadded, so that one byte less than its size still passes the string-length pre-check: the refusal then has
    // to come from the check on the (memoized) decoded bytes.
    const unpadded = attenuated.replace(/=+$/, "");
    const size = bytesOf(unpadded).length;
    expect(prepareToken(unpadded, h.publicKeys, defaults).bytes.length).toBe(size);
    expect(unpadded.length).toBeLessThanOrEqual(Math.ceil((size - 1) / 3) * 4 + 2);
    expectThrowsReason(() => prepareToken(unpadded, h.publicKeys, resolveLimits({ maxTokenBytes: size - 1 })), "CAPABILITY_TOO_LARGE");
    expect(prepareToken(unpadded, h.publicKeys, resolveLimits({ maxTokenBytes: size })).bytes.length).toBe(size);
    // far below: refused by the pre-check as before
    expectThrowsReason(() => prepareToken(attenuated, h.publicKeys, resolveLimits({ maxTokenBytes: 64 })), "CAPABILITY_TOO_LARGE");
  });

  it("the checks of one runtime do not leak into another through the memo", async () => {
    const strict = harness({ limits: { maxBlocks: 1 } });
    try {
      expect((await authorize(attenuated)).allowed).toBe(true); // memoized by this file's runtime (maxBlocks 4)
      await expectReason(strict.caps.authorize(attenuated, githubRequest(), { publicKeys: h.publicKeys, now: NOW }), "CAPABILITY_TOO_DEEP");
      await expectReason(strict.caps.inspect(attenuated, h.publicKeys), "CAPABILITY_TOO_DEEP");
    } finally {
      await strict.caps.close();
    }
  });

  it("a malformed string fails CAPABILITY_MALFORMED every time (failures are not memoized as successes)", () => {
    const notProtobuf = Buffer.from("hello world, this is not protobuf").toString("base64url");
    for (const bad of ["not a token!", notProtobuf, "AAAA", encodeToken(bytesOf(token).subarray(0, 10))]) {
      for (let i = 0; i < 3; i++) expectThrowsReason(() => prepareToken(bad, h.publicKeys, defaults), "CAPABILITY_MALFORMED");
    }
    expectThrowsReason(() => prepareToken("", h.publicKeys, defaults), "CAPABILITY_MISSING");
    expectThrowsReason(() => prepareToken("", h.publicKeys, defaults), "CAPABILITY_MISSING");
  });

  it("still correct after the memo has evicted entries (more distinct token strings than it holds)", () => {
    const first = prepareToken(token, h.publicKeys, defaults);
    // Distinct valid envelopes without wasm: change the last two bytes (inside the proof's bytes payload).
    const base = bytesOf(token);
    for (let i = 0; i < 1100; i++) {
      const variant = new Uint8Array(base);
      variant[variant.length - 1] = i & 0xff;
      variant[variant.length - 2] = i >> 8;
      const p = prepareToken(encodeToken(variant), h.publicKeys, defaults);
      expect(p.digest).toBe(createHash("sha256").update(variant).digest("hex"));
      expect(p.blocks).toBe(1);
    }
    // The same token, decoded again: the same bytes, key and digest; a new cache id (ids are never reused, so a
    // cache keyed by it can only miss, never confuse two tokens).
    const again = prepareToken(token, h.publicKeys, defaults);
    expect({ ...again, cacheId: "" }).toEqual({ ...first, cacheId: "" });
    expect(again.cacheId).not.toBe(first.cacheId);
    expectThrowsReason(() => prepareToken(token, [{ ...h.publicKeys[0], retired: true }], defaults), "CAPABILITY_UNKNOWN_ROOT_KEY");
    expectThrowsReason(() => prepareToken(token, h.publicKeys, resolveLimits({ maxBlocks: 0 })), "CAPABILITY_TOO_DEEP");
  });
});

describe("prepareToken cache ids", () => {
  it("one id per token and key while the token is remembered; another for another token or another key", async () => {
    const defaults = resolveLimits();
    const other = await mintAcmeToken(h, NOW);
    const a = prepareToken(token, h.publicKeys, defaults);
    expect(prepareToken(token, h.publicKeys, defaults).cacheId).toBe(a.cacheId);
    expect(prepareToken(token, h.publicKeys.map((k) => ({ ...k })), defaults).cacheId).toBe(a.cacheId); // equal keys, new objects
    expect(prepareToken(other, h.publicKeys, defaults).cacheId).not.toBe(a.cacheId);
    const impostor = [{ ...toPublicKey(generateRootKey(h.publicKeys[0].id)), id: h.publicKeys[0].id }];
    const underImpostor = prepareToken(token, impostor, defaults);
    expect(underImpostor.cacheId).not.toBe(a.cacheId);
    expect(prepareToken(token, h.publicKeys, defaults).cacheId).not.toBe(underImpostor.cacheId);
  });
});
