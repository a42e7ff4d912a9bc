/** Shapes of what capvault stores. Secrets only ever appear here as sealed values (see src/vault). */

export interface TenantRecord {
  id: string;
  name: string;
  createdAt: Date;
}

export type ConnectionStatus = "pending" | "active" | "needs_reauth";

/** Connection metadata. Secrets live in their own sealed records, never here. */
export interface ConnectionRecord {
  id: string;
  tenant: string;
  user: string;
  provider: string;
  account?: string;
  scopes: string[];
  status: ConnectionStatus;
  /** Access-token expiry, when the provider sets one. */
  expiresAt?: Date;
  createdAt: Date;
  updatedAt: Date;
}

/** A revoked capability block, by its revocation id. Insert-only. */
export interface RevocationRecord {
  id: string;
  tenant: string;
  reason: string;
  revokedAt: Date;
}

/**
 * One audit event. Append-only. Each writer (a broker process, or one CLI run) keeps its own hash chain per tenant:
 * `sequence` counts within (tenant, writer) from 1 and `hash` chains the event to the writer's previous one.
 */
export interface AuditRecord {
  id: string;
  tenant: string;
  /** The chain's writer; "" for events written before chains were per writer (one chain per tenant). */
  writer: string;
  sequence: number;
  time: Date;
  action: string;
  subject: string;
  delegationChain: string[];
  connection: string;
  provider: string;
  method: string;
  path: string;
  decision: string;
  reason: string;
  detail: string;
  upstreamStatus: number;
  latencyMs: number;
  previousHash: string;
  hash: string;
}

/** A writer's chain for one tenant, registered before its first event so that verification knows it exists. */
export interface AuditWriterRecord {
  tenant: string;
  writer: string;
  startedAt: Date;
}

/** A time-bounded claim on a named piece of work (e.g. one refresh), taken by inserting a document once. */
export interface LeaseRecord {
  key: string;
  holder: string;
  acquiredAt: Date;
  expiresAt: Date;
}
