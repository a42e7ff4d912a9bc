import type { AuditRecord, ConnectionRecord, LeaseRecord, RevocationRecord, TenantRecord } from "./records.js";

/**
 * Every write below is a single-document operation. Nothing relies on multi-document transactions, change streams
 * or TTL indexes, and coordination between broker processes uses insert-once documents (unique `_id`), the one
 * write that is atomic on both MongoDB and FerretDB. Methods named `insert…` return false when the key exists.
 */

export interface TenantRepository {
  insert(tenant: TenantRecord): Promise<boolean>;
  get(id: string): Promise<TenantRecord | undefined>;
  list(): Promise<TenantRecord[]>;
}

export interface ConnectionRepository {
  insert(connection: ConnectionRecord): Promise<boolean>;
  get(tenant: string, id: string): Promise<ConnectionRecord | undefined>;
  /** A connection by id alone (ids are random and global); the caller must then check the tenant it acts in. */
  findById(id: string): Promise<ConnectionRecord | undefined>;
  /** A tenant's connections, optionally one user's, oldest first. */
  list(tenant: string, user?: string): Promise<ConnectionRecord[]>;
  /** Set fields of one connection (never its identity). Returns the updated record, or undefined if absent. */
  update(
    tenant: string,
    id: string,
    patch: Partial<Omit<ConnectionRecord, "id" | "tenant" | "createdAt">>,
  ): Promise<ConnectionRecord | undefined>;
  delete(tenant: string, id: string): Promise<boolean>;
}

export interface RevocationRepository {
  /** Record a revocation in its tenant; false if that tenant already revoked that id. */
  insert(revocation: RevocationRecord): Promise<boolean>;
  /** Revocations recorded at or after `since`, oldest first (for polling), every tenant's. */
  listSince(since: Date): Promise<RevocationRecord[]>;
  /** The subset of `ids` that `tenant` revoked. */
  findRevoked(tenant: string, ids: string[]): Promise<string[]>;
}

export interface AuditRepository {
  /** Append at `sequence`; false if the tenant already has an event there (another writer won: read last, retry). */
  insert(event: AuditRecord): Promise<boolean>;
  /**
   * Append consecutive events of one tenant in order, stopping at the first whose sequence is taken. Returns how many
   * were stored (the first `n`); the caller re-reads the head and re-chains the rest.
   */
  insertMany(events: AuditRecord[]): Promise<number>;
  /** The tenant's event with the highest sequence. */
  last(tenant: string): Promise<AuditRecord | undefined>;
  /** Events with sequence > afterSequence, in order. */
  list(tenant: string, afterSequence: number, limit: number): Promise<AuditRecord[]>;
}

export interface LeaseRepository {
  /** Take the lease if nobody holds it under this key; false otherwise (even if the holder's lease expired). */
  insert(lease: LeaseRecord): Promise<boolean>;
  get(key: string): Promise<LeaseRecord | undefined>;
  /** Delete the lease only if `holder` holds it. */
  release(key: string, holder: string): Promise<boolean>;
  /** Delete leases that expired before `before` (the purge job). */
  deleteExpired(before: Date): Promise<number>;
}
