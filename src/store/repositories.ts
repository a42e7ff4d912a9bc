import type { AuditRecord, AuditWriterRecord, ConnectionRecord, LeaseRecord, RevocationRecord, TenantRecord } from "./records.js";
import type { RevocationLogEntry } from "./revocation-log.js";

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
  /**
   * Record a revocation in its tenant (false if that tenant already revoked that id) and append it to the revocation
   * log (revocation-log.ts) in either case, so a retry after a failure between the two writes still reaches every
   * broker's poller.
   */
  insert(revocation: RevocationRecord): Promise<boolean>;
  /** Revocations recorded at or after `since`, oldest first, every tenant's (a full scan: start-up only). */
  listSince(since: Date): Promise<RevocationRecord[]>;
  /** The subset of `ids` that `tenant` revoked (`_id` lookups). */
  findRevoked(tenant: string, ids: string[]): Promise<string[]>;
  /** Append a root key change (a key added or retired) to the revocation log: every poller reloads the root keys. */
  logRootKeyChange(): Promise<void>;
  /** The position after the last log entry, where a poller starting now reads from (O(log n) `_id` lookups). */
  logHead(): Promise<number>;
  /** The log entry at `seq`, undefined if there is none yet: one `_id` lookup. */
  readLog(seq: number): Promise<RevocationLogEntry | undefined>;
}

/** Stored audit events that cannot be read as events (edited outside capvault): verification reports where. */
export class UnreadableAuditEvents extends Error {
  constructor(
    readonly writer: string,
    readonly sequence: number,
    readonly problem: string,
  ) {
    super(`the stored events of writer "${writer}" from sequence ${sequence}: ${problem}`);
    this.name = "UnreadableAuditEvents";
  }
}

export interface AuditRepository {
  /**
   * False for a store that keeps only recent events (the dev store's ring): a chain may then start after sequence 1
   * and verification starts at its first kept event.
   */
  readonly keepsEverything: boolean;
  /** Register a writer's chain for a tenant (idempotent). Done before the chain's first event is stored. */
  registerWriter(writer: AuditWriterRecord): Promise<void>;
  /** A tenant's chains, oldest writer first. */
  writers(tenant: string): Promise<AuditWriterRecord[]>;
  /**
   * Store events, each identified by its key (tenant, writer, sequence). Throws on any failure, after which any
   * subset may have been stored: the caller reads back with get(). Idempotent: events already stored are not stored
   * again; a different event already stored under a key is a failure, never overwritten.
   */
  insertMany(events: AuditRecord[]): Promise<void>;
  /** One event by its key: a point lookup, whatever the trail's size. */
  get(tenant: string, writer: string, sequence: number): Promise<AuditRecord | undefined>;
  /** The highest sequence stored in a writer's chain (0 if none), in O(log n) point lookups at most. */
  head(tenant: string, writer: string): Promise<number>;
  /** A writer's events with sequence > afterSequence, in order, up to `limit`, stopping at the first missing one. */
  listChain(tenant: string, writer: string, afterSequence: number, limit: number): Promise<AuditRecord[]>;
  /** Every event of a tenant, in storage order, through a cursor (constant memory). */
  scan(tenant: string): AsyncIterable<AuditRecord>;
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
