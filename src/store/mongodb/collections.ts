import type { Collection, Db, Document } from "mongodb";

/** Collection names, in one place. */
export const COLLECTIONS = {
  tenants: "tenants",
  connections: "connections",
  revocations: "revocations",
  revocationLog: "revocation_log",
  /** Audit events one document per event: written by versions before segments, now only read. */
  audit: "audit_events",
  auditSegments: "audit_segments",
  auditWriters: "audit_writers",
  leases: "leases",
  dataKeys: "data_keys",
  /** Which data key a record uses, by `_id` = tenant and record: lookups that cost the same at any size. */
  dataKeyRecords: "data_key_records",
  oauthStates: "oauth_states",
  oauthStateConsumptions: "oauth_state_consumptions",
  credentials: "credentials",
  credentialHeads: "credential_heads",
  rootKeys: "root_keys",
  disconnectFailures: "disconnect_failures",
  approvals: "approvals",
  approvalDecisions: "approval_decisions",
  approvalUses: "approval_uses",
} as const;

/** MongoDB's duplicate-key code, returned by FerretDB too for an insert whose `_id` or unique key exists. */
export const DUPLICATE_KEY = 11000;

/** Insert a document once: true if inserted, false if its key already exists. */
export async function insertOnce<T extends Document>(collection: Collection<T>, doc: T): Promise<boolean> {
  try {
    await collection.insertOne(doc as never);
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === DUPLICATE_KEY) return false;
    throw err;
  }
}

export function collection<T extends Document>(db: Db, name: string): Collection<T> {
  return db.collection<T>(name);
}
