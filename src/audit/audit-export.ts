import type { AuditRecord } from "../store/records.js";
import { verifyEvents } from "./verify-audit.js";

/**
 * An exported audit trail is JSON lines, one AuditEvent per line in its proto JSON form (AuditEvent.toJSON: camelCase
 * names, fields at their default value left out), as `capvault audit export` and `capvault audit tail` print them.
 * Each line carries its chain proof (writer, sequence, previousHash, hash), so a file can be verified offline.
 */

const STRING_FIELDS = [
  "id",
  "tenant",
  "writer",
  "action",
  "subject",
  "connection",
  "provider",
  "method",
  "path",
  "decision",
  "reason",
  "detail",
  "previousHash",
  "hash",
] as const;
const NUMBER_FIELDS = ["sequence", "upstreamStatus", "latencyMs"] as const;
const KNOWN_FIELDS = new Set<string>([...STRING_FIELDS, ...NUMBER_FIELDS, "time", "delegationChain"]);

/** A line that is not an exported audit event; `message` says why. */
export class AuditLineError extends Error {}

/**
 * One exported line back to the stored record, exactly: every hashed field with the type and value it was hashed
 * with (a left-out field is its default: "", 0 or []), the time as a Date (the hash covers its ISO form, milliseconds).
 * Throws AuditLineError for anything else, including a field the hash does not cover (it would be unverified).
 */
export function auditRecordFromJson(line: string): AuditRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new AuditLineError("not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new AuditLineError("not a JSON object");
  const o = parsed as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN_FIELDS.has(key)) throw new AuditLineError(`has a field audit events do not have: ${JSON.stringify(key)}`);
  }
  const record: Record<string, unknown> = {};
  for (const field of STRING_FIELDS) {
    const v = o[field] ?? "";
    if (typeof v !== "string") throw new AuditLineError(`${field} is not a string`);
    record[field] = v;
  }
  for (const field of NUMBER_FIELDS) {
    const v = o[field] ?? 0;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new AuditLineError(`${field} is not a whole number >= 0`);
    record[field] = v;
  }
  const chain = o.delegationChain ?? [];
  if (!Array.isArray(chain) || chain.some((b) => typeof b !== "string")) throw new AuditLineError("delegationChain is not a list of strings");
  record.delegationChain = chain;
  if (typeof o.time !== "string") throw new AuditLineError("time is missing");
  const time = new Date(o.time);
  if (Number.isNaN(time.getTime())) throw new AuditLineError("time is not a date");
  record.time = time;
  for (const required of ["id", "tenant", "hash", "previousHash"] as const) {
    if (record[required] === "") throw new AuditLineError(`${required} is missing`);
  }
  if (record.sequence === 0) throw new AuditLineError("sequence is missing");
  return record as unknown as AuditRecord;
}

export interface ExportVerification {
  ok: boolean;
  eventsChecked: number;
  /** Each chain's writer and the sequences the file holds, in the order chains first appear. */
  chains: { writer: string; first: number; last: number; events: number }[];
  /** The first line that does not verify. */
  broken?: { line: number; id: string; writer: string; sequence: number; problem: string };
}

/**
 * Verify an exported trail offline: events grouped by writer, each chain contiguous from its first event in the file
 * (a range export may start mid-chain, so the first event's own link cannot be checked), each event's hash matching
 * its content and linking to its predecessor's. `open` yields the file's lines; it is called a second time only to
 * find the line of a broken event that was not the last one read (an event held while waiting for a missing one).
 */
export async function verifyExport(open: () => AsyncIterable<string>, options: { tenant?: string } = {}): Promise<ExportVerification> {
  const chains = new Map<string, { writer: string; first: number; last: number; events: number }>();
  let lineNo = 0;
  let last: { line: number; record?: AuditRecord } = { line: 0 };
  let malformed: ExportVerification["broken"];

  async function* records(): AsyncGenerator<AuditRecord> {
    for await (const raw of open()) {
      lineNo++;
      if (raw.trim() === "") continue;
      let record: AuditRecord;
      try {
        record = auditRecordFromJson(raw);
        if (options.tenant !== undefined && record.tenant !== options.tenant) throw new AuditLineError(`belongs to tenant ${JSON.stringify(record.tenant)}`);
      } catch (err) {
        if (!(err instanceof AuditLineError)) throw err;
        const partial = lenientIds(raw);
        malformed = { line: lineNo, ...partial, problem: `not a valid audit event: ${err.message}` };
        return;
      }
      last = { line: lineNo, record };
      const chain = chains.get(record.writer);
      if (chain) {
        chain.last = Math.max(chain.last, record.sequence);
        chain.first = Math.min(chain.first, record.sequence);
        chain.events++;
      } else chains.set(record.writer, { writer: record.writer, first: record.sequence, last: record.sequence, events: 1 });
      yield record;
    }
  }

  const result = await verifyEvents(undefined, records(), { trimmed: true });
  const summary = { eventsChecked: result.eventsChecked, chains: [...chains.values()] };
  if (malformed) return { ok: false, ...summary, broken: malformed };
  if (result.ok || !result.broken) return { ok: true, ...summary };
  const b = result.broken;
  const isLast = last.record && last.record.writer === b.writer && last.record.sequence === b.sequence && last.record.id === b.id;
  const line = isLast ? last.line : await findLine(open, b);
  return { ok: false, ...summary, broken: { line, id: b.id, writer: b.writer, sequence: b.sequence, problem: b.problem } };
}

/** The line of the event with this writer, sequence and id (0 if none). */
async function findLine(open: () => AsyncIterable<string>, event: { id: string; writer: string; sequence: number }): Promise<number> {
  let n = 0;
  for await (const raw of open()) {
    n++;
    const ids = lenientIds(raw);
    if (ids.writer === event.writer && ids.sequence === event.sequence && ids.id === event.id) return n;
  }
  return 0;
}

/** Whatever id, writer and sequence a (possibly malformed) line has, to name it. */
function lenientIds(raw: string): { id: string; writer: string; sequence: number } {
  try {
    const o = JSON.parse(raw) as Record<string, unknown>;
    return {
      id: typeof o.id === "string" ? o.id : "",
      writer: typeof o.writer === "string" ? o.writer : "",
      sequence: typeof o.sequence === "number" ? o.sequence : 0,
    };
  } catch {
    return { id: "", writer: "", sequence: 0 };
  }
}
