import { Binary, MongoClient } from "mongodb";
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/audit-log.js";
import { listAuditPage } from "../../src/audit/audit-pages.js";
import { tailAudit } from "../../src/audit/tail-audit.js";
import { verifyAuditChain } from "../../src/audit/verify-audit.js";
import { COLLECTIONS } from "../../src/store/mongodb/collections.js";
import { auditDocumentId } from "../../src/store/mongodb/mongodb-audit.js";
import { mongoStoreOn } from "../../src/store/mongodb/mongodb-store.js";
import type { AuditRecord } from "../../src/store/records.js";
import type { AuditRepository } from "../../src/store/repositories.js";
import { storedAuditEvents, tamperWithAuditSegment } from "../support/audit-documents.js";
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

async function allEvents(audit: AuditRepository, tenant: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const e of audit.scan(tenant)) out.push(e);
  return out.sort((a, b) => a.writer.localeCompare(b.writer) || a.sequence - b.sequence);
}

describe.each(STORE_BACKENDS)("audit log on $name", (backend) => {
  let sut: StoreUnderTest;
  afterEach(async () => sut?.dispose());

  it("writes committed events in order as one verifiable chain per tenant", async () => {
    sut = await backend.open();
    const log = new AuditLog(sut.store.audit);
    await Promise.all(Array.from({ length: 25 }, (_, i) => log.recordAndWait(entry(i, i % 2 ? "acme" : "beta"))));
    const acme = await sut.store.audit.listChain("acme", log.writer, 0, 100);
    expect(acme.map((e) => e.sequence)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(acme.map((e) => e.path)).toEqual(Array.from({ length: 12 }, (_, i) => `/repos/acme/widgets/${2 * i + 1}`));
    expect(await verifyAuditChain(sut.store.audit, "acme")).toEqual({ ok: true, eventsChecked: 12, chainsChecked: 1 });
    expect(await verifyAuditChain(sut.store.audit, "beta")).toEqual({ ok: true, eventsChecked: 13, chainsChecked: 1 });
  });

  it("answers a commit only once its event is stored", async () => {
    sut = await backend.open();
    const log = new AuditLog(sut.store.audit);
    const stored = await log.reserve().commit(entry(1));
    expect(await sut.store.audit.get("acme", log.writer, stored.sequence)).toEqual(stored);
  });

  it("gives every writer its own chain, so writers never wait for each other", async () => {
    sut = await backend.open();
    const writers = [new AuditLog(sut.store.audit), new AuditLog(sut.store.audit), new AuditLog(sut.store.audit)];
    await Promise.all(writers.flatMap((w, k) => Array.from({ length: 10 }, (_, i) => w.recordAndWait(entry(k * 100 + i)))));
    expect(await verifyAuditChain(sut.store.audit, "acme")).toEqual({ ok: true, eventsChecked: 30, chainsChecked: 3 });
    expect(new Set(writers.map((w) => w.writer)).size).toBe(3);
  });

  it("refuses a reservation past its bound, before anything is done (fails closed)", async () => {
    sut = await backend.open();
    const log = new AuditLog(sut.store.audit, { maxQueued: 3 });
    const slots = [log.reserve(), log.reserve(), log.reserve()];
    expect(() => log.reserve()).toThrow(expect.objectContaining({ reason: "AUDIT_UNAVAILABLE" }));
    await Promise.all(slots.map((s, i) => s.commit(entry(i))));
    await log.recordAndWait(entry(5));
    expect(await verifyAuditChain(sut.store.audit, "acme")).toEqual({ ok: true, eventsChecked: 4, chainsChecked: 1 });
  });

  it("pages through every chain, and tails events as they are written", async () => {
    sut = await backend.open();
    const [a, b] = [new AuditLog(sut.store.audit, { writer: "wa" }), new AuditLog(sut.store.audit, { writer: "wb" })];
    for (let i = 0; i < 3; i++) await a.recordAndWait(entry(i));
    for (let i = 0; i < 2; i++) await b.recordAndWait(entry(10 + i));
    const first = await listAuditPage(sut.store.audit, { tenant: "acme", limit: 4 });
    expect(first.events.map((e) => `${e.writer}/${e.sequence}`)).toEqual(["wa/1", "wa/2", "wa/3", "wb/1"]);
    const second = await listAuditPage(sut.store.audit, { tenant: "acme", limit: 4, pageToken: first.nextPageToken });
    expect(second.events.map((e) => `${e.writer}/${e.sequence}`)).toEqual(["wb/2"]);

    const controller = new AbortController();
    const seen: string[] = [];
    const tail = (async () => {
      for await (const e of tailAudit(sut.store.audit, "acme", controller.signal, { fromNow: true, pollMs: 20 })) {
        seen.push(`${e.writer}/${e.sequence}`);
        if (seen.length === 2) controller.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    await b.recordAndWait(entry(20));
    await a.recordAndWait(entry(21));
    await tail;
    expect(seen.sort()).toEqual(["wa/4", "wb/3"]);
  });

  it("stores every event exactly once through a database outage, refusing new work while it lasts", async () => {
    sut = await backend.open();
    const faulty = new FaultyAudit(sut.store.audit);
    const log = new AuditLog(faulty, { commitTimeoutMs: 300 });
    await log.recordAndWait(entry(0));
    faulty.down = true;
    const during = Array.from({ length: 30 }, (_, i) => log.reserve().commit(entry(1 + i)));
    const outcomes = await Promise.allSettled(during);
    expect(outcomes.every((o) => o.status === "rejected" && (o.reason as { reason: string }).reason === "AUDIT_WRITE_FAILED")).toBe(true);
    expect(log.healthy).toBe(false);
    expect(() => log.reserve()).toThrow(expect.objectContaining({ reason: "AUDIT_UNAVAILABLE" }));
    faulty.down = false;
    expect(await log.flush(10_000)).toBe(true);
    expect(log.healthy).toBe(true);
    const stored = await allEvents(sut.store.audit, "acme");
    expect(stored).toHaveLength(31);
    expect(new Set(stored.map((e) => e.path)).size).toBe(31);
    expect(await verifyAuditChain(sut.store.audit, "acme")).toMatchObject({ ok: true, eventsChecked: 31 });
  });

  it("a caller stops waiting commitTimeoutMs after its own commit, whatever earlier commits did", async () => {
    sut = await backend.open();
    const faulty = new FaultyAudit(sut.store.audit);
    const log = new AuditLog(faulty, { commitTimeoutMs: 300 });
    await log.recordAndWait(entry(0)); // answered at once
    await new Promise((r) => setTimeout(r, 200));
    faulty.down = true;
    const committedAt = performance.now();
    const late = log.reserve().commit(entry(1));
    const outcome = await late.then(
      () => "stored",
      (err: { reason?: string }) => err.reason,
    );
    const waited = performance.now() - committedAt;
    expect(outcome).toBe("AUDIT_WRITE_FAILED");
    expect(waited).toBeGreaterThanOrEqual(290); // not when the first commit's time ran out
    expect(waited).toBeLessThan(1500);
    faulty.down = false;
    expect(await log.flush(10_000)).toBe(true);
    expect(await allEvents(sut.store.audit, "acme")).toHaveLength(2); // given up by its caller, stored all the same
  });

  it("gives up a write that never answers and retries it: the writer recovers and stores each event once", async () => {
    sut = await backend.open();
    const faulty = new FaultyAudit(sut.store.audit);
    const log = new AuditLog(faulty, { attemptTimeoutMs: 200, stallMs: 100 });
    await log.recordAndWait(entry(0));
    // The next insert neither answers nor fails (a connection accepted by a restarting server, say).
    faulty.hangNextInsert = true;
    const stored = log.recordAndWait(entry(1));
    await new Promise((r) => setTimeout(r, 150));
    expect(log.healthy).toBe(false);
    expect((await stored).sequence).toBe(2);
    expect(log.healthy).toBe(true);
    expect(faulty.hung).toBe(1);
    await log.recordAndWait(entry(2));
    const events = await allEvents(sut.store.audit, "acme");
    expect(events.map((e) => e.path)).toEqual([0, 1, 2].map((i) => `/repos/acme/widgets/${i}`));
    expect(await verifyAuditChain(sut.store.audit, "acme")).toMatchObject({ ok: true, eventsChecked: 3 });
  });
});

/** Fault injection: a database that is down (every call fails) while `down` is set. */
class FaultyAudit implements AuditRepository {
  down = false;
  /** The next insertMany never settles (and stores nothing). */
  hangNextInsert = false;
  hung = 0;
  constructor(private readonly real: AuditRepository) {}
  get keepsEverything() {
    return this.real.keepsEverything;
  }
  private check() {
    if (this.down) throw Object.assign(new Error("connection refused (injected)"), { name: "MongoNetworkError" });
  }
  async registerWriter(...a: Parameters<AuditRepository["registerWriter"]>) {
    this.check();
    return this.real.registerWriter(...a);
  }
  writers(tenant: string) {
    return this.real.writers(tenant);
  }
  async insertMany(events: AuditRecord[]) {
    this.check();
    if (this.hangNextInsert) {
      this.hangNextInsert = false;
      this.hung++;
      return new Promise<void>(() => {});
    }
    return this.real.insertMany(events);
  }
  async get(tenant: string, writer: string, sequence: number) {
    this.check();
    return this.real.get(tenant, writer, sequence);
  }
  head(tenant: string, writer: string) {
    return this.real.head(tenant, writer);
  }
  async listChain(...a: Parameters<AuditRepository["listChain"]>) {
    this.check();
    return this.real.listChain(...a);
  }
  scan(tenant: string) {
    return this.real.scan(tenant);
  }
}

describe("audit trail in MongoDB", () => {
  let tdb: TestDatabase;
  afterEach(async () => tdb?.drop());

  async function seed(n: number) {
    tdb = await openTestDatabase("audit");
    const store = mongoStoreOn(tdb.client, tdb.db);
    await store.ensureIndexes();
    const log = new AuditLog(store.audit, { writer: "w1" });
    for (let i = 0; i < n; i++) await log.recordAndWait(entry(i));
    expect(await verifyAuditChain(store.audit, "acme")).toEqual({ ok: true, eventsChecked: n, chainsChecked: 1 });
    return store;
  }

  it("names the event whose document was edited", async () => {
    const store = await seed(6);
    const target = (await store.audit.get("acme", "w1", 4))!;
    await tamperWithAuditSegment(tdb.db, "acme", "w1", 4, (events) => events.map((e) => (e.sequence === 4 ? { ...e, decision: "deny" } : e)));
    const result = await verifyAuditChain(store.audit, "acme");
    expect(result.ok).toBe(false);
    expect(result.broken).toMatchObject({ id: target.id, writer: "w1", sequence: 4 });
    expect(result.broken!.problem).toContain("edited");
  });

  it("notices a deleted event", async () => {
    const store = await seed(5);
    await tamperWithAuditSegment(tdb.db, "acme", "w1", 2, () => undefined);
    const result = await verifyAuditChain(store.audit, "acme");
    expect(result).toMatchObject({ ok: false, broken: { sequence: 3 } });
    expect(result.broken!.problem).toContain("missing");
  });

  it("notices two events swapped", async () => {
    const store = await seed(5);
    const [a, b] = [(await store.audit.get("acme", "w1", 2))!, (await store.audit.get("acme", "w1", 3))!];
    await tamperWithAuditSegment(tdb.db, "acme", "w1", 2, () => [{ ...b, sequence: 2 }]);
    await tamperWithAuditSegment(tdb.db, "acme", "w1", 3, () => [{ ...a, sequence: 3 }]);
    const result = await verifyAuditChain(store.audit, "acme");
    expect(result).toMatchObject({ ok: false, broken: { sequence: 2 } });
  });

  it("names the segment whose stored bytes were corrupted", async () => {
    const store = await seed(4);
    await tdb.db.collection(COLLECTIONS.auditSegments).updateOne({ tenant: "acme", writer: "w1", first: 3 }, { $set: { events: new Binary(Buffer.from("not deflate")) } });
    expect(await verifyAuditChain(store.audit, "acme")).toMatchObject({ ok: false, broken: { writer: "w1", sequence: 3, problem: expect.stringContaining("cannot be decoded") } });
  });

  it("names the segment whose header was edited to hide where its events are", async () => {
    const store = await seed(4);
    await tdb.db.collection(COLLECTIONS.auditSegments).updateOne({ tenant: "acme", writer: "w1", first: 2 }, { $set: { first: 5 } });
    expect(await verifyAuditChain(store.audit, "acme")).toMatchObject({ ok: false, broken: { writer: "w1", sequence: 5, problem: expect.stringContaining("do not match the segment") } });
  });

  it("stores a group commit as one document per chain, and reads any event, page and head by `_id`", async () => {
    tdb = await openTestDatabase("audit");
    const store = mongoStoreOn(tdb.client, tdb.db);
    await store.ensureIndexes();
    const log = new AuditLog(store.audit, { writer: "w1" });
    // 200 commits in one turn of the event loop: one batch of 200 events, then one batch of 100 for two tenants.
    await Promise.all(Array.from({ length: 200 }, (_, i) => log.recordAndWait(entry(i))));
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.recordAndWait(entry(200 + i, i % 2 ? "acme" : "beta"))));
    const segments = await tdb.db.collection(COLLECTIONS.auditSegments).find({}).sort({ _id: 1 }).toArray();
    expect(segments.map((d) => [d.tenant, d.segment, d.first, d.count])).toEqual([
      ["acme", 1, 1, 200],
      ["acme", 2, 201, 50],
      ["beta", 1, 1, 50],
    ]);
    expect(await store.audit.head("acme", "w1")).toBe(250);
    expect(await store.audit.head("beta", "w1")).toBe(50);
    expect((await store.audit.get("acme", "w1", 201))?.path).toBe("/repos/acme/widgets/201");
    expect((await store.audit.listChain("acme", "w1", 195, 10)).map((e) => e.sequence)).toEqual([196, 197, 198, 199, 200, 201, 202, 203, 204, 205]);
    expect(await store.audit.listChain("acme", "w1", 250, 10)).toEqual([]);
    expect(await store.audit.get("acme", "w1", 251)).toBeUndefined();
    expect(await verifyAuditChain(store.audit, "acme")).toEqual({ ok: true, eventsChecked: 250, chainsChecked: 1 });
  });

  it("keeps chains stored one document per event (before segments) readable and verifiable", async () => {
    await seed(5);
    const events = await storedAuditEvents(tdb.db);
    await tdb.db.collection(COLLECTIONS.auditSegments).deleteMany({});
    await tdb.db.collection(COLLECTIONS.audit).insertMany(events.map((e) => ({ _id: auditDocumentId(e.tenant, e.writer, e.sequence), ...e })) as never[]);
    const store = mongoStoreOn(tdb.client, tdb.db);
    expect(await store.audit.head("acme", "w1")).toBe(5);
    expect((await store.audit.listChain("acme", "w1", 2, 10)).map((e) => e.sequence)).toEqual([3, 4, 5]);
    expect(await store.audit.get("acme", "w1", 4)).toEqual(events.find((e) => e.sequence === 4));
    expect(await verifyAuditChain(store.audit, "acme")).toEqual({ ok: true, eventsChecked: 5, chainsChecked: 1 });
    await tdb.db.collection(COLLECTIONS.audit).updateOne({ _id: auditDocumentId("acme", "w1", 4) } as never, { $set: { decision: "deny" } });
    expect(await verifyAuditChain(store.audit, "acme")).toMatchObject({ ok: false, broken: { sequence: 4 } });
  });

  it("refuses a chain injected under a writer that never registered", async () => {
    const store = await seed(3);
    const forged = { ...(await store.audit.get("acme", "w1", 1))!, writer: "forger" };
    await store.audit.insertMany([forged]);
    const result = await verifyAuditChain(store.audit, "acme");
    expect(result).toMatchObject({ ok: false, broken: { writer: "forger" } });
    expect(result.broken!.problem).toContain("never registered");
  });

  it("keeps every chain verifiable across two separate database clients (two broker processes)", async () => {
    tdb = await openTestDatabase("audit");
    const second = new MongoClient(tdb.uri);
    await second.connect();
    try {
      const a = mongoStoreOn(tdb.client, tdb.db);
      await a.ensureIndexes();
      const b = mongoStoreOn(second, second.db(tdb.name));
      const logs = [new AuditLog(a.audit), new AuditLog(b.audit)];
      await Promise.all(logs.flatMap((log, k) => Array.from({ length: 20 }, (_, i) => log.recordAndWait(entry(k * 100 + i)))));
      expect(await verifyAuditChain(a.audit, "acme")).toEqual({ ok: true, eventsChecked: 40, chainsChecked: 2 });
    } finally {
      await second.close();
    }
  });

  it("recovers exactly from a batch of over 100 events whose first event was already stored", async () => {
    // The fault: the first write stores the batch's first event and then the connection drops, and the read-back
    // fails too, so the whole batch is sent again with an already-stored event first. FerretDB 1.24 does not honour
    // `ordered: true` for batches over 100 (it stores documents 100+ and reports index 0), so a writer that trusts
    // the server's report duplicates and breaks the chain; this writer reads back what is stored.
    tdb = await openTestDatabase("audit");
    const store = mongoStoreOn(tdb.client, tdb.db);
    await store.ensureIndexes();
    let inserts = 0;
    let reads = 0;
    const flaky: AuditRepository = Object.assign(Object.create(store.audit) as AuditRepository, {
      async insertMany(events: AuditRecord[]) {
        if (inserts++ === 0) {
          await store.audit.insertMany(events.slice(0, 1));
          throw Object.assign(new Error("connection reset (injected)"), { name: "MongoNetworkError" });
        }
        return store.audit.insertMany(events);
      },
      async listChain(...a: Parameters<AuditRepository["listChain"]>) {
        if (reads++ === 0) throw Object.assign(new Error("connection reset (injected)"), { name: "MongoNetworkError" });
        return store.audit.listChain(...a);
      },
    });
    const log = new AuditLog(flaky, { writer: "w1" });
    await Promise.all(Array.from({ length: 150 }, (_, i) => log.recordAndWait(entry(i))));
    expect(inserts).toBeGreaterThanOrEqual(2);
    expect(reads).toBeGreaterThanOrEqual(1);
    const stored = await storedAuditEvents(tdb.db, (e) => e.tenant === "acme");
    expect(stored).toHaveLength(150);
    expect(new Set(stored.map((e) => e.path)).size).toBe(150);
    expect(await verifyAuditChain(store.audit, "acme")).toEqual({ ok: true, eventsChecked: 150, chainsChecked: 1 });
  });

  it("after a write whose answer was lost, reads back the whole batch with one read per chain (not one per event)", async () => {
    // A broker whose database comes back after an outage must not spend seconds of CPU re-reading its backlog: with
    // one lookup per event, each decoding the batch's whole segment, a 500-event batch costs 250,000 event decodes.
    tdb = await openTestDatabase("audit");
    const store = mongoStoreOn(tdb.client, tdb.db);
    await store.ensureIndexes();
    const calls = { inserts: 0, gets: 0, lists: 0 };
    const lostAnswer: AuditRepository = Object.assign(Object.create(store.audit) as AuditRepository, {
      async insertMany(events: AuditRecord[]) {
        await store.audit.insertMany(events);
        if (calls.inserts++ === 0) throw Object.assign(new Error("connection reset (injected)"), { name: "MongoNetworkError" });
      },
      async get(...a: Parameters<AuditRepository["get"]>) {
        calls.gets++;
        return store.audit.get(...a);
      },
      async listChain(...a: Parameters<AuditRepository["listChain"]>) {
        calls.lists++;
        return store.audit.listChain(...a);
      },
    });
    const log = new AuditLog(lostAnswer, { writer: "w1" });
    await Promise.all(Array.from({ length: 500 }, (_, i) => log.recordAndWait(entry(i, i % 2 ? "acme" : "beta"))));
    expect(calls).toEqual({ inserts: 1, gets: 0, lists: 2 });
    expect(await storedAuditEvents(tdb.db, () => true)).toHaveLength(500);
    expect(await verifyAuditChain(store.audit, "acme")).toEqual({ ok: true, eventsChecked: 250, chainsChecked: 1 });
  });
});

describe("AuditLog batches", () => {
  /** The dev store's audit trail, counting the batches it is given. */
  async function countingAudit() {
    const { openMemoryStore } = await import("../../src/store/memory/memory-store.js");
    const audit = openMemoryStore().audit;
    const batches: number[] = [];
    const insertMany = audit.insertMany.bind(audit);
    audit.insertMany = (events: AuditRecord[]) => (batches.push(events.length), insertMany(events));
    return { audit, batches };
  }

  it("a quiet writer stores an event without waiting for the end of the event loop's turn", async () => {
    const { audit, batches } = await countingAudit();
    const log = new AuditLog(audit, { writer: "w1" });
    let turnEnded = false;
    setImmediate(() => (turnEnded = true));
    await log.recordAndWait(entry(1));
    expect(turnEnded).toBe(false);
    expect(batches).toEqual([1]);
  });

  it("a writer that already wrote in this turn gathers the turn's other commits into one batch", async () => {
    const { audit, batches } = await countingAudit();
    const log = new AuditLog(audit, { writer: "w1" });
    await log.recordAndWait(entry(1));
    // Ten commits from ten callbacks of one timers phase (as calls answered in one turn of the event loop commit):
    // the first is written at once, the other nine together at the end of the turn.
    const commits = await new Promise<Array<Promise<AuditRecord>>>((resolve) => {
      const started: Array<Promise<AuditRecord>> = [];
      for (let i = 0; i < 10; i++) {
        setTimeout(() => {
          started.push(log.recordAndWait(entry(2 + i)));
          if (started.length === 10) resolve(started);
        }, 0);
      }
    });
    await Promise.all(commits);
    expect(batches).toEqual([1, 1, 9]);
    expect(await audit.head("acme", "w1")).toBe(11);
    expect(await verifyAuditChain(audit, "acme")).toEqual({ ok: true, eventsChecked: 11, chainsChecked: 1 });
  });
});
