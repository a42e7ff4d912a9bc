import type { AuditRecord } from "../store/records.js";
import type { AuditRepository } from "../store/repositories.js";

export interface TailOptions {
  /** Only this chain. */
  writer?: string;
  /** Skip each followed chain's events up to this sequence. */
  afterSequence?: number;
  /** Start at the current end of every existing chain (chains that start later are followed from their start). */
  fromNow?: boolean;
  pollMs?: number;
}

const PAGE = 200;

/**
 * Follow a tenant's trail: yield the events of every chain as they are written, polling the store by key (FerretDB
 * has no change streams). Chains that start while tailing (a new broker process) are picked up. Ends when the signal
 * aborts.
 */
export async function* tailAudit(repository: AuditRepository, tenant: string, signal: AbortSignal, options: TailOptions = {}): AsyncGenerator<AuditRecord> {
  const positions = new Map<string, number>();
  let firstRound = true;
  while (!signal.aborted) {
    const writers = options.writer ? [options.writer] : (await repository.writers(tenant)).map((w) => w.writer);
    let progressed = false;
    for (const writer of writers) {
      if (!positions.has(writer)) {
        const start = options.fromNow && firstRound ? await repository.head(tenant, writer) : (options.afterSequence ?? 0);
        positions.set(writer, start);
      }
      const page = await repository.listChain(tenant, writer, positions.get(writer)!, PAGE);
      for (const event of page) {
        positions.set(writer, event.sequence);
        yield event;
      }
      if (page.length) progressed = true;
    }
    firstRound = false;
    if (!progressed) await sleep(options.pollMs ?? 500, signal);
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
