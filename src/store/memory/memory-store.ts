import type { AuditRecord, ConnectionRecord, LeaseRecord, RevocationRecord, TenantRecord } from "../records.js";
import type {
  AuditRepository,
  ConnectionRepository,
  LeaseRepository,
  RevocationRepository,
  TenantRepository,
} from "../repositories.js";
import type { RevocationLogEntry } from "../revocation-log.js";
import type { Store } from "../store.js";
import { MemoryDataKeys } from "./memory-data-keys.js";
import { MemoryCredentials } from "./memory-credentials.js";
import { MemoryRootKeys } from "./memory-root-keys.js";
import { MemoryDisconnectFailures } from "./memory-disconnect-failures.js";
import { MemoryOAuthStates } from "./memory-oauth-states.js";

/** Structured clone keeps callers from mutating stored records, as a database would. */
const copy = <T>(value: T): T => structuredClone(value);

class MemoryTenants implements TenantRepository {
  private readonly rows = new Map<string, TenantRecord>();
  async insert(t: TenantRecord) {
    if (this.rows.has(t.id)) return false;
    this.rows.set(t.id, copy(t));
    return true;
  }
  async get(id: string) {
    const t = this.rows.get(id);
    return t && copy(t);
  }
  async list() {
    return [...this.rows.values()].sort((a, b) => a.id.localeCompare(b.id)).map(copy);
  }
}

class MemoryConnections implements ConnectionRepository {
  private readonly rows = new Map<string, ConnectionRecord>();
  async insert(c: ConnectionRecord) {
    if (this.rows.has(c.id)) return false;
    this.rows.set(c.id, copy(c));
    return true;
  }
  async get(tenant: string, id: string) {
    const c = this.rows.get(id);
    return c && c.tenant === tenant ? copy(c) : undefined;
  }
  async findById(id: string) {
    const c = this.rows.get(id);
    return c && copy(c);
  }
  async list(tenant: string, user?: string) {
    return [...this.rows.values()]
      .filter((c) => c.tenant === tenant && (user === undefined || c.user === user))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id))
      .map(copy);
  }
  async update(tenant: string, id: string, patch: Partial<ConnectionRecord>) {
    const c = this.rows.get(id);
    if (!c || c.tenant !== tenant) return undefined;
    const next = { ...c, ...copy(patch), id: c.id, tenant: c.tenant, createdAt: c.createdAt };
    for (const k of Object.keys(next) as (keyof ConnectionRecord)[]) if (next[k] === undefined) delete next[k];
    this.rows.set(id, next);
    return copy(next);
  }
  async delete(tenant: string, id: string) {
    const c = this.rows.get(id);
    if (!c || c.tenant !== tenant) return false;
    return this.rows.delete(id);
  }
}

class MemoryRevocations implements RevocationRepository {
  /** By `<tenant>\u0000<id>`: a revocation belongs to the tenant that recorded it. */
  private readonly rows = new Map<string, RevocationRecord>();
  /** The revocation log (revocation-log.ts): entry n at index n. */
  private readonly log: RevocationLogEntry[] = [];
  async insert(r: RevocationRecord) {
    const key = `${r.tenant}\u0000${r.id}`;
    const inserted = !this.rows.has(key);
    if (inserted) this.rows.set(key, copy(r));
    this.log.push({ seq: this.log.length, at: new Date(r.revokedAt), kind: "revocation", tenant: r.tenant, id: r.id });
    return inserted;
  }
  async logRootKeyChange() {
    this.log.push({ seq: this.log.length, at: new Date(), kind: "root-keys" });
  }
  async logHead() {
    return this.log.length;
  }
  async readLog(seq: number) {
    const entry = this.log[seq];
    return entry && { ...entry, at: new Date(entry.at) };
  }
  async listSince(since: Date) {
    return [...this.rows.values()]
      .filter((r) => r.revokedAt.getTime() >= since.getTime())
      .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime())
      .map(copy);
  }
  async findRevoked(tenant: string, ids: string[]) {
    return ids.filter((id) => this.rows.has(`${tenant}\u0000${id}`));
  }
}

class MemoryAudit implements AuditRepository {
  /**
   * Per tenant, in sequence order: each event's sequence and the event as one JSON string. The dev store keeps the
   * whole trail in memory; as strings (leaves to the garbage collector) a long trail costs little to mark, where
   * objects would make every full collection walk every event. The sets keep inserts O(1) and insert-once.
   */
  private readonly rows = new Map<string, { sequences: number[]; documents: string[]; taken: Set<number>; ids: Set<string> }>();
  async insert(e: AuditRecord) {
    let trail = this.rows.get(e.tenant);
    if (!trail) this.rows.set(e.tenant, (trail = { sequences: [], documents: [], taken: new Set(), ids: new Set() }));
    if (trail.taken.has(e.sequence) || trail.ids.has(e.id)) return false;
    trail.taken.add(e.sequence);
    trail.ids.add(e.id);
    const document = JSON.stringify({ ...e, time: e.time.getTime() });
    const { sequences, documents } = trail;
    if (!sequences.length || sequences[sequences.length - 1] < e.sequence) {
      sequences.push(e.sequence);
      documents.push(document);
    } else {
      const at = sequences.findIndex((s) => s > e.sequence);
      sequences.splice(at, 0, e.sequence);
      documents.splice(at, 0, document);
    }
    return true;
  }
  async insertMany(events: AuditRecord[]) {
    let n = 0;
    for (const e of events) {
      if (!(await this.insert(e))) break;
      n++;
    }
    return n;
  }
  async last(tenant: string) {
    const documents = this.rows.get(tenant)?.documents;
    return documents?.length ? auditFromJson(documents[documents.length - 1]) : undefined;
  }
  async list(tenant: string, afterSequence: number, limit: number) {
    const trail = this.rows.get(tenant);
    if (!trail) return [];
    let start = trail.sequences.findIndex((s) => s > afterSequence);
    if (start < 0) start = trail.sequences.length;
    return trail.documents.slice(start, start + limit).map(auditFromJson);
  }
}

function auditFromJson(document: string): AuditRecord {
  const stored = JSON.parse(document) as Omit<AuditRecord, "time"> & { time: number };
  return { ...stored, time: new Date(stored.time) };
}

class MemoryLeases implements LeaseRepository {
  private readonly rows = new Map<string, LeaseRecord>();
  async insert(l: LeaseRecord) {
    if (this.rows.has(l.key)) return false;
    this.rows.set(l.key, copy(l));
    return true;
  }
  async get(key: string) {
    const l = this.rows.get(key);
    return l && copy(l);
  }
  async release(key: string, holder: string) {
    if (this.rows.get(key)?.holder !== holder) return false;
    return this.rows.delete(key);
  }
  async deleteExpired(before: Date) {
    let n = 0;
    for (const [k, l] of this.rows) if (l.expiresAt.getTime() < before.getTime() && this.rows.delete(k)) n++;
    return n;
  }
}

/** The in-memory store behind dev mode. Same contract as the MongoDB store; data is gone when the process ends. */
export function openMemoryStore(): Store {
  return {
    kind: "memory",
    tenants: new MemoryTenants(),
    connections: new MemoryConnections(),
    revocations: new MemoryRevocations(),
    audit: new MemoryAudit(),
    leases: new MemoryLeases(),
    dataKeys: new MemoryDataKeys(),
    oauthStates: new MemoryOAuthStates(),
    credentials: new MemoryCredentials(),
    rootKeys: new MemoryRootKeys(),
    disconnectFailures: new MemoryDisconnectFailures(),
    ensureIndexes: async () => {},
    ping: async () => {},
    close: async () => {},
  };
}
