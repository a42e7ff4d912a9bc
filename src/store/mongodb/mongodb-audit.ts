import type { Collection, Db } from "mongodb";
import { CapvaultError } from "../../errors/capvault-error.js";
import type { AuditRecord, AuditWriterRecord } from "../records.js";
import type { AuditRepository } from "../repositories.js";
import { groupByChain } from "../audit-chains.js";
import { sameEvent } from "../same-audit-event.js";
import { decodeSegment, encodeSegment, segmentDocumentId, type SegmentDocument } from "./audit-segments.js";
import { COLLECTIONS, insertOnce } from "./collections.js";

/**
 * A legacy event's `_id` in `audit_events` (one document per event, written before segments):
 * `<tenant>:<writer>:<zero-padded sequence>`, or `<tenant>:<sequence>` for the single chain of older versions.
 */
export const auditDocumentId = (tenant: string, writer: string, sequence: number) =>
  writer === "" ? `${tenant}:${String(sequence).padStart(12, "0")}` : `${tenant}:${writer}:${String(sequence).padStart(12, "0")}`;

const writerDocumentId = (tenant: string, writer: string) => `${tenant}:${writer}`;
const chainKey = (tenant: string, writer: string) => `${tenant}\u0000${writer}`;

type AuditDoc = AuditRecord & { _id: string };
type WriterDoc = AuditWriterRecord & { _id: string };
/** Where a segment sits in its chain: all a search needs, and never changes once stored. */
type SegmentBounds = Pick<SegmentDocument, "segment" | "first" | "count">;

/** How many segments a page reads at once. */
const LOOKUP_CONCURRENCY = 16;
/** The longest one audit read or write may take before it fails (and the writer reads back and retries). */
const OPERATION_TIMEOUT_MS = 5_000;
/** Segment bounds remembered per process (a search's probes); cleared when full. */
const BOUNDS_CACHE_LIMIT = 50_000;

/**
 * The audit trail in MongoDB (and FerretDB): one document per group commit and chain (audit-segments.ts), in
 * `audit_segments`, looked up only by `_id` or read through a cursor over the tenant: the only queries that cost the
 * same at a million events as at a thousand on both MongoDB and FerretDB (whose SQLite backend pushes down nothing
 * else). Chains written before segments (`audit_events`, one document per event) stay readable and verifiable.
 */
export class MongoAudit implements AuditRepository {
  readonly keepsEverything = true;
  private readonly segments: Collection<SegmentDocument>;
  private readonly legacy: Collection<AuditDoc>;
  private readonly chains: Collection<WriterDoc>;
  private readonly segmentScan: Collection<SegmentDocument>;
  private readonly legacyScan: Collection<AuditDoc>;
  /** The last segment of each chain this process appended to (only this process writes under its writer id). */
  private readonly tails = new Map<string, { segment: number; next: number }>();
  private readonly bounds = new Map<string, SegmentBounds | null>();

  constructor(db: Db) {
    // Every single-document operation is bounded on the client (the driver's timeoutMS): an operation that never
    // answers (a connection accepted by a restarting server, say) would otherwise hold the audit writer, and with it
    // every Proxy call, forever. A timed-out write is retried like any failed one: the stored tail is read back first.
    const bounded = { timeoutMS: OPERATION_TIMEOUT_MS };
    this.segments = db.collection<SegmentDocument>(COLLECTIONS.auditSegments, bounded);
    this.legacy = db.collection<AuditDoc>(COLLECTIONS.audit, bounded);
    this.chains = db.collection<WriterDoc>(COLLECTIONS.auditWriters, bounded);
    // Scans (export, verify) run as long as the trail is: their cursors are not bounded.
    this.segmentScan = db.collection<SegmentDocument>(COLLECTIONS.auditSegments);
    this.legacyScan = db.collection<AuditDoc>(COLLECTIONS.audit);
  }

  static async ensureIndexes(db: Db): Promise<void> {
    await db.collection(COLLECTIONS.auditSegments).createIndex({ tenant: 1, writer: 1, segment: 1 }, { unique: true });
    await db.collection(COLLECTIONS.auditWriters).createIndex({ tenant: 1, startedAt: 1 });
  }

  async registerWriter(w: AuditWriterRecord): Promise<void> {
    await insertOnce(this.chains, { _id: writerDocumentId(w.tenant, w.writer), ...w });
  }

  async writers(tenant: string): Promise<AuditWriterRecord[]> {
    const docs = await this.chains.find({ tenant }).toArray();
    const chains = docs.map(({ _id, ...w }) => w);
    // Events written before chains were per writer form the legacy chain "", which is never registered.
    if (await this.legacy.findOne({ _id: auditDocumentId(tenant, "", 1) }, { projection: { _id: 1 } })) {
      chains.push({ tenant, writer: "", startedAt: new Date(0) });
    }
    return chains.sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime() || a.writer.localeCompare(b.writer));
  }

  /** Each chain's events go out as one new segment: one atomic insert per chain, whatever the server. */
  async insertMany(events: AuditRecord[]): Promise<void> {
    const results = await Promise.allSettled(groupByChain(events).map((chain) => this.append(chain)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  private async append(events: AuditRecord[]): Promise<void> {
    const { tenant, writer } = events[0];
    const k = chainKey(tenant, writer);
    const tail = this.tails.get(k) ?? (await this.findTail(tenant, writer));
    // A retry after an unanswered write: what that write stored is not stored again (and must be what we hold).
    const stored = events.filter((e) => e.sequence < tail.next);
    await this.expectStored(stored);
    const fresh = events.filter((e) => e.sequence >= tail.next);
    if (!fresh.length) return;
    if (fresh.some((e, i) => e.sequence !== tail.next + i)) {
      throw new CapvaultError("AUDIT_WRITE_FAILED", `audit events of ${writer} do not continue its chain at ${tail.next}`);
    }
    const doc = encodeSegment(tail.segment + 1, fresh);
    try {
      await this.segments.insertOne(doc);
    } catch (err) {
      this.tails.delete(k); // the outcome is unknown: the next attempt looks the tail up again
      throw err;
    }
    this.tails.set(k, { segment: doc.segment, next: doc.first + doc.count });
  }

  /** Events of one chain, in sequence order, that must already be stored as they are: one read of their run. */
  private async expectStored(events: AuditRecord[]): Promise<void> {
    if (!events.length) return;
    const { tenant, writer, sequence: first } = events[0];
    const stored = await this.listChain(tenant, writer, first - 1, events[events.length - 1].sequence - first + 1);
    const bySequence = new Map(stored.map((e) => [e.sequence, e]));
    for (const e of events) {
      const found = bySequence.get(e.sequence);
      if (!found || !sameEvent(found, e)) {
        throw new CapvaultError("AUDIT_WRITE_FAILED", `another event is stored at ${e.writer}/${e.sequence}`);
      }
    }
  }

  /** The chain's last segment and next sequence, in O(log n) `_id` lookups. */
  private async findTail(tenant: string, writer: string): Promise<{ segment: number; next: number }> {
    const last = await this.lastSegment(tenant, writer);
    return last ? { segment: last.segment, next: last.first + last.count } : { segment: 0, next: 1 };
  }

  async get(tenant: string, writer: string, sequence: number): Promise<AuditRecord | undefined> {
    if (sequence < 1) return undefined;
    const holder = await this.segmentHolding(tenant, writer, sequence);
    if (holder === "legacy") {
      const doc = await this.legacy.findOne({ _id: auditDocumentId(tenant, writer, sequence) });
      return doc ? fromLegacy(doc) : undefined;
    }
    if (!holder) return undefined;
    const doc = await this.segments.findOne({ _id: segmentDocumentId(tenant, writer, holder.segment) });
    return doc ? decodeSegment(doc).find((e) => e.sequence === sequence) : undefined;
  }

  async head(tenant: string, writer: string): Promise<number> {
    const last = await this.lastSegment(tenant, writer);
    if (last) return last.first + last.count - 1;
    return this.legacyHead(tenant, writer);
  }

  async listChain(tenant: string, writer: string, afterSequence: number, limit: number): Promise<AuditRecord[]> {
    const holder = await this.segmentHolding(tenant, writer, afterSequence + 1);
    if (holder === "legacy") return this.legacyChain(tenant, writer, afterSequence, limit);
    const out: AuditRecord[] = [];
    if (!holder) return out;
    // Segments of a trail written under little load hold one event each: read the next ones a window at a time.
    for (let segment = holder.segment; out.length < limit; ) {
      const window = Math.min(LOOKUP_CONCURRENCY, Math.ceil((limit - out.length) / Math.max(1, holder.count)));
      const docs = await Promise.all(
        Array.from({ length: window }, (_, i) => this.segments.findOne({ _id: segmentDocumentId(tenant, writer, segment + i) })),
      );
      for (const doc of docs) {
        if (!doc) return out;
        for (const e of decodeSegment(doc)) {
          if (e.sequence > afterSequence && out.length < limit) out.push(e);
        }
      }
      segment += window;
    }
    return out;
  }

  async *scan(tenant: string): AsyncIterable<AuditRecord> {
    for await (const doc of this.legacyScan.find({ tenant }).batchSize(2000)) yield fromLegacy(doc);
    for await (const doc of this.segmentScan.find({ tenant }).batchSize(500)) yield* decodeSegment(doc);
  }

  // ---- finding a segment by `_id` alone: segment numbers run 1, 2, 3… without gaps, sequences ascend with them ----

  private async boundsOf(tenant: string, writer: string, segment: number): Promise<SegmentBounds | null> {
    const id = segmentDocumentId(tenant, writer, segment);
    const known = this.bounds.get(id);
    if (known) return known;
    const doc = await this.segments.findOne({ _id: id }, { projection: { segment: 1, first: 1, count: 1 } });
    const found = doc ? { segment: doc.segment, first: doc.first, count: doc.count } : null;
    if (found) {
      // Stored segments never change; a missing one may appear later, so only found ones are remembered.
      if (this.bounds.size >= BOUNDS_CACHE_LIMIT) this.bounds.clear();
      this.bounds.set(id, found);
    }
    return found;
  }

  /** The chain's last segment (undefined: no segments), by galloping then bisecting over segment numbers. */
  private async lastSegment(tenant: string, writer: string): Promise<SegmentBounds | undefined> {
    const mine = this.tails.get(chainKey(tenant, writer));
    let present = await this.boundsOf(tenant, writer, mine?.segment ?? 1);
    if (!present) return undefined;
    let step = 1;
    let missing: number | undefined;
    while (missing === undefined) {
      const probe = await this.boundsOf(tenant, writer, present.segment + step);
      if (probe) {
        present = probe;
        step *= 2;
      } else missing = present.segment + step;
    }
    while (missing - present.segment > 1) {
      const middle = Math.floor((present.segment + missing) / 2);
      const probe = await this.boundsOf(tenant, writer, middle);
      if (probe) present = probe;
      else missing = middle;
    }
    return present;
  }

  /**
   * The segment holding a sequence: undefined when it is past the chain's end, "legacy" when the chain has no
   * segments (written one document per event). Gallops from segment 1, then bisects: O(log n) `_id` lookups.
   */
  private async segmentHolding(tenant: string, writer: string, sequence: number): Promise<SegmentBounds | "legacy" | undefined> {
    let low = await this.boundsOf(tenant, writer, 1);
    if (!low) return "legacy";
    if (sequence < low.first) return undefined;
    let high: number | undefined;
    for (let step = 1; high === undefined; step *= 2) {
      const probe = await this.boundsOf(tenant, writer, low.segment + step);
      if (probe && probe.first <= sequence) low = probe;
      else high = low.segment + step;
    }
    while (high - low.segment > 1) {
      const middle = Math.floor((low.segment + high) / 2);
      const probe = await this.boundsOf(tenant, writer, middle);
      if (probe && probe.first <= sequence) low = probe;
      else high = middle;
    }
    return sequence < low.first + low.count ? low : undefined;
  }

  // ---- chains written one document per event ----

  private async legacyHead(tenant: string, writer: string): Promise<number> {
    const exists = async (sequence: number) =>
      (await this.legacy.findOne({ _id: auditDocumentId(tenant, writer, sequence) }, { projection: { _id: 1 } })) !== null;
    if (!(await exists(1))) return 0;
    let present = 1;
    let missing = 2;
    while (await exists(missing)) {
      present = missing;
      missing *= 2;
    }
    while (missing - present > 1) {
      const middle = Math.floor((present + missing) / 2);
      if (await exists(middle)) present = middle;
      else missing = middle;
    }
    return present;
  }

  private async legacyChain(tenant: string, writer: string, afterSequence: number, limit: number): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for (let next = afterSequence + 1; out.length < limit; next++) {
      const doc = await this.legacy.findOne({ _id: auditDocumentId(tenant, writer, next) });
      if (!doc) break;
      out.push(fromLegacy(doc));
    }
    return out;
  }
}

function fromLegacy(doc: AuditDoc): AuditRecord {
  const { _id, ...event } = doc;
  return { ...event, writer: event.writer ?? "" };
}
