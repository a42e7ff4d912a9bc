import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REASONS } from "../../src/errors/reasons.js";
import { status } from "@grpc/grpc-js";
import { generateRootKey, toPublicKey } from "../../src/capabilities/root-keys.js";
import { encodeToken } from "../../src/capabilities/token-input.js";
import { expectReason, githubRequest, harness, mintAcmeToken } from "./fixtures.js";

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
