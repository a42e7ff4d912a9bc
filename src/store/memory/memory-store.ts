import type { AuditRecord, ConnectionRecord, LeaseRecord, RevocationRecord, TenantRecord } from "../records.js";
import type {
  AuditRepository,
  ConnectionRepository,
  LeaseRepository,
  RevocationRepository,
  TenantRepository,
} from "../repositories.js";
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
  private readonly rows = new Map<string, RevocationRecord>();
  async insert(r: RevocationRecord) {
    if (this.rows.has(r.id)) return false;
    this.rows.set(r.id, copy(r));
    return true;
  }
  async listSince(since: Date) {
    return [...this.rows.values()]
      .filter((r) => r.revokedAt.getTime() >= since.getTime())
      .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime())
      .map(copy);
  }
  async findRevoked(ids: string[]) {
    return ids.filter((id) => this.rows.has(id));
  }
}

class MemoryAudit implements AuditRepository {
  /** Per tenant: events in sequence order, plus the sequences and ids taken (appends stay O(1) as the trail grows). */
  private readonly rows = new Map<string, { events: AuditRecord[]; sequences: Set<number>; ids: Set<string> }>();
  async insert(e: AuditRecord) {
    let trail = this.rows.get(e.tenant);
    if (!trail) this.rows.set(e.tenant, (trail = { events: [], sequences: new Set(), ids: new Set() }));
    if (trail.sequences.has(e.sequence) || trail.ids.has(e.id)) return false;
    trail.sequences.add(e.sequence);
    trail.ids.add(e.id);
    const events = trail.events;
    if (!events.length || events[events.length - 1].sequence < e.sequence) events.push(copy(e));
    else events.splice(events.findIndex((x) => x.sequence > e.sequence), 0, copy(e));
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
    const events = this.rows.get(tenant)?.events;
    return events?.length ? copy(events[events.length - 1]) : undefined;
  }
  async list(tenant: string, afterSequence: number, limit: number) {
    const events = this.rows.get(tenant)?.events ?? [];
    let start = events.findIndex((e) => e.sequence > afterSequence);
    if (start < 0) start = events.length;
    return events.slice(start, start + limit).map(copy);
  }
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
