import type { ConnectionRecord, LeaseRecord, RevocationRecord, TenantRecord } from "../records.js";
import type {
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
import { MemoryApprovals } from "./memory-approvals.js";
import { MemoryOAuthStates } from "./memory-oauth-states.js";
import { MemoryAudit } from "./memory-audit.js";

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

/**
 * The in-memory store behind dev mode. Same contract as the MongoDB store; data is gone when the process ends.
 * `maxAuditEvents` keeps only that many recent audit events (dev mode's bounded trail).
 */
export function openMemoryStore(options: { maxAuditEvents?: number } = {}): Store {
  return {
    kind: "memory",
    tenants: new MemoryTenants(),
    connections: new MemoryConnections(),
    revocations: new MemoryRevocations(),
    audit: new MemoryAudit(options.maxAuditEvents),
    leases: new MemoryLeases(),
    dataKeys: new MemoryDataKeys(),
    oauthStates: new MemoryOAuthStates(),
    credentials: new MemoryCredentials(),
    rootKeys: new MemoryRootKeys(),
    disconnectFailures: new MemoryDisconnectFailures(),
    approvals: new MemoryApprovals(),
    ensureIndexes: async () => {},
    ping: async () => {},
    close: async () => {},
  };
}
