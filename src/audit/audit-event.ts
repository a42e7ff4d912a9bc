import { hash } from "node:crypto";
import type { AuditRecord } from "../store/records.js";

/** What a caller reports; the audit log adds id, sequence, time and the chain hashes. */
export interface AuditEntry {
  tenant: string;
  action: "proxy" | "authorize" | "mint" | "attenuate" | "revoke" | "connect" | "refresh" | "disconnect" | string;
  subject?: string;
  /** Revocation id of each block of the capability used, authority first. */
  delegationChain?: string[];
  connection?: string;
  provider?: string;
  method?: string;
  path?: string;
  /** "allow" | "deny" for authorization decisions; "ok" | "error" otherwise. */
  decision: string;
  /** Stable reason on deny or error. */
  reason?: string;
  /** The failing check or policy on deny. Never a secret. */
  detail?: string;
  upstreamStatus?: number;
  latencyMs?: number;
}

/** The hash of the (virtual) event before a tenant's first one. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * SHA-256 over the canonical JSON of the event's hashed fields, in this fixed order (the hash field itself excluded),
 * so an edit to any of them breaks the chain: id, tenant, sequence, time, action, subject, delegationChain,
 * connection, provider, method, path, decision, reason, detail, upstreamStatus, latencyMs, previousHash. The writer
 * is covered too (appended, so that events of the legacy single chain, writer "", keep their hashes). Written out
 * field by field: this runs for every audit event.
 */
export function hashAuditRecord(event: Omit<AuditRecord, "hash"> | AuditRecord): string {
  const e = event;
  // Two literals rather than a push: the array is made at its final length.
  const canonical = e.writer
    ? [e.id, e.tenant, e.sequence, jsonTime(e.time), e.action, e.subject, e.delegationChain, e.connection, e.provider, e.method, e.path, e.decision, e.reason, e.detail, e.upstreamStatus, e.latencyMs, e.previousHash, e.writer]
    : [e.id, e.tenant, e.sequence, jsonTime(e.time), e.action, e.subject, e.delegationChain, e.connection, e.provider, e.method, e.path, e.decision, e.reason, e.detail, e.upstreamStatus, e.latencyMs, e.previousHash];
  return hash("sha256", JSON.stringify(canonical), "hex");
}

/** A Date as its ISO text; anything else (a record read back with a malformed time) as it is. */
function jsonTime(time: unknown): unknown {
  if (!(time instanceof Date)) return time;
  // A batch of events shares one time (audit-log.ts): its text is written once.
  const ms = time.getTime();
  if (ms !== lastTime.ms) lastTime = { ms, iso: time.toISOString() };
  return lastTime.iso;
}

let lastTime = { ms: NaN, iso: "" };

/** Where an event goes in its chain, fixed when it is chained. */
export interface ChainPlace {
  id: string;
  writer: string;
  sequence: number;
  time: Date;
  previousHash: string;
}

/**
 * The stored record of an entry at its place in the chain, hashed: every optional field filled so every stored event
 * has the same shape. Built as one object literal (not spreads), so every record shares one hidden class.
 */
export function auditRecordOf(entry: AuditEntry, place: ChainPlace): AuditRecord {
  const record: AuditRecord = {
    tenant: entry.tenant,
    action: entry.action,
    subject: entry.subject ?? "",
    delegationChain: entry.delegationChain ?? [],
    connection: entry.connection ?? "",
    provider: entry.provider ?? "",
    method: entry.method ?? "",
    path: entry.path ?? "",
    decision: entry.decision,
    reason: entry.reason ?? "",
    detail: (entry.detail ?? "").slice(0, 1000),
    upstreamStatus: entry.upstreamStatus ?? 0,
    latencyMs: Math.max(0, Math.round(entry.latencyMs ?? 0)),
    id: place.id,
    writer: place.writer,
    sequence: place.sequence,
    time: place.time,
    previousHash: place.previousHash,
    hash: "",
  };
  record.hash = hashAuditRecord(record);
  return record;
}
