import { MongoClient } from "mongodb";
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/audit-log.js";
import { tailAudit } from "../../src/audit/tail-audit.js";
import { verifyAuditChain } from "../../src/audit/verify-audit.js";
import { COLLECTIONS } from "../../src/store/mongodb/collections.js";
import { auditDocumentId, mongoStoreOn } from "../../src/store/mongodb/mongodb-store.js";
import { openTestDatabase, type TestDatabase } from "../support/mongo.js";
import { STORE_BACKENDS, type StoreUnderTest } from "../store/store-backends.js";

const entry = (i: number, tenant = "acme") => ({
  tenant,
  action: "proxy",
  subject: "agent-7",
  delegationChain: ["r0", "r1"],
  connection: "c1",
  provider: "github",
  method: "GET",
  path: `/repos/acme/widgets/${i}`,
  decision: "allow",
  upstreamStatus: 200,
  latencyMs: 2,
});

describe.each(STORE_BACKENDS)("audit log on $name", (backend) => {
  let sut: StoreUnderTest;
  afterEach(async () => sut?.dispose());

  it("writes queued events in order as one verifiable chain per tenant", async () => {
    sut = await backend.open();
    const log = new AuditLog(sut.store.audit);
    for (let i = 0; i < 25; i++) log.record(entry(i, i % 2 ? "acme" : "beta"));
    await log.flush();
    const acme = await sut.store.audit.list("acme", 0, 100);
    expect(acme.map((e) => e.sequence)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(acme.map((e) => e.path)).toEqual(Array.from({ length: 12 }, (_, i) => `/repos/acme/widgets/${2 * i + 1}`));
    expect(await verifyAuditChain(sut.store.audit, "acme")).toEqual({ ok: true, eventsChecked: 12 });
    expect(await verifyAuditChain(sut.store.audit, "beta")).toEqual({ ok: true, eventsChecked: 13 });
  });

  it("keeps one linear chain when several writers append to one tenant at once", async () => {
    sut = await backend.open();
    const writers = [new AuditLog(sut.store.audit), new AuditLog(sut.store.audit), new AuditLog(sut.store.audit)];
    writers.forEach((w, k) => {
      for (let i = 0; i < 10; i++) w.record(entry(k * 100 + i));
    });
    await Promise.all(writers.map((w) => w.flush()));
    const result = await verifyAuditChain(sut.store.audit, "acme");
    expect(result).toEqual({ ok: true, eventsChecked: 30 });
  });

  it("refuses to queue more than its bound (fails closed)", async () => {
    sut = await backend.open();
    const log = new AuditLog(sut.store.audit, { maxQueued: 3 });
    log.record(entry(1));
    log.record(entry(2));
    log.record(entry(3));
    expect(() => log.record(entry(4))).toThrow(expect.objectContaining({ reason: "AUDIT_WRITE_FAILED" }));
    await log.flush();
    log.record(entry(5));
    await log.flush();
    expect(await verifyAuditChain(sut.store.audit, "acme")).toEqual({ ok: true, eventsChecked: 4 });
  });

  it("tails events as they are written", async () => {
    sut = await backend.open();
    const log = new AuditLog(sut.store.audit);
    log.record(entry(1));
    await log.flush();
    const controller = new AbortController();
    const seen: number[] = [];
    const tail = (async () => {
      for await (const e of tailAudit(sut.store.audit, "acme", 0, controller.signal, 50)) {
        seen.push(e.sequence);
        if (seen.length === 3) controller.abort();
      }
    })();
    log.record(entry(2));
    log.record(entry(3));
    await log.flush();
    await tail;
    expect(seen).toEqual([1, 2, 3]);
  });
});

describe("audit tamper detection in MongoDB", () => {
  let tdb: TestDatabase;
  afterEach(async () => tdb?.drop());

  async function seed(n: number) {
    tdb = await openTestDatabase("audit");
    const store = mongoStoreOn(tdb.client, tdb.db);
    await store.ensureIndexes();
    const log = new AuditLog(store.audit);
    for (let i = 0; i < n; i++) log.record(entry(i));
    await log.flush();
    expect(await verifyAuditChain(store.audit, "acme")).toEqual({ ok: true, eventsChecked: n });
    return store;
  }

  it("names the event whose document was edited", async () => {
    const store = await seed(6);
    const target = (await store.audit.list("acme", 3, 1))[0];
    await tdb.db.collection(COLLECTIONS.audit).updateOne({ _id: auditDocumentId("acme", 4) } as never, { $set: { decision: "deny" } });
    const result = await verifyAuditChain(store.audit, "acme");
    expect(result.ok).toBe(false);
    expect(result.broken).toMatchObject({ id: target.id, sequence: 4 });
    expect(result.broken!.problem).toContain("edited");
  });

  it("notices a deleted event", async () => {
    const store = await seed(5);
    await tdb.db.collection(COLLECTIONS.audit).deleteOne({ _id: auditDocumentId("acme", 2) } as never);
    const result = await verifyAuditChain(store.audit, "acme");
    expect(result).toMatchObject({ ok: false, broken: { sequence: 3 } });
    expect(result.broken!.problem).toContain("missing");
  });

  it("notices two events swapped", async () => {
    const store = await seed(5);
    const col = tdb.db.collection(COLLECTIONS.audit);
    const a = await col.findOne({ _id: auditDocumentId("acme", 2) } as never);
    const b = await col.findOne({ _id: auditDocumentId("acme", 3) } as never);
    await col.replaceOne({ _id: a!._id } as never, { ...b!, _id: a!._id, sequence: 2 });
    await col.replaceOne({ _id: b!._id } as never, { ...a!, _id: b!._id, sequence: 3 });
    const result = await verifyAuditChain(store.audit, "acme");
    expect(result).toMatchObject({ ok: false, broken: { sequence: 2 } });
  });

  it("keeps the chain linear across two separate database clients (two broker processes)", async () => {
    tdb = await openTestDatabase("audit");
    const second = new MongoClient(tdb.uri);
    await second.connect();
    try {
      const a = mongoStoreOn(tdb.client, tdb.db);
      await a.ensureIndexes();
      const b = mongoStoreOn(second, second.db(tdb.name));
      const logs = [new AuditLog(a.audit), new AuditLog(b.audit)];
      logs.forEach((log, k) => {
        for (let i = 0; i < 20; i++) log.record(entry(k * 100 + i));
      });
      await Promise.all(logs.map((l) => l.flush()));
      expect(await verifyAuditChain(a.audit, "acme")).toEqual({ ok: true, eventsChecked: 40 });
    } finally {
      await second.close();
    }
  });
});
