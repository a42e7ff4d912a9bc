import type { Collection, Db } from "mongodb";
import type { AuditRecord, AuditWriterRecord } from "../records.js";
import type { AuditRepository } from "../repositories.js";
import { COLLECTIONS, insertOnce } from "./collections.js";

/**
 * An event's `_id`: `<tenant>:<writer>:<zero-padded sequence>` (legacy single-chain events: `<tenant>:<sequence>`).
 * Every read below is an `_id` equality lookup or a cursor over the tenant: the only queries that cost the same at a
 * million events as at a thousand on both MongoDB and FerretDB (whose SQLite backend pushes down nothing else).
 */
export const auditDocumentId = (tenant: string, writer: string, sequence: number) =>
  writer === "" ? `${tenant}:${String(sequence).padStart(12, "0")}` : `${tenant}:${writer}:${String(sequence).padStart(12, "0")}`;

const writerDocumentId = (tenant: string, writer: string) => `${tenant}:${writer}`;

type AuditDoc = AuditRecord & { _id: string };
type WriterDoc = AuditWriterRecord & { _id: string };

/** How many point lookups listChain keeps in flight. */
const LOOKUP_CONCURRENCY = 32;

export class MongoAudit implements AuditRepository {
  readonly keepsEverything = true;
  private readonly events: Collection<AuditDoc>;
  private readonly chains: Collection<WriterDoc>;

  constructor(db: Db) {
    this.events = db.collection<AuditDoc>(COLLECTIONS.audit);
    this.chains = db.collection<WriterDoc>(COLLECTIONS.auditWriters);
  }

  static async ensureIndexes(db: Db): Promise<void> {
    const events = db.collection(COLLECTIONS.audit);
    // Chains used to be one per tenant, unique on (tenant, sequence); sequences now count per writer.
    await events.dropIndex("tenant_1_sequence_1").catch(() => undefined);
    await events.createIndex({ tenant: 1, writer: 1, sequence: 1 }, { unique: true });
    await db.collection(COLLECTIONS.auditWriters).createIndex({ tenant: 1, startedAt: 1 });
  }

  async registerWriter(w: AuditWriterRecord): Promise<void> {
    await insertOnce(this.chains, { _id: writerDocumentId(w.tenant, w.writer), ...w });
  }

  async writers(tenant: string): Promise<AuditWriterRecord[]> {
    const docs = await this.chains.find({ tenant }).toArray();
    const chains = docs.map(({ _id, ...w }) => w);
    // Events written before chains were per writer form the legacy chain "", which is never registered.
    if (await this.get(tenant, "", 1)) chains.push({ tenant, writer: "", startedAt: new Date(0) });
    return chains.sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime() || a.writer.localeCompare(b.writer));
  }

  async insertMany(events: AuditRecord[]): Promise<void> {
    if (!events.length) return;
    await this.events.insertMany(
      events.map((e) => ({ _id: auditDocumentId(e.tenant, e.writer, e.sequence), ...e })),
      { ordered: false },
    );
  }

  async get(tenant: string, writer: string, sequence: number): Promise<AuditRecord | undefined> {
    const doc = await this.events.findOne({ _id: auditDocumentId(tenant, writer, sequence) });
    return doc ? withoutId(doc) : undefined;
  }

  async head(tenant: string, writer: string): Promise<number> {
    const exists = async (sequence: number) => (await this.events.findOne({ _id: auditDocumentId(tenant, writer, sequence) }, { projection: { _id: 1 } })) !== null;
    if (!(await exists(1))) return 0;
    // Gallop to a missing sequence, then bisect: a chain is contiguous from 1.
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

  async listChain(tenant: string, writer: string, afterSequence: number, limit: number): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for (let next = afterSequence + 1; out.length < limit; ) {
      const window = Math.min(LOOKUP_CONCURRENCY, limit - out.length);
      const found = await Promise.all(Array.from({ length: window }, (_, i) => this.get(tenant, writer, next + i)));
      for (const event of found) {
        if (!event) return out;
        out.push(event);
      }
      next += window;
    }
    return out;
  }

  async *scan(tenant: string): AsyncIterable<AuditRecord> {
    for await (const doc of this.events.find({ tenant }).batchSize(2000)) yield withoutId(doc);
  }
}

function withoutId(doc: AuditDoc): AuditRecord {
  const { _id, ...event } = doc;
  return { ...event, writer: event.writer ?? "" };
}
