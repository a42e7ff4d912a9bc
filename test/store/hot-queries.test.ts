import { MongoClient, type CommandStartedEvent } from "mongodb";
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/audit-log.js";
import { listAuditPage } from "../../src/audit/audit-pages.js";
import { segmentDocumentId } from "../../src/store/mongodb/audit-segments.js";
import { COLLECTIONS } from "../../src/store/mongodb/collections.js";
import { mongoStoreOn } from "../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../src/store/store.js";
import { openTestDatabase, type TestDatabase } from "../support/mongo.js";
import { openVault } from "../../src/vault/open-vault.js";
import { openLocalKeyring } from "../../src/vault/local-keyring.js";

/**
 * The queries a broker runs on every call, or on every page and poll, must cost the same at a million documents as at
 * a thousand. On FerretDB 1.24 (SQLite backend) the only query served from an index is an equality on `_id` alone
 * (with test/ferretdb/build.sh's fix); any other filter, sort, range or `$in` scans the whole collection. So these
 * operations may only issue `_id`-equality finds, which this test checks on the wire with the driver's command
 * monitoring, and FerretDB's own query plan confirms the index is used.
 */
describe("hot queries are `_id` lookups", () => {
  let tdb: TestDatabase;
  let monitored: MongoClient | undefined;
  afterEach(async () => {
    await monitored?.close();
    await tdb?.drop();
  });

  async function setUp(): Promise<{ store: Store; finds: Record<string, unknown>[] }> {
    tdb = await openTestDatabase("hot");
    const seedStore = mongoStoreOn(tdb.client, tdb.db);
    await seedStore.ensureIndexes();
    const now = new Date();
    await seedStore.connections.insert({ id: "conn_1", tenant: "acme", user: "u", provider: "gh", scopes: [], status: "active", createdAt: now, updatedAt: now });
    for (let g = 1; g <= 3; g++) {
      await seedStore.credentials.insert({ tenant: "acme", connection: "conn_1", provider: "gh", generation: g, kind: "needs_reauth", scopes: [], createdAt: now });
    }
    await seedStore.revocations.insert({ id: "ab".repeat(16), tenant: "acme", reason: "", revokedAt: now });
    const log = new AuditLog(seedStore.audit, { writer: "w1" });
    for (let i = 0; i < 30; i++) await log.recordAndWait({ tenant: "acme", action: "proxy", decision: "allow", path: `/p/${i}` });

    monitored = new MongoClient(tdb.uri, { monitorCommands: true });
    await monitored.connect();
    const finds: Record<string, unknown>[] = [];
    monitored.on("commandStarted", (e: CommandStartedEvent) => {
      if (e.commandName === "find") finds.push({ collection: e.command.find, filter: e.command.filter, sort: e.command.sort });
    });
    return { store: mongoStoreOn(monitored, monitored.db(tdb.name)), finds };
  }

  it("connection lookup, newest credential, revocation check, audit head, page and chain read", async () => {
    const { store, finds } = await setUp();
    expect((await store.connections.get("acme", "conn_1"))?.id).toBe("conn_1");
    expect(await store.connections.get("other-tenant", "conn_1")).toBeUndefined();
    expect((await store.credentials.latest("acme", "conn_1"))?.generation).toBe(3);
    expect(await store.credentials.latest("other-tenant", "conn_1")).toBeUndefined();
    expect(await store.revocations.findRevoked("acme", ["ab".repeat(16), "cd".repeat(16)])).toEqual(["ab".repeat(16)]);
    expect(await store.audit.head("acme", "w1")).toBe(30);
    expect((await store.audit.listChain("acme", "w1", 10, 5)).map((e) => e.sequence)).toEqual([11, 12, 13, 14, 15]);
    const page = await listAuditPage(store.audit, { tenant: "acme", writer: "w1", limit: 20, afterSequence: 5 });
    expect(page.events).toHaveLength(20);

    expect(finds.length).toBeGreaterThan(10);
    const notById = finds.filter((f) => !isIdEquality(f.filter) || f.sort !== undefined);
    expect(notById).toEqual([]);
  });

  it("a record's data key is found, and a new record's created, with `_id` lookups only", async () => {
    const { store, finds } = await setUp();
    const keyring = await openLocalKeyring({ source: "dev" });
    const vault = await openVault({ dataKeys: store.dataKeys, keyring });
    const context = (record: string) => ({ tenant: "acme", record, provider: "gh", field: "access_token" as const });
    for (let i = 0; i < 5; i++) await vault.seal(`secret-${i}`, context(`conn_new_${i}`));
    // A fresh vault (no cache) finds the existing keys.
    const again = await openVault({ dataKeys: store.dataKeys, keyring });
    const sealed = await again.seal("another", context("conn_new_3"));
    expect((await again.open(sealed, context("conn_new_3"))).toString()).toBe("another");
    const dataKeyFinds = finds.filter((f) => f.collection === COLLECTIONS.dataKeys || f.collection === COLLECTIONS.dataKeyRecords);
    expect(dataKeyFinds.length).toBeGreaterThan(5);
    expect(dataKeyFinds.filter((f) => !isIdEquality(f.filter) || f.sort !== undefined)).toEqual([]);
  });

  it("a data key stored without its pointer (by an older version) is still the one its record uses", async () => {
    const { store } = await setUp();
    const keyring = await openLocalKeyring({ source: "dev" });
    const vault = await openVault({ dataKeys: store.dataKeys, keyring });
    const context = { tenant: "acme", record: "conn_legacy", provider: "gh", field: "access_token" as const };
    const first = await vault.seal("before the upgrade", context);
    await tdb.db.collection(COLLECTIONS.dataKeyRecords).deleteMany({});
    const upgraded = await openVault({ dataKeys: store.dataKeys, keyring });
    const second = await upgraded.seal("after the upgrade", context);
    expect(second.dek).toBe(first.dek);
    expect(await tdb.db.collection(COLLECTIONS.dataKeys).countDocuments({ record: "conn_legacy" })).toBe(1);
    expect((await upgraded.open(first, context)).toString()).toBe("before the upgrade");
  });

  it("FerretDB serves an `_id` equality from its index (explain)", async () => {
    const { store } = await setUp();
    void store;
    const info = await tdb.db.admin().command({ buildInfo: 1 });
    const explained = await tdb.db.collection(COLLECTIONS.auditSegments).find({ _id: segmentDocumentId("acme", "w1", 1) } as never).explain();
    if (info.ferretdbVersion) {
      expect(JSON.stringify(explained.queryPlanner)).toContain("USING INDEX");
    } else {
      expect(JSON.stringify(explained.queryPlanner)).toMatch(/IDHACK|EXPRESS_IXSCAN|IXSCAN/);
    }
  });
});

function isIdEquality(filter: unknown): boolean {
  if (!filter || typeof filter !== "object") return false;
  const keys = Object.keys(filter);
  return keys.length === 1 && keys[0] === "_id" && typeof (filter as { _id: unknown })._id === "string";
}
