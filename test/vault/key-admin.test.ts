import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CapvaultError, type Reason } from "../../src/errors/capvault-error.js";
import type { DataKeyRecord } from "../../src/store/data-key-repository.js";
import type { Store } from "../../src/store/store.js";
import { EnvelopeVault } from "../../src/vault/envelope-vault.js";
import { keyStatus, retireKek, rewrapDataKeys, rotateKeyring } from "../../src/vault/key-admin.js";
import { openLocalKeyring, type LocalKeyring } from "../../src/vault/local-keyring.js";
import { openVault } from "../../src/vault/open-vault.js";
import type { SealedSecret, SecretContext } from "../../src/vault/vault.js";
import { BACKENDS, type OpenedBackend } from "./backends.js";

async function rejects(p: Promise<unknown>, reason: Reason): Promise<CapvaultError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${reason}`).toBeInstanceOf(CapvaultError);
  expect((err as CapvaultError).reason).toBe(reason);
  return err as CapvaultError;
}

const ctx = (i: number, field = "access_token"): SecretContext => ({
  tenant: i % 3 ? "acme" : "globex",
  record: `conn_${i}`,
  provider: "github",
  field,
});

describe.each(BACKENDS)("key administration on %s", (_name, openBackend) => {
  let backend: OpenedBackend;
  let store: Store;
  let dir: string;
  let path: string;
  let broker: LocalKeyring;
  let vault: EnvelopeVault;
  let sealed: { sealed: SealedSecret; context: SecretContext; plaintext: string }[];

  const counts = async () =>
    Object.fromEntries((await keyStatus({ dataKeys: store.dataKeys, kms: broker })).map((s) => [s.id, [s.state, s.dataKeys]]));

  async function sealRecords(from: number, to: number) {
    for (let i = from; i < to; i++) {
      for (const field of ["access_token", "refresh_token"]) {
        const plaintext = `${field}-of-${i}-${"z".repeat(i)}`;
        sealed.push({ sealed: await vault.seal(plaintext, ctx(i, field)), context: ctx(i, field), plaintext });
      }
    }
  }

  async function expectAllOpen(v: EnvelopeVault) {
    for (const s of sealed) expect((await v.open(s.sealed, s.context)).toString()).toBe(s.plaintext);
  }

  beforeEach(async () => {
    backend = await openBackend();
    store = backend.store;
    dir = await mkdtemp(join(tmpdir(), "capvault-keys-"));
    path = join(dir, "keyring.json");
    await rotateKeyring(path, { id: "kek-1" });
    broker = await openLocalKeyring({ source: "file", path });
    vault = await openVault({ dataKeys: store.dataKeys, keyring: broker });
    sealed = [];
  });
  afterEach(async () => {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("rotate, rewrap, status, retire: every secret still opens, and the retired KEK is refused", async () => {
    await sealRecords(0, 10);
    const before = new Map((await store.dataKeys.listNotWrappedBy("none", 100)).map((d) => [d.id, d]));
    expect(await counts()).toEqual({ "kek-1": ["active", 10] });

    await rotateKeyring(path, { id: "kek-2" });
    // The running broker picks the rotation up: a new record's key is wrapped by kek-2.
    await sealRecords(10, 11);
    expect(await counts()).toEqual({ "kek-1": ["decrypt-only", 10], "kek-2": ["active", 1] });
    await rejects(retireKek(path, "kek-1", { dataKeys: store.dataKeys }), "KEK_IN_USE");
    await rejects(retireKek(path, "kek-2", { dataKeys: store.dataKeys }), "KEK_IN_USE");
    await rejects(retireKek(path, "kek-9", { dataKeys: store.dataKeys }), "KEK_UNKNOWN");

    const admin = await openLocalKeyring({ source: "file", path });
    const result = await rewrapDataKeys({ dataKeys: store.dataKeys, kms: admin, batchSize: 3 });
    expect(result).toMatchObject({ activeKekId: "kek-2", rewrapped: 10, skipped: 0, failed: [], complete: true });
    expect(await counts()).toEqual({ "kek-1": ["decrypt-only", 0], "kek-2": ["active", 11] });

    // Only the wrapping changed: same data key ids, same records, new KEK and wrapped bytes.
    for (const [id, old] of before) {
      const now = (await store.dataKeys.get(id))!;
      expect({ ...now, kekId: old.kekId, wrapped: old.wrapped, rewrappedAt: undefined }).toEqual({ ...old, rewrappedAt: undefined });
      expect(now.kekId).toBe("kek-2");
      expect(now.wrapped).not.toBe(old.wrapped);
      expect(now.rewrappedAt).toBeInstanceOf(Date);
    }
    await expectAllOpen(vault); // warm cache
    await expectAllOpen(new EnvelopeVault({ dataKeys: store.dataKeys, kms: admin })); // cold, new wrappings

    expect(await retireKek(path, "kek-1", { dataKeys: store.dataKeys })).toEqual({ kekId: "kek-1", alreadyRetired: false });
    expect(await counts()).toEqual({ "kek-1": ["retired", 0], "kek-2": ["active", 11] });
    await expectAllOpen(new EnvelopeVault({ dataKeys: store.dataKeys, kms: broker }));

    // The retired KEK is refused even though its material is still in the file: a data key restored from a backup
    // made before the rewrap does not open.
    const old = before.values().next().value! as DataKeyRecord;
    await rejects(broker.unwrap("kek-1", Buffer.from(old.wrapped, "base64"), { dekId: old.id, tenant: old.tenant, record: old.record }), "KEK_RETIRED");
    await store.dataKeys.deleteByRecord(old.tenant, old.record);
    await store.dataKeys.insert(old);
    const restored = sealed.find((s) => s.context.record === old.record && s.context.tenant === old.tenant)!;
    await rejects(new EnvelopeVault({ dataKeys: store.dataKeys, kms: broker }).open(restored.sealed, restored.context), "KEK_RETIRED");
    const again = await rewrapDataKeys({ dataKeys: store.dataKeys, kms: admin });
    expect(again.complete).toBe(false);
    expect(again.failed).toEqual([{ dekId: old.id, kekId: "kek-1", reason: "KEK_RETIRED" }]);
  });

  it("rewrap interrupted halfway is resumed by the next run", async () => {
    await sealRecords(0, 23);
    await rotateKeyring(path, { id: "kek-2" });
    const first = await rewrapDataKeys({ dataKeys: store.dataKeys, kms: broker, batchSize: 4, maxBatches: 3 });
    expect(first).toMatchObject({ rewrapped: 12, batches: 3, complete: false });
    expect(await counts()).toMatchObject({ "kek-1": ["decrypt-only", 11], "kek-2": ["active", 12] });
    // Brokers keep serving in the middle of it.
    await expectAllOpen(new EnvelopeVault({ dataKeys: store.dataKeys, kms: broker }));

    const aborted = new AbortController();
    const second = await rewrapDataKeys({
      dataKeys: store.dataKeys,
      kms: broker,
      batchSize: 4,
      signal: aborted.signal,
      onBatch: () => aborted.abort(),
    });
    expect(second).toMatchObject({ rewrapped: 4, complete: false });

    const last = await rewrapDataKeys({ dataKeys: store.dataKeys, kms: broker, batchSize: 4 });
    expect(last).toMatchObject({ rewrapped: 7, complete: true, failed: [] });
    expect(await counts()).toMatchObject({ "kek-1": ["decrypt-only", 0], "kek-2": ["active", 23] });
    expect(await rewrapDataKeys({ dataKeys: store.dataKeys, kms: broker })).toMatchObject({ rewrapped: 0, complete: true });
    await expectAllOpen(new EnvelopeVault({ dataKeys: store.dataKeys, kms: broker }));
  });

  it("two rewrappers racing (separate connections) while brokers open secrets: all still open", async () => {
    await sealRecords(0, 15);
    await rotateKeyring(path, { id: "kek-2" });
    const other = await backend.second();
    const kmsA = await openLocalKeyring({ source: "file", path });
    const kmsB = await openLocalKeyring({ source: "file", path });
    const serving = (async () => {
      let opened = 0;
      for (let round = 0; round < 3; round++) {
        const cold = new EnvelopeVault({ dataKeys: other.dataKeys, kms: broker });
        for (const s of sealed) {
          expect((await cold.open(s.sealed, s.context)).toString()).toBe(s.plaintext);
          opened++;
        }
      }
      return opened;
    })();
    const [a, b, opened] = await Promise.all([
      rewrapDataKeys({ dataKeys: store.dataKeys, kms: kmsA, batchSize: 2 }),
      rewrapDataKeys({ dataKeys: other.dataKeys, kms: kmsB, batchSize: 3 }),
      serving,
    ]);
    expect(opened).toBe(sealed.length * 3);
    expect(a.failed).toEqual([]);
    expect(b.failed).toEqual([]);
    // Every data key was re-wrapped at least once (on FerretDB both racers' updates may "win").
    expect(a.rewrapped + b.rewrapped).toBeGreaterThanOrEqual(15);
    expect(await counts()).toMatchObject({ "kek-1": ["decrypt-only", 0], "kek-2": ["active", 15] });
    await retireKek(path, "kek-1", { dataKeys: store.dataKeys });
    await expectAllOpen(new EnvelopeVault({ dataKeys: store.dataKeys, kms: broker }));
  });

  it("rewrap reports data keys whose KEK is missing, and status lists that KEK as missing", async () => {
    await sealRecords(0, 3);
    const doc = (await store.dataKeys.findByRecord("acme", "conn_1"))!;
    await store.dataKeys.deleteByRecord("acme", "conn_1");
    await store.dataKeys.insert({ ...doc, kekId: "kek-lost" });
    await rotateKeyring(path, { id: "kek-2" });
    const r = await rewrapDataKeys({ dataKeys: store.dataKeys, kms: broker });
    expect(r).toMatchObject({ rewrapped: 2, complete: false, failed: [{ dekId: doc.id, kekId: "kek-lost", reason: "KEK_UNKNOWN" }] });
    expect(await counts()).toEqual({ "kek-1": ["decrypt-only", 0], "kek-2": ["active", 2], "kek-lost": ["missing", 1] });
  });
});
