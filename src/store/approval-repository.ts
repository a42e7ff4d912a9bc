/**
 * Step-up approvals (src/approvals). An approval is written once when a call is held; its decision and its use are
 * each a separate insert-once record keyed by the approval id, so two brokers (or a page and an operator) can never
 * both decide it, and two calls can never both use it, whatever the database's update semantics. Nothing secret:
 * the request in canonical form with its body as a hash, and the one-time page link secret as its SHA-256.
 */
export interface ApprovalRecord {
  id: string;
  tenant: string;
  connection: string;
  provider: string;
  method: string;
  path: string;
  /** The canonical query string ("" when none). */
  query: string;
  /** SHA-256 (hex) of the request body as sent ("" for none). */
  bodySha256: string;
  subject: string;
  /** Revocation ids of the capability's blocks: the same chain, or a narrower one of it, may use the approval. */
  delegationChain: string[];
  reasons: string[];
  /** The request body as text, only when an approval rule asks to show it (at most 4 KiB, cut with a note). */
  body?: string;
  /** SHA-256 (hex) of the one-time approval page link secret. */
  linkSecretSha256: string;
  createdAt: Date;
  expiresAt: Date;
}

export interface ApprovalDecisionRecord {
  id: string;
  approved: boolean;
  /** The operator capability's subject, or "connection user" for the page. */
  by: string;
  via: "api" | "page";
  note: string;
  at: Date;
}

export interface ApprovalUseRecord {
  id: string;
  subject: string;
  at: Date;
}

export interface ApprovalRepository {
  insert(approval: ApprovalRecord): Promise<void>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  /** A tenant's approvals, newest first. */
  list(tenant: string, limit: number): Promise<ApprovalRecord[]>;
  /** Record the decision once: false when the approval was already decided. */
  decide(decision: ApprovalDecisionRecord): Promise<boolean>;
  decision(id: string): Promise<ApprovalDecisionRecord | undefined>;
  /** Record the one use: false when it was already used. */
  use(use: ApprovalUseRecord): Promise<boolean>;
  used(id: string): Promise<ApprovalUseRecord | undefined>;
}
