import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ApprovalRecord } from "../../src/store/approval-repository.js";
import { STORE_BACKENDS, type StoreUnderTest } from "./store-backends.js";

const approval = (id: string, tenant: string, at: number): ApprovalRecord => ({
  id,
  tenant,
  connection: "conn_1",
  provider: "github",
  method: "DELETE",
  path: "/repos/acme/widgets/branches/old",
  query: "",
  bodySha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  subject: "agent-7",
  delegationChain: ["aa", "bb"],
  reasons: ["delete a branch"],
  linkSecretSha256: "ab".repeat(32),
  createdAt: new Date(at),
  expiresAt: new Date(at + 900_000),
});

describe.each(STORE_BACKENDS)("ApprovalRepository contract ($name)", ({ open }) => {
  let t: StoreUnderTest;
  beforeEach(async () => {
    t = await open();
  });
  afterEach(async () => {
    await t.dispose();
  });

  it("stores approvals and lists a tenant's, newest first", async () => {
    await t.store.approvals.insert(approval("apr_a", "acme", 1000));
    await t.store.approvals.insert(approval("apr_b", "acme", 2000));
    await t.store.approvals.insert(approval("apr_x", "other", 3000));
    await expect(t.store.approvals.insert(approval("apr_a", "acme", 5000))).rejects.toThrow();
    expect(await t.store.approvals.get("apr_a")).toEqual(approval("apr_a", "acme", 1000));
    expect(await t.store.approvals.get("apr_none")).toBeUndefined();
    expect((await t.store.approvals.list("acme", 10)).map((a) => a.id)).toEqual(["apr_b", "apr_a"]);
    expect((await t.store.approvals.list("acme", 1)).map((a) => a.id)).toEqual(["apr_b"]);
  });

  it("records one decision and one use per approval: the second of each loses", async () => {
    await t.store.approvals.insert(approval("apr_a", "acme", 1000));
    const decision = { id: "apr_a", approved: true, by: "ops@acme", via: "api" as const, note: "", at: new Date(2000) };
    const [first, second] = await Promise.all([t.store.approvals.decide(decision), t.store.approvals.decide({ ...decision, approved: false, via: "page" })]);
    expect([first, second].filter(Boolean)).toHaveLength(1);
    const stored = await t.store.approvals.decision("apr_a");
    expect(stored?.approved).toBe(first ? true : false);

    expect(await t.store.approvals.used("apr_a")).toBeUndefined();
    const uses = await Promise.all(Array.from({ length: 5 }, (_, i) => t.store.approvals.use({ id: "apr_a", subject: `agent-${i}`, at: new Date(3000) })));
    expect(uses.filter(Boolean)).toHaveLength(1);
    expect((await t.store.approvals.used("apr_a"))?.at).toEqual(new Date(3000));
  });
});
