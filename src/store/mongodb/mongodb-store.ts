import { MongoClient, type Collection, type Db } from "mongodb";
import { CapvaultError } from "../../errors/capvault-error.js";
import type { ConnectionRecord, LeaseRecord, RevocationRecord, TenantRecord } from "../records.js";
import type {
  ConnectionRepository,
  LeaseRepository,
  RevocationRepository,
  TenantRepository,
} from "../repositories.js";
import { appendToLog, findLogHead, revocationLogId, type RevocationLogEntry } from "../revocation-log.js";
import type { Store } from "../store.js";
import { COLLECTIONS, insertOnce } from "./collections.js";
import { MongoAudit } from "./mongodb-audit.js";
import { ensureDataKeyIndexes, MongoDataKeys } from "./mongodb-data-keys.js";
import { MongoCredentials } from "./mongodb-credentials.js";
import { MongoRootKeys } from "./mongodb-root-keys.js";
import { MongoDisconnectFailures } from "./mongodb-disconnect-failures.js";
import { MongoApprovals } from "./mongodb-approvals.js";
import { MongoOAuthStates } from "./mongodb-oauth-states.js";

type Doc<T, K extends keyof T> = Omit<T, K> & { _id: string };

/** Strip `_id` and undefined values so records round-trip exactly. */
function fromDoc<T>(doc: Record<string, unknown> | null, idField?: string): T | undefined {
  if (!doc) return undefined;
  const { _id, ...rest } = doc;
  return (idField ? { [idField]: _id, ...rest } : rest) as T;
}

class MongoTenants implements TenantRepository {
  constructor(private readonly c: Collection<Doc<TenantRecord, "id">>) {}
  insert({ id, ...rest }: TenantRecord) {
    return insertOnce(this.c, { _id: id, ...rest });
  }
  async get(id: string) {
    return fromDoc<TenantRecord>(await this.c.findOne({ _id: id }), "id");
  }
  async list() {
    return (await this.c.find({}).sort({ _id: 1 }).toArray()).map((d) => fromDoc<TenantRecord>(d, "id")!);
  }
}

class MongoConnections implements ConnectionRepository {
  constructor(private readonly c: Collection<Doc<ConnectionRecord, "id">>) {}
  insert({ id, ...rest }: ConnectionRecord) {
    return insertOnce(this.c, { _id: id, ...rest });
  }
  async get(tenant: string, id: string) {
    // By `_id` alone (served from the index on FerretDB too), then the tenant checked here.
    const doc = await this.c.findOne({ _id: id });
    return doc && doc.tenant === tenant ? fromDoc<ConnectionRecord>(doc, "id") : undefined;
  }
  async findById(id: string) {
    return fromDoc<ConnectionRecord>(await this.c.findOne({ _id: id }), "id");
  }
  async list(tenant: string, user?: string) {
    const filter = user === undefined ? { tenant } : { tenant, user };
    const docs = await this.c.find(filter).sort({ createdAt: 1, _id: 1 }).toArray();
    return docs.map((d) => fromDoc<ConnectionRecord>(d, "id")!);
  }
  async update(tenant: string, id: string, patch: Partial<ConnectionRecord>) {
    const $set: Record<string, unknown> = {};
    const $unset: Record<string, ""> = {};
    for (const [k, v] of Object.entries(patch)) {
      if (k === "id" || k === "tenant" || k === "createdAt") continue;
      if (v === undefined) $unset[k] = "";
      else $set[k] = v;
    }
    const update: Record<string, unknown> = {};
    if (Object.keys($set).length) update.$set = $set;
    if (Object.keys($unset).length) update.$unset = $unset;
    if (!Object.keys(update).length) return this.get(tenant, id);
    const res = await this.c.updateOne({ _id: id, tenant }, update);
    return res.matchedCount ? this.get(tenant, id) : undefined;
  }
  async delete(tenant: string, id: string) {
    return (await this.c.deleteOne({ _id: id, tenant })).deletedCount === 1;
  }
}

/** Revocation documents are keyed `<tenant>:<revocation id>`: a revocation belongs to the tenant that recorded it. */
export const revocationDocumentId = (tenant: string, id: string) => `${tenant}:${id}`;

type RevocationDoc = Omit<RevocationRecord, "id"> & { _id: string; revocationId?: string };

/** A revocation log entry (revocation-log.ts), keyed `revlog:<n>`. */
type RevocationLogDoc = { _id: string; at: Date; kind: "revocation" | "root-keys"; tenant?: string; revocationId?: string };

/**
 * A log read is bounded on the client too (the driver's timeoutMS): a stalled database must not keep a poller's
 * connection forever. The poller has its own, shorter bound (revocation-poller.ts).
 */
const LOG_READ_TIMEOUT_MS = 5_000;

class MongoRevocations implements RevocationRepository {
  /** The position after the last log entry this process saw (read or wrote): where its next append starts. */
  private logHint: number | undefined;

  constructor(
    private readonly c: Collection<RevocationDoc>,
    private readonly log: Collection<RevocationLogDoc>,
  ) {}
  async insert({ id, ...rest }: RevocationRecord) {
    const inserted = await insertOnce(this.c, { _id: revocationDocumentId(rest.tenant, id), revocationId: id, ...rest });
    await this.append({ at: rest.revokedAt, kind: "revocation", tenant: rest.tenant, revocationId: id });
    return inserted;
  }
  async listSince(since: Date) {
    const docs = await this.c.find({ revokedAt: { $gte: since } }).sort({ revokedAt: 1, _id: 1 }).toArray();
    // Documents written before revocations were keyed by tenant have `_id` = the revocation id and no revocationId.
    return docs.map((d) => ({ id: d.revocationId ?? d._id, tenant: d.tenant, reason: d.reason, revokedAt: d.revokedAt }));
  }
  async findRevoked(tenant: string, ids: string[]) {
    if (!ids.length) return [];
    // One `_id` equality lookup per id: FerretDB serves those from its index, never `$in`.
    const found = await Promise.all(ids.map((id) => this.c.findOne({ _id: revocationDocumentId(tenant, id) }, { projection: { _id: 1 } })));
    return ids.filter((_, i) => found[i] !== null);
  }
  async logRootKeyChange() {
    await this.append({ at: new Date(), kind: "root-keys" });
  }
  logHead() {
    return findLogHead((seq) => this.exists(seq), this.logHint ?? 0);
  }
  async readLog(seq: number): Promise<RevocationLogEntry | undefined> {
    const d = await this.log.findOne({ _id: revocationLogId(seq) }, { timeoutMS: LOG_READ_TIMEOUT_MS });
    if (!d) return undefined;
    this.saw(seq);
    return d.kind === "root-keys"
      ? { seq, at: d.at, kind: "root-keys" }
      : { seq, at: d.at, kind: "revocation", tenant: d.tenant!, id: d.revocationId! };
  }
  private async append(event: Omit<RevocationLogDoc, "_id">) {
    const seq = await appendToLog(
      (n) => insertOnce(this.log, { _id: revocationLogId(n), ...event }),
      (n) => this.exists(n),
      this.logHint,
    );
    this.saw(seq);
  }
  private async exists(seq: number) {
    return (await this.log.findOne({ _id: revocationLogId(seq) }, { projection: { _id: 1 }, timeoutMS: LOG_READ_TIMEOUT_MS })) !== null;
  }
  private saw(seq: number) {
    this.logHint = Math.max(this.logHint ?? 0, seq + 1);
  }
}

class MongoLeases implements LeaseRepository {
  constructor(private readonly c: Collection<Doc<LeaseRecord, "key">>) {}
  insert({ key, ...rest }: LeaseRecord) {
    return insertOnce(this.c, { _id: key, ...rest });
  }
  async get(key: string) {
    return fromDoc<LeaseRecord>(await this.c.findOne({ _id: key }), "key");
  }
  async release(key: string, holder: string) {
    return (await this.c.deleteOne({ _id: key, holder })).deletedCount === 1;
  }
  async deleteExpired(before: Date) {
    return (await this.c.deleteMany({ expiresAt: { $lt: before } })).deletedCount;
  }
}

/** Open the MongoDB-backed store. The URI may carry credentials: it is never logged (see describeMongoUri). */
export async function openMongoStore(uri: string, database: string): Promise<Store> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, appName: "capvault", monitorCommands: true });
  try {
    await client.connect();
  } catch (err) {
    throw new CapvaultError("STORE_UNAVAILABLE", `cannot reach MongoDB at ${describeMongoUri(uri)}`, { cause: err });
  }
  return mongoStoreOn(client, client.db(database));
}

/** Build the store on an existing connection (tests share one client). */
export function mongoStoreOn(client: MongoClient, db: Db): Store {
  return {
    kind: "mongodb",
    tenants: new MongoTenants(db.collection(COLLECTIONS.tenants)),
    connections: new MongoConnections(db.collection(COLLECTIONS.connections)),
    revocations: new MongoRevocations(db.collection(COLLECTIONS.revocations), db.collection(COLLECTIONS.revocationLog)),
    audit: new MongoAudit(db),
    leases: new MongoLeases(db.collection(COLLECTIONS.leases)),
    dataKeys: new MongoDataKeys(db.collection(COLLECTIONS.dataKeys), db.collection(COLLECTIONS.dataKeyRecords)),
    oauthStates: new MongoOAuthStates(db),
    credentials: new MongoCredentials(db),
    rootKeys: new MongoRootKeys(db.collection(COLLECTIONS.rootKeys)),
    disconnectFailures: new MongoDisconnectFailures(db),
    approvals: new MongoApprovals(db),
    async ensureIndexes() {
      await db.collection(COLLECTIONS.connections).createIndex({ tenant: 1, user: 1, createdAt: 1 });
      await db.collection(COLLECTIONS.revocations).createIndex({ revokedAt: 1 });
      await MongoAudit.ensureIndexes(db);
      await db.collection(COLLECTIONS.leases).createIndex({ expiresAt: 1 });
      await ensureDataKeyIndexes(db.collection(COLLECTIONS.dataKeys));
      await Promise.all([MongoOAuthStates, MongoCredentials, MongoDisconnectFailures, MongoApprovals].map((r) => r.ensureIndexes(db)));
    },
    onCommandFailed(listener) {
      client.on("commandFailed", (event) => listener(event.commandName));
    },
    async ping() {
      // Bounded like the readiness check that calls it, so unanswered pings do not pile up on a stuck server.
      await db.command({ ping: 1 }, { timeoutMS: 1_500 });
    },
    async close() {
      await client.close();
    },
  };
}

/** A MongoDB URI with any password removed, for messages and logs. */
export function describeMongoUri(uri: string): string {
  return uri.replace(/\/\/([^:@/]*):([^@/]*)@/, "//$1:***@");
}
