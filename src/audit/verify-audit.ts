import type { AuditRecord } from "../store/records.js";
import { UnreadableAuditEvents, type AuditRepository } from "../store/repositories.js";
import { GENESIS_HASH, hashAuditRecord } from "./audit-event.js";

export interface AuditVerification {
  ok: boolean;
  eventsChecked: number;
  chainsChecked: number;
  /** The first event that does not verify. */
  broken?: { id: string; writer: string; sequence: number; problem: string };
}

/** Events of one chain that arrived ahead of their predecessor, held until it arrives (bounded: see MAX_AHEAD). */
const MAX_AHEAD = 100_000;

interface ChainState {
  /** The next sequence expected; undefined until the first event of a trimmed chain (dev ring) is seen. */
  expected: number | undefined;
  previousHash: string;
  ahead: Map<number, AuditRecord>;
}

/**
 * Verify every chain of a tenant in one pass over the stored events, in constant memory: within each writer's chain,
 * sequences must run 1, 2, 3… without gaps (a deleted event shows as a gap), each event's hash must match its
 * content (an edit shows), and each must point at its predecessor's hash (a reordering or a replaced event shows).
 * Events of a writer that never registered a chain are refused (an injected chain shows). A truncated tail of a
 * chain is not detectable from the chain alone.
 *
 * The pass reads events in storage order, which is each chain's order except around a retried write; the few events
 * stored ahead of their predecessor wait in a small per-chain buffer.
 */
export async function verifyAuditChain(repository: AuditRepository, tenant: string): Promise<AuditVerification> {
  const writers = await repository.writers(tenant).then((ws) => ws.map((w) => w.writer));
  const checked = { events: 0 };
  try {
    return await verifyEvents(writers, counted(repository.scan(tenant), checked), { trimmed: !repository.keepsEverything });
  } catch (err) {
    if (!(err instanceof UnreadableAuditEvents)) throw err;
    return {
      ok: false,
      eventsChecked: checked.events,
      chainsChecked: writers.length,
      broken: { id: "", writer: err.writer, sequence: err.sequence, problem: err.problem },
    };
  }
}

async function* counted(events: AsyncIterable<AuditRecord>, count: { events: number }): AsyncIterable<AuditRecord> {
  for await (const e of events) {
    count.events++;
    yield e;
  }
}

/**
 * The verification itself, over any source of events (the database, or an exported file: then `writers` is every
 * writer seen and `trimmed` lets a range export start mid-chain).
 */
export async function verifyEvents(
  writers: string[] | undefined,
  events: AsyncIterable<AuditRecord> | Iterable<AuditRecord>,
  options: { trimmed?: boolean } = {},
): Promise<AuditVerification> {
  const chains = new Map<string, ChainState>();
  const newChain = (): ChainState => ({ expected: options.trimmed ? undefined : 1, previousHash: GENESIS_HASH, ahead: new Map() });
  for (const w of writers ?? []) chains.set(w, newChain());
  let checked = 0;
  let held = 0;
  const fail = (event: AuditRecord, problem: string): AuditVerification => ({
    ok: false,
    eventsChecked: checked,
    chainsChecked: chains.size,
    broken: { id: event.id, writer: event.writer, sequence: event.sequence, problem },
  });

  for await (const event of events) {
    let chain = chains.get(event.writer);
    if (!chain) {
      // The legacy single chain (writer "") was never registered.
      if (writers && event.writer !== "") return fail(event, `written by "${event.writer}", which never registered a chain: injected`);
      chains.set(event.writer, (chain = newChain()));
    }
    if (chain.expected === undefined) {
      chain.expected = event.sequence;
      chain.previousHash = event.previousHash;
    }
    if (event.sequence < chain.expected || chain.ahead.has(event.sequence)) return fail(event, "a second event with this sequence: duplicated");
    if (event.sequence > chain.expected) {
      if (++held > MAX_AHEAD) return fail(event, `more than ${MAX_AHEAD} events out of order: cannot verify in bounded memory`);
      chain.ahead.set(event.sequence, event);
      continue;
    }
    for (let next: AuditRecord | undefined = event; next; ) {
      const problem = problemWith(next, chain.previousHash);
      if (problem) return fail(next, problem);
      checked++;
      chain.previousHash = next.hash;
      chain.expected = next.sequence + 1;
      next = chain.ahead.get(chain.expected);
      if (next) {
        chain.ahead.delete(chain.expected);
        held--;
      }
    }
  }
  for (const chain of chains.values()) {
    if (!chain.ahead.size) continue;
    const first = [...chain.ahead.values()].sort((a, b) => a.sequence - b.sequence)[0];
    return fail(first, `expected sequence ${chain.expected} but found ${first.sequence}: events are missing`);
  }
  return { ok: true, eventsChecked: checked, chainsChecked: chains.size };
}

function problemWith(event: AuditRecord, previousHash: string): string | undefined {
  if (event.previousHash !== previousHash) return "does not link to the previous event's hash: reordered or replaced";
  const { hash, ...rest } = event;
  if (hashAuditRecord(rest) !== hash) return "content does not match its hash: the event was edited";
  return undefined;
}
