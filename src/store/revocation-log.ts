/**
 * The revocation log: what every broker's revocation poller reads, by `_id` point lookups only.
 *
 * Entries are numbered 0, 1, 2, … with no gaps, one document each, keyed `revlog:<n>`. A writer takes the next number
 * by insert-once (a duplicate key means another writer took it: try the next), so the log is a gap-free sequence on
 * MongoDB and FerretDB alike, without transactions or clocks. A poller remembers the number after the last entry it
 * read and asks for `revlog:<next>` until one is missing: a poll with nothing new is one `_id` lookup, whatever the
 * number of revocations stored. (FerretDB 1.24's SQLite backend serves only a single `{_id: <string>}` equality
 * filter from an index; every range, `$in` or sort is a full scan.)
 */

/** One entry: a revocation recorded in a tenant, or a root key change (a key added or retired). */
export type RevocationLogEntry =
  | { seq: number; at: Date; kind: "revocation"; tenant: string; id: string }
  | { seq: number; at: Date; kind: "root-keys" };

/** An entry before it has a number. */
export type RevocationLogEvent =
  | { at: Date; kind: "revocation"; tenant: string; id: string }
  | { at: Date; kind: "root-keys" };

/** The `_id` of log entry `seq`. */
export const revocationLogId = (seq: number) => `revlog:${seq}`;

/**
 * The first free position at or after `from`, assuming entries below it exist (the log has no gaps): galloping
 * then binary search, O(log n) lookups. `exists` asks for one entry.
 */
export async function findLogHead(exists: (seq: number) => Promise<boolean>, from = 0): Promise<number> {
  if (!(await exists(from))) return from;
  let present = from; // known to exist
  let step = 1;
  while (await exists(present + step)) {
    present += step;
    step *= 2;
  }
  let missing = present + step; // known not to exist
  while (missing - present > 1) {
    const mid = present + Math.floor((missing - present) / 2);
    if (await exists(mid)) present = mid;
    else missing = mid;
  }
  return missing;
}

/**
 * Append an event at the first free position from `hint` on: insert-once, the next number on a duplicate key, and
 * after a few collisions a fresh head search (the hint was far behind). Returns the position taken.
 */
export async function appendToLog(
  insertAt: (seq: number) => Promise<boolean>,
  exists: (seq: number) => Promise<boolean>,
  hint: number | undefined,
): Promise<number> {
  let seq = hint ?? (await findLogHead(exists));
  for (let collisions = 0; ; collisions++) {
    if (await insertAt(seq)) return seq;
    seq = collisions < 4 ? seq + 1 : await findLogHead(exists, seq + 1);
  }
}
