import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AuditRecord, ConnectionRecord } from "../../src/store/records.js";
import type { Store } from "../../src/store/store.js";
import { STORE_BACKENDS, type StoreUnderTest } from "./store-backends.js";

const t0 = new Date("2026-01-01T00:00:00.000Z");
const at = (s: number) => new Date(t0.getTime() + s * 1000);

function connection(id: string, over: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    id,
    tenant: "acme",
    user: "u1",
    provider: "github",
    scopes: ["repo"],
    status: "active",
    createdAt: t0,
    updatedAt: t0,
    ...over,
  };
}

function auditEvent(tenant: string, sequence: number, over: Partial<AuditRecord> = {}): AuditRecord {
  return {
    id: `ev-${tenant}-${sequence}`,
    tenant,
    writer: "w1",
    sequence,
    time: at(sequence),
    action: "proxy",
    subject: "agent-1",
    delegationChain: ["aa", "bb"],
    connection: "c1",
    provider: "github",
    method: "GET",
    path: "/repos/acme",
    decision: "allow",
    reason: "",
    detail: "",
    upstreamStatus: 200,
    latencyMs: 3,
    previousHash: "p",
    hash: "h",
    ...over,
  };
}

describe.each(STORE_BACKENDS)("store contract: $name", (backend) => {
  let sut: StoreUnderTest;
  let store: Store;
  beforeEach(async () => {
    sut = await backend.open();
    store = sut.store;
  });
  afterEach(async () => {
    await sut.dispose();
  });

  it("answers ping and creates indexes idempotently", async () => {
    await store.ping();
    await store.ensureIndexes();
    await store.ensureIndexes();
  });

  describe("tenants", () => {
    it("inserts once and reads back exactly", async () => {
      expect(await store.tenants.insert({ id: "acme", name: "Acme", createdAt: t0 })).toBe(true);
      expect(await store.tenants.insert({ id: "acme", name: "Other", createdAt: at(1) })).toBe(false);
      expect(await store.tenants.get("acme")).toEqual({ id: "acme", name: "Acme", createdAt: t0 });
      expect(await store.tenants.get("nope")).toBeUndefined();
      await store.tenants.insert({ id: "beta", name: "Beta", createdAt: t0 });
      expect((await store.tenants.list()).map((t) => t.id)).toEqual(["acme", "beta"]);
    });
  });

  describe("connections", () => {
    it("round-trips a record, including optional fields and dates", async () => {
      const c = connection("c1", { account: "octocat", expiresAt: at(3600) });
      expect(await store.connections.insert(c)).toBe(true);
      expect(await store.connections.get("acme", "c1")).toEqual(c);
    });

    it("refuses a second insert with the same id", async () => {
      expect(await store.connections.insert(connection("c1"))).toBe(true);
      expect(await store.connections.insert(connection("c1", { user: "u2" }))).toBe(false);
      expect((await store.connections.get("acme", "c1"))?.user).toBe("u1");
    });

    it("scopes reads, updates and deletes to the tenant, while findById finds any tenant's", async () => {
      await store.connections.insert(connection("c1"));
      expect((await store.connections.findById("c1"))?.tenant).toBe("acme");
      expect(await store.connections.findById("c9")).toBeUndefined();
      expect(await store.connections.get("other", "c1")).toBeUndefined();
      expect(await store.connections.update("other", "c1", { status: "needs_reauth" })).toBeUndefined();
      expect(await store.connections.delete("other", "c1")).toBe(false);
      expect((await store.connections.get("acme", "c1"))?.status).toBe("active");
    });

    it("lists a tenant's connections oldest first, optionally by user", async () => {
      await store.connections.insert(connection("c2", { createdAt: at(2), user: "u2" }));
      await store.connections.insert(connection("c1", { createdAt: at(1) }));
      await store.connections.insert(connection("c3", { createdAt: at(3), tenant: "other" }));
      expect((await store.connections.list("acme")).map((c) => c.id)).toEqual(["c1", "c2"]);
      expect((await store.connections.list("acme", "u2")).map((c) => c.id)).toEqual(["c2"]);
      expect(await store.connections.list("nobody")).toEqual([]);
    });

    it("updates fields, unsets undefined ones, and keeps identity", async () => {
      await store.connections.insert(connection("c1", { expiresAt: at(10) }));
      const updated = await store.connections.update("acme", "c1", {
        status: "needs_reauth",
        expiresAt: undefined,
        updatedAt: at(5),
      });
      expect(updated).toEqual(connection("c1", { status: "needs_reauth", updatedAt: at(5) }));
      expect(await store.connections.get("acme", "c1")).toEqual(updated);
    });

    it("deletes", async () => {
      await store.connections.insert(connection("c1"));
      expect(await store.connections.delete("acme", "c1")).toBe(true);
      expect(await store.connections.delete("acme", "c1")).toBe(false);
      expect(await store.connections.get("acme", "c1")).toBeUndefined();
    });
  });

  describe("revocations", () => {
    it("records each revocation id once per tenant and finds a tenant's revoked ids", async () => {
      const r = { id: "ab12", tenant: "acme", reason: "leaked", revokedAt: at(1) };
      expect(await store.revocations.insert(r)).toBe(true);
      expect(await store.revocations.insert({ ...r, reason: "again" })).toBe(false);
      await store.revocations.insert({ id: "cd34", tenant: "acme", reason: "", revokedAt: at(5) });
      expect(await store.revocations.findRevoked("acme", ["zz", "cd34", "ab12"])).toEqual(["cd34", "ab12"]);
      expect(await store.revocations.findRevoked("acme", [])).toEqual([]);
      expect(await store.revocations.findRevoked("globex", ["cd34", "ab12"])).toEqual([]);
      expect((await store.revocations.listSince(at(2))).map((x) => x.id)).toEqual(["cd34"]);
      expect(await store.revocations.listSince(at(0))).toEqual([r, { id: "cd34", tenant: "acme", reason: "", revokedAt: at(5) }]);
    });

    it("a revocation belongs to the tenant that recorded it: another tenant may record the same id separately", async () => {
      const acme = { id: "ef56", tenant: "acme", reason: "", revokedAt: at(1) };
      const globex = { id: "ef56", tenant: "globex", reason: "", revokedAt: at(2) };
      expect(await store.revocations.insert(acme)).toBe(true);
      expect(await store.revocations.insert(globex)).toBe(true);
      expect(await store.revocations.findRevoked("globex", ["ef56"])).toEqual(["ef56"]);
      expect((await store.revocations.listSince(at(0))).filter((x) => x.id === "ef56")).toEqual([acme, globex]);
    });

    it("lets exactly one of many concurrent revocations of one id win", async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.revocations.insert({ id: "same", tenant: "acme", reason: `r${i}`, revokedAt: at(i) }),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it("appends every revocation to the revocation log, read back by position until the first missing one", async () => {
      expect(await store.revocations.logHead()).toBe(0);
      expect(await store.revocations.readLog(0)).toBeUndefined();
      await store.revocations.insert({ id: "ab12", tenant: "acme", reason: "", revokedAt: at(1) });
      await store.revocations.logRootKeyChange();
      // A repeated revocation is logged again (a retry after a failure between the two writes must reach pollers).
      expect(await store.revocations.insert({ id: "ab12", tenant: "acme", reason: "", revokedAt: at(3) })).toBe(false);
      expect(await store.revocations.readLog(0)).toEqual({ seq: 0, at: at(1), kind: "revocation", tenant: "acme", id: "ab12" });
      expect(await store.revocations.readLog(1)).toMatchObject({ seq: 1, kind: "root-keys" });
      expect(await store.revocations.readLog(2)).toEqual({ seq: 2, at: at(3), kind: "revocation", tenant: "acme", id: "ab12" });
      expect(await store.revocations.readLog(3)).toBeUndefined();
      expect(await store.revocations.logHead()).toBe(3);
    });

    it("concurrent revocations take distinct log positions with no gap", async () => {
      await Promise.all(
        Array.from({ length: 12 }, (_, i) => store.revocations.insert({ id: `c${i}`, tenant: "acme", reason: "", revokedAt: at(i) })),
      );
      const entries = await Promise.all(Array.from({ length: 13 }, (_, i) => store.revocations.readLog(i)));
      expect(entries[12]).toBeUndefined();
      const ids = entries.slice(0, 12).map((e) => (e?.kind === "revocation" ? e.id : "missing"));
      expect(new Set(ids)).toEqual(new Set(Array.from({ length: 12 }, (_, i) => `c${i}`)));
      expect(await store.revocations.logHead()).toBe(12);
    });
  });

  describe("audit", () => {
    it("stores each event once under (tenant, writer, sequence) and reads it back by key", async () => {
      await store.audit.insertMany([auditEvent("acme", 1), auditEvent("acme", 2), auditEvent("beta", 1)]);
      await expect(store.audit.insertMany([auditEvent("acme", 2, { id: "other-id" })])).rejects.toThrow();
      expect(await store.audit.get("acme", "w1", 2)).toEqual(auditEvent("acme", 2));
      expect(await store.audit.get("acme", "w2", 2)).toBeUndefined();
      expect(await store.audit.get("nobody", "w1", 1)).toBeUndefined();
    });

    it("skips events already stored, never overwrites one, and stores a chain's batch all or nothing", async () => {
      await store.audit.insertMany([auditEvent("acme", 1), auditEvent("acme", 2)]);
      // A retry of what was stored, with more: only the new events are stored.
      await store.audit.insertMany([1, 2, 3].map((s) => auditEvent("acme", s)));
      expect((await store.audit.listChain("acme", "w1", 0, 10)).map((e) => e.id)).toEqual(["ev-acme-1", "ev-acme-2", "ev-acme-3"]);
      // Another event at a stored key is refused, and nothing of its batch is stored.
      await expect(store.audit.insertMany([2, 3, 4].map((s) => auditEvent("acme", s, { id: `retry-${s}` })))).rejects.toThrow();
      expect((await store.audit.get("acme", "w1", 2))?.id).toBe("ev-acme-2");
      expect(await store.audit.get("acme", "w1", 4)).toBeUndefined();
    });

    it("refuses events that do not continue their chain (a gap), storing none of that chain's batch", async () => {
      await store.audit.insertMany([auditEvent("acme", 1)]);
      await expect(store.audit.insertMany([auditEvent("acme", 3), auditEvent("acme", 4)])).rejects.toThrow();
      expect(await store.audit.head("acme", "w1")).toBe(1);
      await expect(store.audit.insertMany([auditEvent("beta", 2)])).rejects.toThrow();
      expect(await store.audit.head("beta", "w1")).toBe(0);
    });

    it("lists a chain in order from any position, and finds its head", async () => {
      await store.audit.insertMany([1, 2, 3].map((s) => auditEvent("acme", s)));
      await store.audit.insertMany([4, 5].map((s) => auditEvent("acme", s)));
      expect((await store.audit.listChain("acme", "w1", 0, 10)).map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5]);
      expect((await store.audit.listChain("acme", "w1", 2, 2)).map((e) => e.sequence)).toEqual([3, 4]);
      expect((await store.audit.listChain("acme", "w1", 4, 10)).map((e) => e.sequence)).toEqual([5]);
      expect(await store.audit.listChain("acme", "w1", 5, 10)).toEqual([]);
      expect(await store.audit.listChain("acme", "w2", 0, 10)).toEqual([]);
      expect(await store.audit.head("acme", "w2")).toBe(0);
      expect(await store.audit.head("acme", "w1")).toBe(5);
      await store.audit.insertMany([6, 7].map((s) => auditEvent("acme", s)));
      expect(await store.audit.head("acme", "w1")).toBe(7);
    });

    it("registers writers once and lists a tenant's chains oldest first", async () => {
      await store.audit.registerWriter({ tenant: "acme", writer: "wb", startedAt: at(2) });
      await store.audit.registerWriter({ tenant: "acme", writer: "wa", startedAt: at(1) });
      await store.audit.registerWriter({ tenant: "acme", writer: "wa", startedAt: at(9) });
      await store.audit.registerWriter({ tenant: "beta", writer: "wc", startedAt: at(1) });
      expect((await store.audit.writers("acme")).map((w) => [w.writer, w.startedAt])).toEqual([["wa", at(1)], ["wb", at(2)]]);
    });

    it("scans every event of one tenant", async () => {
      await store.audit.insertMany([auditEvent("acme", 1), auditEvent("beta", 1), auditEvent("acme", 1, { writer: "w2" })]);
      const seen: string[] = [];
      for await (const e of store.audit.scan("acme")) seen.push(`${e.writer}/${e.sequence}`);
      expect(seen.sort()).toEqual(["w1/1", "w2/1"]);
    });
  });

  describe("leases", () => {
    it("grants a lease to exactly one of many concurrent claimants", async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.leases.insert({ key: "refresh:c1:1", holder: `p${i}`, acquiredAt: t0, expiresAt: at(30) }),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await store.leases.get("refresh:c1:1"))?.holder).toBe(`p${winner}`);
    });

    it("releases only for its holder and purges expired leases", async () => {
      await store.leases.insert({ key: "a", holder: "p1", acquiredAt: t0, expiresAt: at(10) });
      await store.leases.insert({ key: "b", holder: "p1", acquiredAt: t0, expiresAt: at(100) });
      expect(await store.leases.release("a", "p2")).toBe(false);
      expect(await store.leases.release("a", "p1")).toBe(true);
      expect(await store.leases.get("a")).toBeUndefined();
      await store.leases.insert({ key: "a", holder: "p3", acquiredAt: t0, expiresAt: at(10) });
      expect(await store.leases.deleteExpired(at(50))).toBe(1);
      expect(await store.leases.get("b")).toEqual({ key: "b", holder: "p1", acquiredAt: t0, expiresAt: at(100) });
    });
  });
});

describe.each(STORE_BACKENDS)("root keys contract: $name", (backend) => {
  let sut: StoreUnderTest;
  afterEach(async () => sut?.dispose());
  const sealed = { v: 1 as const, dek: "d1", iv: "aXY=", ct: "Y3Q=", tag: "dGFn" };

  it("inserts each id once, lists in id order, and retires", async () => {
    sut = await backend.open();
    const keys = sut.store.rootKeys;
    const results = await Promise.all(
      [1, 1, 1].map((id, i) => keys.insert({ id, algorithm: "ed25519", publicKeyHex: `pk${i}`, sealedPrivateKey: sealed, createdAt: t0 })),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    await keys.insert({ id: 3, algorithm: "ed25519", publicKeyHex: "pk3", sealedPrivateKey: sealed, createdAt: at(3) });
    await keys.insert({ id: 2, algorithm: "ed25519", publicKeyHex: "pk2", sealedPrivateKey: sealed, createdAt: at(2) });
    expect((await keys.list()).map((k) => k.id)).toEqual([1, 2, 3]);
    expect(await keys.retire(2, at(9))).toBe(true);
    expect(await keys.retire(42, at(9))).toBe(false);
    const two = (await keys.list()).find((k) => k.id === 2)!;
    expect(two).toEqual({ id: 2, algorithm: "ed25519", publicKeyHex: "pk2", sealedPrivateKey: sealed, createdAt: at(2), retiredAt: at(9) });
  });
});
