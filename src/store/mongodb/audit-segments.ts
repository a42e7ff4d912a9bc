import { deflateRawSync, inflateRawSync } from "node:zlib";
import { Binary } from "mongodb";
import type { AuditRecord } from "../records.js";
import { UnreadableAuditEvents } from "../repositories.js";

/**
 * How the audit trail is laid out in MongoDB: one document per group commit and chain ("segment"), never one per
 * event.
 *
 * A segment holds the consecutive events one writer stored for one tenant in one write, as compressed JSON lines.
 * It is inserted once under `<tenant>:<writer>:<segment number>`, so a group commit is one atomic insert on every
 * server (no partly applied batches), and every read is an `_id` lookup or a cursor over the tenant. Reading and
 * verifying a trail then costs per segment, not per event: on FerretDB 1.24 each document costs some 65 µs of
 * server CPU to decode whatever its size, and a string field costs per byte, so compressed segments of 16 events
 * are read about ten times faster than one document per event (bench/README.md, "Audit").
 */
export interface SegmentDocument {
  _id: string;
  tenant: string;
  writer: string;
  /** 1, 2, 3… within (tenant, writer). */
  segment: number;
  /** The sequence of its first event; the events run first, first + 1, … first + count - 1. */
  first: number;
  count: number;
  /** The events as JSON lines, raw-deflated. */
  events: Binary;
}

export const segmentDocumentId = (tenant: string, writer: string, segment: number) =>
  `${tenant}:${writer}:${String(segment).padStart(12, "0")}`;

/** Events of one chain, consecutive, as one segment document. */
export function encodeSegment(segment: number, events: AuditRecord[]): SegmentDocument {
  const { tenant, writer, sequence: first } = events[0];
  const lines = events.map((e) => JSON.stringify(e)).join("\n");
  return {
    _id: segmentDocumentId(tenant, writer, segment),
    tenant,
    writer,
    segment,
    first,
    count: events.length,
    events: new Binary(deflateRawSync(lines)),
  };
}

/**
 * The events of a segment document. A document whose content cannot be decoded, or does not match its own header
 * (chain, first sequence, count), was edited outside capvault: UnreadableAuditEvents says where.
 */
export function decodeSegment(doc: Pick<SegmentDocument, "tenant" | "writer" | "first" | "count" | "events">): AuditRecord[] {
  let events: AuditRecord[];
  try {
    const text = inflateRawSync(doc.events.buffer).toString("utf8");
    events = text.split("\n").map((line) => {
      const event = JSON.parse(line) as AuditRecord & { time: string };
      return { ...event, time: new Date(event.time) };
    });
  } catch {
    throw new UnreadableAuditEvents(doc.writer, doc.first, "its stored events cannot be decoded: edited");
  }
  const consistent =
    events.length === doc.count &&
    events.every((e, i) => e.tenant === doc.tenant && e.writer === doc.writer && e.sequence === doc.first + i);
  if (!consistent) throw new UnreadableAuditEvents(doc.writer, doc.first, "its stored events do not match the segment they are in: edited");
  return events;
}
