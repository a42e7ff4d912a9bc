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

/** One audit event. Append-only; `hash` chains it to the tenant's previous event. */
export interface AuditRecord {
  id: string;
  tenant: string;
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

/** A time-bounded claim on a named piece of work (e.g. one refresh), taken by inserting a document once. */
export interface LeaseRecord {
  key: string;
  holder: string;
  acquiredAt: Date;
  expiresAt: Date;
}
