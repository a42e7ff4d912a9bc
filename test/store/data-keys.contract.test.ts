import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DataKeyRecord } from "../../src/store/data-key-repository.js";
import type { Store } from "../../src/store/store.js";
import { BACKENDS, type OpenedBackend } from "../vault/backends.js";

const at = new Date("2026-11-28T10:00:00.000Z");
const key = (id: string, over: Partial<DataKeyRecord> = {}): DataKeyRecord => ({
  id,
  tenant: "t1",
  record: `rec-${id}`,
  kekId: "kek-a",
  wrapped: Buffer.from(`wrapped-${id}`).toString("base64"),
  createdAt: at,
  ...over,
});

describe.each(BACKENDS)("data keys contract: %s", (_name, openBackend) => {
  let backend: OpenedBackend;
  let store: Store;
  beforeEach(async () => {
    backend = await openBackend();
    store = backend.store;
  });
  afterEach(async () => {
    await backend.close();
  });

  it("inserts, gets by id and by record, round-tripping every field", async () => {
    const k = key("dek_1");
    expect(await store.dataKeys.insert(k)).toBe(true);
    expect(await store.dataKeys.get("dek_1")).toEqual(k);
    expect(await store.dataKeys.findByRecord("t1", "rec-dek_1")).toEqual(k);
    expect(await store.dataKeys.get("dek_nope")).toBeUndefined();
    expect(await store.dataKeys.findByRecord("t2", "rec-dek_1")).toBeUndefined();
  });

  it("refuses a second data key for the same tenant + record, and a reused id", async () => {
    expect(await store.dataKeys.insert(key("dek_1", { record: "r" }))).toBe(true);
    expect(await store.dataKeys.insert(key("dek_2", { record: "r" }))).toBe(false);
    expect(await store.dataKeys.insert(key("dek_1", { record: "other" }))).toBe(false);
    expect(await store.dataKeys.insert(key("dek_3", { record: "r", tenant: "t2" }))).toBe(true);
    expect((await store.dataKeys.findByRecord("t1", "r"))!.id).toBe("dek_1");
  });

  it("lets exactly one of many concurrent inserts for one record win (two connections)", async () => {
    const other = await backend.second();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? other : store).dataKeys.insert(key(`dek_race_${i}`, { record: "contended" })),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.indexOf(true);
    expect((await other.dataKeys.findByRecord("t1", "contended"))!.id).toBe(`dek_race_${winner}`);
  });

  it("rewraps only when the expected wrapping still matches", async () => {
    const k = key("dek_1");
    await store.dataKeys.insert(k);
    const next = { kekId: "kek-b", wrapped: "bmV3", rewrappedAt: new Date("2026-11-29T00:00:00.000Z") };
    expect(await store.dataKeys.rewrap("dek_1", { kekId: "kek-a", wrapped: "c3RhbGU=" }, next)).toBe(false);
    expect(await store.dataKeys.rewrap("dek_1", { kekId: "kek-b", wrapped: k.wrapped }, next)).toBe(false);
    expect(await store.dataKeys.rewrap("dek_1", { kekId: "kek-a", wrapped: k.wrapped }, next)).toBe(true);
    expect(await store.dataKeys.get("dek_1")).toEqual({ ...k, ...next });
    expect(await store.dataKeys.rewrap("dek_1", { kekId: "kek-a", wrapped: k.wrapped }, next)).toBe(false);
    expect(await store.dataKeys.rewrap("dek_gone", { kekId: "kek-a", wrapped: k.wrapped }, next)).toBe(false);
    expect(await store.dataKeys.get("dek_gone")).toBeUndefined();
  });

  it("lists data keys not wrapped by a KEK, by id, in pages", async () => {
    for (const id of ["dek_e", "dek_a", "dek_d", "dek_b", "dek_c"]) await store.dataKeys.insert(key(id));
    await store.dataKeys.insert(key("dek_z", { kekId: "kek-b" }));
    const first = await store.dataKeys.listNotWrappedBy("kek-b", 2);
    expect(first.map((k) => k.id)).toEqual(["dek_a", "dek_b"]);
    const second = await store.dataKeys.listNotWrappedBy("kek-b", 2, "dek_b");
    expect(second.map((k) => k.id)).toEqual(["dek_c", "dek_d"]);
    expect((await store.dataKeys.listNotWrappedBy("kek-b", 10, "dek_d")).map((k) => k.id)).toEqual(["dek_e"]);
    expect(await store.dataKeys.listNotWrappedBy("kek-b", 10, "dek_e")).toEqual([]);
    expect((await store.dataKeys.listNotWrappedBy("kek-a", 10)).map((k) => k.id)).toEqual(["dek_z"]);
  });

  it("counts data keys per KEK", async () => {
    expect(await store.dataKeys.countByKek()).toEqual(new Map());
    await store.dataKeys.insert(key("dek_1"));
    await store.dataKeys.insert(key("dek_2"));
    await store.dataKeys.insert(key("dek_3", { kekId: "kek-b" }));
    expect(await store.dataKeys.countByKek()).toEqual(new Map([["kek-a", 2], ["kek-b", 1]]));
  });

  it("deletes a record's data key, after which the record may get a new one", async () => {
    await store.dataKeys.insert(key("dek_1", { record: "r" }));
    await store.dataKeys.insert(key("dek_2", { record: "keep" }));
    expect(await store.dataKeys.deleteByRecord("t2", "r")).toBe(0);
    expect(await store.dataKeys.deleteByRecord("t1", "r")).toBe(1);
    expect(await store.dataKeys.get("dek_1")).toBeUndefined();
    expect(await store.dataKeys.findByRecord("t1", "r")).toBeUndefined();
    expect(await store.dataKeys.insert(key("dek_3", { record: "r" }))).toBe(true);
    expect(await store.dataKeys.get("dek_2")).toBeDefined();
  });
});
