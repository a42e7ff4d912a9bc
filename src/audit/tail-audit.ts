import type { AuditRecord } from "../store/records.js";
import type { AuditRepository } from "../store/repositories.js";

/**
 * Follow a tenant's audit trail: yield events after `afterSequence` as they are written, polling the store
 * (no change streams: FerretDB has none). Ends when the signal aborts.
 */
export async function* tailAudit(
  repository: AuditRepository,
  tenant: string,
  afterSequence: number,
  signal: AbortSignal,
  pollMs = 500,
): AsyncGenerator<AuditRecord> {
  let cursor = afterSequence;
  while (!signal.aborted) {
    const page = await repository.list(tenant, cursor, 200);
    for (const event of page) {
      cursor = event.sequence;
      yield event;
    }
    if (page.length < 200) await sleep(pollMs, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
