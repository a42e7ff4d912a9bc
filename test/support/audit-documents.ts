/**
 * The audit trail as it lies in MongoDB, read and edited directly (not through capvault): what a test needs to count
 * stored events, search them for secrets, or play an attacker who edits the database.
 */
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { Binary, type Db } from "mongodb";
import { decodeSegment, type SegmentDocument } from "../../src/store/mongodb/audit-segments.js";
import { COLLECTIONS } from "../../src/store/mongodb/collections.js";
import type { AuditRecord } from "../../src/store/records.js";

/** Every stored event (segments decoded), optionally only those matching `where`. */
export async function storedAuditEvents(db: Db, where: (e: AuditRecord) => boolean = () => true): Promise<AuditRecord[]> {
  const docs = await db.collection<SegmentDocument>(COLLECTIONS.auditSegments).find({}).toArray();
  return docs.flatMap((doc) => decodeSegment(doc)).filter(where);
}

/** The raw JSON lines of every segment: what a database dump holds once decompressed. */
export async function storedAuditText(db: Db): Promise<Array<{ label: string; text: string }>> {
  const docs = await db.collection<SegmentDocument>(COLLECTIONS.auditSegments).find({}).toArray();
  return docs.map((doc) => ({ label: `${COLLECTIONS.auditSegments} ${doc._id} (inflated)`, text: inflateRawSync(doc.events.buffer).toString("utf8") }));
}

/**
 * Edit the stored segment that holds (tenant, writer, sequence) as an attacker with database access would: `edit`
 * gets its events (as plain objects) and returns the new ones (the segment's header is kept), or undefined to delete
 * the whole segment. Nothing is re-hashed.
 */
export async function tamperWithAuditSegment(
  db: Db,
  tenant: string,
  writer: string,
  sequence: number,
  edit: (events: Array<Record<string, unknown>>) => Array<Record<string, unknown>> | undefined,
): Promise<void> {
  const segments = db.collection<SegmentDocument>(COLLECTIONS.auditSegments);
  const doc = (await segments.find({ tenant, writer }).toArray()).find((d) => d.first <= sequence && sequence < d.first + d.count);
  if (!doc) throw new Error(`no stored segment holds ${tenant}/${writer}/${sequence}`);
  const events = inflateRawSync(doc.events.buffer).toString("utf8").split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  const edited = edit(events);
  if (!edited) {
    await segments.deleteOne({ _id: doc._id });
    return;
  }
  const lines = edited.map((e) => JSON.stringify(e)).join("\n");
  await segments.updateOne({ _id: doc._id }, { $set: { events: new Binary(deflateRawSync(lines)) } });
}
