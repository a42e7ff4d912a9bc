import type { AuditRecord } from "../store/records.js";
import type { AuditRepository } from "../store/repositories.js";
import { GENESIS_HASH, hashAuditRecord } from "./audit-event.js";

export interface AuditVerification {
  ok: boolean;
  eventsChecked: number;
  /** The first event that does not verify. */
  broken?: { id: string; sequence: number; problem: string };
}

/**
 * Walk a tenant's chain from the first event: sequences must run 1, 2, 3… without gaps (a deleted event shows as a
 * gap), each event's hash must match its content (an edit shows), and each must point at its predecessor's hash
 * (a reordering or a replaced event shows). A truncated tail is not detectable from the chain alone.
 */
export async function verifyAuditChain(repository: AuditRepository, tenant: string, pageSize = 500): Promise<AuditVerification> {
  let expectedSequence = 1;
  let previousHash = GENESIS_HASH;
  let checked = 0;
  for (;;) {
    const page = await repository.list(tenant, expectedSequence - 1, pageSize);
    if (!page.length) break;
    for (const event of page) {
      const problem = problemWith(event, expectedSequence, previousHash);
      if (problem) return { ok: false, eventsChecked: checked, broken: { id: event.id, sequence: event.sequence, problem } };
      checked++;
      expectedSequence++;
      previousHash = event.hash;
    }
  }
  return { ok: true, eventsChecked: checked };
}

function problemWith(event: AuditRecord, expectedSequence: number, previousHash: string): string | undefined {
  if (event.sequence !== expectedSequence) {
    return `expected sequence ${expectedSequence} but found ${event.sequence}: events are missing`;
  }
  if (event.previousHash !== previousHash) return "does not link to the previous event's hash: reordered or replaced";
  const { hash, ...rest } = event;
  if (hashAuditRecord(rest) !== hash) return "content does not match its hash: the event was edited";
  return undefined;
}
