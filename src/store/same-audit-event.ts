import type { AuditRecord } from "./records.js";

/** The same event: its id and its hash (which covers every other field) match. */
export const sameEvent = (a: AuditRecord, b: AuditRecord) => a.id === b.id && a.hash === b.hash;
