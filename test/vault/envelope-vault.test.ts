import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CapvaultError, type Reason } from "../../src/errors/capvault-error.js";
import type { Store } from "../../src/store/store.js";
import { EnvelopeVault } from "../../src/vault/envelope-vault.js";
import type { Kms } from "../../src/vault/kms.js";
import { openLocalKeyring } from "../../src/vault/local-keyring.js";
import type { SealedSecret, SecretContext } from "../../src/vault/vault.js";
import { MongoClient } from "mongodb";
import type { DataKeyRecord } from "../../src/store/data-key-repository.js";
import { mongoStoreOn } from "../../src/store/mongodb/mongodb-store.js";
import { openTestDatabase } from "../support/mongo.js";
import { BACKENDS, type OpenedBackend } from "./backends.js";

const KEK = Buffer.alloc(32, 7).toString("base64");
const ctx = (over: Partial<SecretContext> = {}): SecretContext => ({
  tenant: "acme",
  record: "conn_1",
  provider: "github",
  field: "access_token",
  ...over,
});

async function rejects(p: Promise<unknown>, reason: Reason): Promise<CapvaultError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${reason}`).toBeInstanceOf(CapvaultError);
  expect((err as CapvaultError).reason).toBe(reason);
  return err as CapvaultError;
}

/** A Kms that counts unwraps. */
function counting(kms: Kms): Kms & { unwraps: number } {
  const c = {
    unwraps: 0,
    activeKekId: () => kms.activeKekId(),
    wrap: kms.wrap.bind(kms),
    unwrap: (...a: Parameters<Kms["unwrap"]>) => {
      c.unwraps++;
      return kms.unwrap(...a);
    },
    listKeks: () => kms.listKeks(),
  };
  return c;
}

const flip = (b64: string, at = 0) => {
  const b = Buffer.from(b64, "base64");
  b[at] ^= 0x01;
  return b.toString("base64");
};

describe.each(BACKENDS)("envelope vault on %s", (name, openBackend) => {
  let backend: OpenedBackend;
  let store: Store;
  let kms: Kms;
  let vault: EnvelopeVault;
  const fresh = (s: Store = store, k: Kms = kms) => new EnvelopeVault({ dataKeys: s.dataKeys, kms: k });

  beforeEach(async () => {
    backend = await openBackend();
    store = backend.store;
    kms = await openLocalKeyring({ source: "env", key: KEK });
    vault = fresh();
  });
  afterEach(async () => {
    await backend.close();
  });

  it("round-trips strings and buffers, with a fresh IV every time", async () => {
    for (const secret of ["gho_16C7e42F292c6912E7710c838347Ae178B4a", "", "ünïcødé ✓ 🔑", "x".repeat(100_000)]) {
      const sealed = await vault.seal(secret, ctx());
      expect((await vault.open(sealed, ctx())).toString("utf8")).toBe(secret);
    }
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    expect(await vault.open(await vault.seal(bytes, ctx()), ctx())).toEqual(bytes);

    const a = await vault.seal("same", ctx());
    const b = await vault.seal("same", ctx());
    expect(a.v).toBe(1);
    expect(Buffer.from(a.iv, "base64")).toHaveLength(12);
    expect(Buffer.from(a.tag, "base64")).toHaveLength(16);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ct).not.toBe(b.ct);
    expect(JSON.stringify(a)).not.toContain("same");
  });

  it("gives each record one data key, shared by its fields, and opens from a cold vault", async () => {
    const access = await vault.seal("access-xyz", ctx());
    const refresh = await vault.seal("refresh-xyz", ctx({ field: "refresh_token" }));
    const other = await vault.seal("access-other", ctx({ record: "conn_2" }));
    expect(access.dek).toBe(refresh.dek);
    expect(other.dek).not.toBe(access.dek);
    expect(await store.dataKeys.countByKek()).toEqual(new Map([["env-1", 2]]));

    const cold = fresh();
    expect((await cold.open(refresh, ctx({ field: "refresh_token" }))).toString()).toBe("refresh-xyz");
    expect((await cold.open(other, ctx({ record: "conn_2" }))).toString()).toBe("access-other");
  });

  describe("associated data binds every ciphertext to its context", () => {
    it("refuses a ciphertext moved to another record, field, tenant or provider", async () => {
      const r1 = await vault.seal("secret-of-conn-1", ctx());
      const r2 = await vault.seal("secret-of-conn-2", ctx({ record: "conn_2" }));
      const refresh = await vault.seal("refresh-of-conn-1", ctx({ field: "refresh_token" }));
      const otherTenant = await vault.seal("secret-of-globex", ctx({ tenant: "globex" }));

      // Swapping two records' ciphertexts: each opened in the other's context.
      await rejects(vault.open(r2, ctx()), "SECRET_UNDECRYPTABLE");
      await rejects(vault.open(r1, ctx({ record: "conn_2" })), "SECRET_UNDECRYPTABLE");
      // The same swap keeping each record's own data key id: the GCM tag refuses it.
      await rejects(vault.open({ ...r2, dek: r1.dek }, ctx()), "SECRET_UNDECRYPTABLE");
      // Swapping fields within one record (same data key): associated data refuses it.
      await rejects(vault.open(refresh, ctx()), "SECRET_UNDECRYPTABLE");
      await rejects(vault.open(r1, ctx({ field: "refresh_token" })), "SECRET_UNDECRYPTABLE");
      // Swapping tenants (same record id).
      await rejects(vault.open(otherTenant, ctx()), "SECRET_UNDECRYPTABLE");
      await rejects(vault.open(r1, ctx({ tenant: "globex" })), "SECRET_UNDECRYPTABLE");
      await rejects(vault.open({ ...otherTenant, dek: r1.dek }, ctx()), "SECRET_UNDECRYPTABLE");
      // Another provider.
      await rejects(vault.open(r1, ctx({ provider: "slack" })), "SECRET_UNDECRYPTABLE");

      // The originals still open, and a cold vault refuses the swaps too.
      expect((await vault.open(r1, ctx())).toString()).toBe("secret-of-conn-1");
      const cold = fresh();
      await rejects(cold.open(r2, ctx()), "SECRET_UNDECRYPTABLE");
      await rejects(cold.open(refresh, ctx()), "SECRET_UNDECRYPTABLE");
    });

    it("says what failed without revealing the secret", async () => {
      const sealed = await vault.seal("gho_do_not_leak_me", ctx());
      const err = await rejects(vault.open(sealed, ctx({ field: "refresh_token" })), "SECRET_UNDECRYPTABLE");
      expect(err.message).toMatch(/refresh_token of record conn_1 does not open/);
      for (const text of [err.message, JSON.stringify(err.metadata), String(err.stack)]) {
        expect(text).not.toContain("gho_do_not_leak_me");
        expect(text).not.toContain(sealed.ct);
      }
    });
  });

  it("refuses a tampered tag, ciphertext or IV, a short tag and malformed values", async () => {
    const sealed = await vault.seal("tamper-me-please", ctx());
    const cases: SealedSecret[] = [
      { ...sealed, tag: flip(sealed.tag) },
      { ...sealed, tag: flip(sealed.tag, 15) },
      { ...sealed, ct: flip(sealed.ct) },
      { ...sealed, ct: flip(sealed.ct, 15) },
      { ...sealed, iv: flip(sealed.iv) },
      { ...sealed, iv: flip(sealed.iv, 11) },
      { ...sealed, tag: Buffer.from(sealed.tag, "base64").subarray(0, 4).toString("base64") },
      { ...sealed, tag: Buffer.from(sealed.tag, "base64").subarray(0, 12).toString("base64") },
      { ...sealed, iv: Buffer.alloc(16).toString("base64") },
      { ...sealed, ct: sealed.ct + "AA==" },
      { ...sealed, ct: "not base64!" },
      { ...sealed, v: 2 as 1 },
      { ...sealed, dek: "" },
      null as unknown as SealedSecret,
    ];
    for (const bad of cases) await rejects(vault.open(bad, ctx()), "SECRET_UNDECRYPTABLE");
    expect((await vault.open(sealed, ctx())).toString()).toBe("tamper-me-please");
  });

  it("refuses an invalid context", async () => {
    await rejects(vault.seal("x", ctx({ tenant: "" })), "INVALID_REQUEST");
    await rejects(vault.seal("x", ctx({ field: undefined as unknown as string })), "INVALID_REQUEST");
    await rejects(vault.seal("x", ctx({ record: "bad\uD800" })), "INVALID_REQUEST");
    await vault.seal("x", ctx({ provider: "" }));
  });

  // A database dump only exists for MongoDB; the memory store never leaves the process.
  if (name !== "memory") it("keeps no plaintext, and no key material, anywhere in the database", async () => {
    if (!backend.dump || !backend.keep) throw new Error("this backend cannot be dumped");
    const secrets = [
      ["acme", "conn_1", "github", "access_token", "gho_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"],
      ["acme", "conn_1", "github", "refresh_token", "ghr_ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210"],
      ["acme", "conn_2", "slack", "access_token", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"],
      ["globex", "github", "github", "client_secret", "0123456789abcdef0123456789abcdef01234567"],
      ["globex", "root_1", "", "root_private_key", "ed25519/private/4f1a2b3c4d5e6f708192a3b4c5d6e7f8"],
    ] as const;
    const kept: object[] = [];
    for (const [tenant, record, provider, field, secret] of secrets) {
      const sealed = await vault.seal(secret, { tenant, record, provider, field });
      kept.push({ tenant, record, field, sealed });
    }
    await backend.keep(kept);
    const dump = await backend.dump();
    expect(dump).toContain("sealed_secrets_under_test");
    expect(dump).toContain("data_keys");

    const forms = (b: Buffer) => [b.toString("base64"), b.toString("base64url"), b.toString("hex"), b.toString("hex").toUpperCase()];
    for (const [, , , , secret] of secrets) {
      expect(dump).not.toContain(secret);
      for (const form of forms(Buffer.from(secret))) expect(dump).not.toContain(form);
    }
    // Neither the KEK nor any unwrapped data key is in it.
    for (const form of forms(Buffer.alloc(32, 7))) expect(dump).not.toContain(form);
    for (const [tenant, record] of [["acme", "conn_1"], ["acme", "conn_2"], ["globex", "github"], ["globex", "root_1"]]) {
      const doc = (await store.dataKeys.findByRecord(tenant, record))!;
      const dek = await kms.unwrap(doc.kekId, Buffer.from(doc.wrapped, "base64"), { dekId: doc.id, tenant, record });
      for (const form of forms(dek)) expect(dump).not.toContain(form);
      expect(dump).toContain(doc.wrapped);
    }
  });

  it("seals provider client secrets and root private keys with the same vault", async () => {
    const clientSecret = { tenant: "acme", record: "provider:github", provider: "github", field: "client_secret" };
    const rootKey = { tenant: "acme", record: "root_key_2026_11", provider: "", field: "root_private_key" };
    const pkcs8 = Buffer.from("302e020100300506032b657004220420" + "11".repeat(32), "hex");
    const s1 = await vault.seal("gh-client-secret-123", clientSecret);
    const s2 = await vault.seal(pkcs8, rootKey);
    expect(s1.dek).not.toBe(s2.dek);
    expect((await fresh().open(s1, clientSecret)).toString()).toBe("gh-client-secret-123");
    expect(await fresh().open(s2, rootKey)).toEqual(pkcs8);
    await rejects(vault.open(s1, { ...rootKey }), "SECRET_UNDECRYPTABLE");
    await rejects(vault.open(s2, { ...rootKey, field: "client_secret" }), "SECRET_UNDECRYPTABLE");
  });

  it("makes concurrent first seals from two independent vaults agree on one data key", async () => {
    const second = await backend.second();
    const kms2 = await openLocalKeyring({ source: "env", key: KEK });
    const v1 = fresh(store, kms);
    const v2 = fresh(second, kms2);
    const seals = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? v2 : v1).seal(`secret-${i}`, ctx({ record: "conn_new", field: `f${i}` })),
      ),
    );
    expect(new Set(seals.map((s) => s.dek)).size).toBe(1);
    expect(await store.dataKeys.countByKek()).toEqual(new Map([["env-1", 1]]));
    for (const [i, s] of seals.entries()) {
      for (const v of [v1, v2, fresh()]) {
        expect((await v.open(s, ctx({ record: "conn_new", field: `f${i}` }))).toString()).toBe(`secret-${i}`);
      }
    }
  });

  it("unwraps once per data key, then serves from the cache; concurrent cold opens share one unwrap", async () => {
    const sealed = await vault.seal("cached", ctx());
    const spy = counting(kms);
    const v = fresh(store, spy);
    await Promise.all(Array.from({ length: 20 }, () => v.open(sealed, ctx())));
    for (let i = 0; i < 20; i++) await v.open(sealed, ctx());
    expect(spy.unwraps).toBe(1);
    expect(JSON.stringify(v)).toBe('{"vault":"envelope","cachedDataKeys":1}');
  });

  it("destroys a record key: its secrets no longer open; a new seal gets a new key; others are untouched", async () => {
    const gone = await vault.seal("soon-gone", ctx());
    const kept = await vault.seal("kept", ctx({ record: "conn_2" }));
    const otherVault = fresh();
    await otherVault.open(kept, ctx({ record: "conn_2" }));
    await vault.destroyRecordKey("acme", "conn_1");
    await vault.destroyRecordKey("acme", "conn_1"); // idempotent
    await rejects(vault.open(gone, ctx()), "SECRET_UNDECRYPTABLE");
    await rejects(fresh().open(gone, ctx()), "SECRET_UNDECRYPTABLE");
    const again = await vault.seal("new-life", ctx());
    expect(again.dek).not.toBe(gone.dek);
    expect((await fresh().open(again, ctx())).toString()).toBe("new-life");
    await rejects(fresh().open(gone, ctx()), "SECRET_UNDECRYPTABLE");
    expect((await otherVault.open(kept, ctx({ record: "conn_2" }))).toString()).toBe("kept");
  });

  describe("data key documents", () => {
    /** Replace the stored data key of conn_1 (simulating a restored backup or an attacker with write access). */
    async function replaceDataKey(change: (doc: DataKeyRecord) => object) {
      const doc = (await store.dataKeys.findByRecord("acme", "conn_1"))!;
      await store.dataKeys.deleteByRecord("acme", "conn_1");
      expect(await store.dataKeys.insert({ ...doc, ...change(doc) })).toBe(true);
    }

    it("an unknown KEK id gives KEK_UNKNOWN", async () => {
      const sealed = await vault.seal("kek-unknown", ctx());
      await replaceDataKey(() => ({ kekId: "kek-nobody-has" }));
      const err = await rejects(fresh().open(sealed, ctx()), "KEK_UNKNOWN");
      expect(err.metadata.kekId).toBe("kek-nobody-has");
    });

    it("a tampered wrapped key, or a wrapped key moved to another record, does not unwrap", async () => {
      const sealed = await vault.seal("wrapped", ctx());
      const other = await vault.seal("other", ctx({ record: "conn_2" }));
      const otherDoc = (await store.dataKeys.findByRecord("acme", "conn_2"))!;
      await replaceDataKey((doc) => ({ wrapped: flip(doc.wrapped, 20) }));
      await rejects(fresh().open(sealed, ctx()), "SECRET_UNDECRYPTABLE");
      await replaceDataKey(() => ({ wrapped: otherDoc.wrapped }));
      await rejects(fresh().open(sealed, ctx()), "SECRET_UNDECRYPTABLE");
      expect((await fresh().open(other, ctx({ record: "conn_2" }))).toString()).toBe("other");
    });
  });
});

describe("envelope vault on FerretDB without ensureIndexes", () => {
  it("still creates one data key per record when two brokers race on a brand-new database", async () => {
    const t = await openTestDatabase("vault_noidx");
    const c2 = new MongoClient(t.uri);
    await c2.connect();
    try {
      const kms = await openLocalKeyring({ source: "env", key: KEK });
      const a = new EnvelopeVault({ dataKeys: mongoStoreOn(t.client, t.db).dataKeys, kms });
      const b = new EnvelopeVault({ dataKeys: mongoStoreOn(c2, c2.db(t.name)).dataKeys, kms });
      const seals = await Promise.all(
        Array.from({ length: 6 }, (_, i) => (i % 2 ? b : a).seal(`s${i}`, ctx({ field: `f${i}` }))),
      );
      expect(new Set(seals.map((s) => s.dek)).size).toBe(1);
      expect(await t.db.collection("data_keys").countDocuments({})).toBe(1);
    } finally {
      await c2.close();
      await t.drop();
    }
  });
});
