import { describe, expect, it } from "vitest";
import { auditRecordOf, hashAuditRecord } from "../../src/audit/audit-event.js";
import type { AuditRecord } from "../../src/store/records.js";

/** One event with every hashed field set to a distinct value. */
const event: Omit<AuditRecord, "hash"> = {
  id: "0b6f4e8e-2f7e-4a53-9f41-1a2b3c4d5e6f",
  tenant: "acme",
  writer: "",
  sequence: 42,
  time: new Date("2026-12-04T13:00:00.123Z"),
  action: "proxy",
  subject: "agent-7",
  delegationChain: ["aa", "bb"],
  connection: "conn_1",
  provider: "github",
  method: "GET",
  path: "/repos/acme/widgets/issues/7",
  decision: "deny",
  reason: "CAPABILITY_CHECK_FAILED",
  detail: 'block=1 check=0; block 1 check 0: check if method("GET")',
  upstreamStatus: 0,
  latencyMs: 3,
  previousHash: "f".repeat(64),
};

describe("hashAuditRecord", () => {
  // Hashes of stored trails must never change: these were computed by the field-list implementation of session 9
  // (commit f734135), before the hash was written out field by field.
  it("keeps the hashes of stored events (legacy single chain and per-writer chains)", () => {
    expect(hashAuditRecord(event)).toBe("d3bac3d0ce15210095587a4e6c5225d71bedcafd6a9bf4f7f87d978727b24453");
    expect(hashAuditRecord({ ...event, writer: "w-1" })).toBe("923592fee3ee2c268dbd3c15fbcd463be3be07f1385df0651e325832c4bddd40");
  });

  it("changes when any hashed field changes", () => {
    const original = hashAuditRecord(event);
    const edits: Array<Partial<AuditRecord>> = [
      { id: "other" }, { tenant: "other" }, { sequence: 43 }, { time: new Date("2026-12-04T13:00:00.124Z") },
      { action: "mint" }, { subject: "agent-8" }, { delegationChain: ["aa"] }, { connection: "conn_2" },
      { provider: "slack" }, { method: "POST" }, { path: "/repos/acme/widgets/issues/8" }, { decision: "allow" },
      { reason: "" }, { detail: "" }, { upstreamStatus: 200 }, { latencyMs: 4 }, { previousHash: "e".repeat(64) },
      { writer: "w-2" },
    ];
    for (const edit of edits) expect(hashAuditRecord({ ...event, ...edit }), JSON.stringify(edit)).not.toBe(original);
  });

  it("is what auditRecordOf stores", () => {
    const { id, writer, sequence, time, previousHash, ...entry } = event;
    const record = auditRecordOf(entry, { id, writer, sequence, time, previousHash });
    expect(record.hash).toBe(hashAuditRecord(event));
  });
});
