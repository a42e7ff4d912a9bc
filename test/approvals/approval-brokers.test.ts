import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhook } from "../../src/approvals/approval-webhook.js";
import { CapvaultClientError, connect, type CapvaultClient } from "../../src/client/index.js";
import { startBrokerCluster, type BrokerCluster } from "../support/broker-cluster.js";
import { runCli } from "../support/broker-process.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

/**
 * Step-up approval across two `capvault serve` processes on one FerretDB: a call held on broker 1 is approved through
 * the CLI and used on broker 2; replays on either broker, the same approval for another path, and an expired approval
 * are refused; the upstream receives exactly one request per approval in all of it. Every step is in the audit trail.
 */

const SECRET = "whsec-cluster-0123456789abcdef";
const TTL_SECONDS = 12;
let cluster: BrokerCluster;
let hooks: WebhookReceiver;
let policies: string;
let agents: CapvaultClient[];

beforeAll(async () => {
  hooks = await startWebhookReceiver();
  policies = await mkdtemp(join(tmpdir(), "capvault-approval-policies-"));
  await writeFile(
    join(policies, "approvals.datalog"),
    'approval_required("read the payroll") <- method("GET"), path($p), $p.starts_with("/repos/acme/payroll/");\n',
  );
  cluster = await startBrokerCluster({
    brokers: 2,
    env: {
      CAPVAULT_POLICIES_DIR: policies,
      CAPVAULT_APPROVAL_TTL_SECONDS: String(TTL_SECONDS),
      CAPVAULT_APPROVAL_WEBHOOK_URL: hooks.url,
      CAPVAULT_APPROVAL_WEBHOOK_SECRET: SECRET,
    },
  });
  agents = cluster.brokers.map((b) => connect(b.address, cluster.agentToken));
}, 180_000);
afterAll(async () => {
  for (const a of agents ?? []) a.close();
  await cluster?.close();
  await hooks?.close();
  if (policies) await rm(policies, { recursive: true, force: true });
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as CapvaultClientError,
  );
const upstreamCalls = (path: string) => cluster.upstream.requests.filter((r) => r.url === path).length;
const cli = (args: string[], broker = 0) =>
  runCli(["approvals", ...args, "--tenant", "acme"], {
    env: { ...process.env, ...cluster.env, CAPVAULT_TOKEN: cluster.operatorToken, CAPVAULT_GRPC_ADDR: cluster.brokers[broker].address },
  });

async function holdOn(broker: number, path: string): Promise<string> {
  const err = await failure(agents[broker].fetch(cluster.connection, { path }));
  expect(err?.reason).toBe("APPROVAL_REQUIRED");
  return err!.metadata.approval_id;
}

describe("step-up approval across two brokers", () => {
  it("held on broker 1, approved with the CLI, used once on broker 2; replays and other paths refused", async () => {
    const path = "/repos/acme/payroll/2026-11";
    const id = await holdOn(0, path);
    const delivery = await hooks.next((e) => e.id === id);
    expect(verifyWebhook(SECRET, delivery.body, String(delivery.headers["capvault-signature"]))).toBe(true);

    // Not yet decided: the repeat is refused on either broker, nothing sent.
    expect((await failure(agents[1].fetch(cluster.connection, { path, approvalId: id })))?.reason).toBe("APPROVAL_PENDING");

    const shown = await cli(["show", id, "--json"], 1);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, state: "pending", request: `GET ${path}`, reasons: ["read the payroll"], subject: "agent-1" });
    const listed = await cli(["list", "--state", "pending"]);
    expect(listed.stdout).toContain(id);

    const approved = await cli(["approve", id, "--note", "checked with alice"]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stderr).toContain(`approved ${id}`);

    // The same approval for another path: refused, nothing sent.
    const otherPath = "/repos/acme/payroll/2026-10";
    expect((await failure(agents[1].fetch(cluster.connection, { path: otherPath, approvalId: id })))?.reason).toBe("APPROVAL_MISMATCH");

    const res = await agents[1].fetch(cluster.connection, { path, approvalId: id });
    expect(res.status).toBe(200);
    for (const broker of [0, 1]) {
      expect((await failure(agents[broker].fetch(cluster.connection, { path, approvalId: id })))?.reason).toBe("APPROVAL_USED");
    }
    // Concurrent replays on both brokers: still none goes through.
    const racing = await Promise.all([0, 1, 0, 1].map((b) => failure(agents[b].fetch(cluster.connection, { path, approvalId: id }))));
    expect(racing.map((e) => e?.reason)).toEqual(["APPROVAL_USED", "APPROVAL_USED", "APPROVAL_USED", "APPROVAL_USED"]);

    const after = await cli(["show", id, "--json"]);
    expect(JSON.parse(after.stdout)).toMatchObject({ state: "used", decidedBy: "ops@acme (api)" });
    expect(upstreamCalls(path)).toBe(1);
    expect(upstreamCalls(otherPath)).toBe(0);
  });

  it("two brokers racing to use one approval: exactly one call goes upstream", async () => {
    const path = "/repos/acme/payroll/race";
    const id = await holdOn(1, path);
    expect((await cli(["approve", id], 1)).code).toBe(0);
    const outcomes = await Promise.all([0, 1, 0, 1, 0, 1].map((b) => agents[b].fetch(cluster.connection, { path, approvalId: id }).then(
      (r) => String(r.status),
      (e: unknown) => (e as CapvaultClientError).reason,
    )));
    expect(outcomes.filter((o) => o === "200")).toHaveLength(1);
    expect(outcomes.filter((o) => o !== "200").every((o) => o === "APPROVAL_USED")).toBe(true);
    expect(upstreamCalls(path)).toBe(1);
  });

  it("a denied approval is refused, and the client's waitForApproval returns once approved", async () => {
    const denied = "/repos/acme/payroll/denied";
    const id = await holdOn(0, denied);
    expect((await cli(["deny", id], 1)).code).toBe(0);
    expect((await failure(agents[1].fetch(cluster.connection, { path: denied, approvalId: id })))?.reason).toBe("APPROVAL_DENIED");
    expect(upstreamCalls(denied)).toBe(0);

    // The TS client holds, waits (WaitApproval on broker 2), and repeats once an operator approves on broker 1.
    const waited = "/repos/acme/payroll/waited";
    const pending = agents[1].fetch(cluster.connection, { path: waited, waitForApproval: true });
    const delivery = await hooks.next((e) => e.path === waited);
    expect((await cli(["approve", String(delivery.event.id)])).code).toBe(0);
    expect((await pending).status).toBe(200);
    expect(upstreamCalls(waited)).toBe(1);
  });

  it("capvault call says how to go on when held, and --approval-id repeats the call once approved", async () => {
    const path = "/repos/acme/payroll/cli";
    const call = (extra: string[] = [], broker = 0) =>
      runCli(["call", cluster.connection, "GET", path, ...extra], {
        env: { ...process.env, ...cluster.env, CAPVAULT_TOKEN: cluster.agentToken, CAPVAULT_GRPC_ADDR: cluster.brokers[broker].address },
      });
    const held = await call();
    expect(held.code).toBe(1);
    const id = /--approval-id (apr_\S+)/.exec(held.stderr)?.[1];
    expect(id, held.stderr).toBeDefined();
    expect(held.stderr).toContain("APPROVAL_REQUIRED");
    expect((await cli(["approve", id!])).code).toBe(0);
    const done = await call(["--approval-id", id!], 1);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain("HTTP 200");
    expect((await call(["--approval-id", id!])).stderr).toContain("APPROVAL_USED");
    expect(upstreamCalls(path)).toBe(1);
  });

  it("an approval that expires before it is used is refused", async () => {
    const path = "/repos/acme/payroll/late";
    const id = await holdOn(0, path);
    expect((await cli(["approve", id])).code).toBe(0);
    await new Promise((r) => setTimeout(r, (TTL_SECONDS + 1) * 1000));
    expect((await failure(agents[1].fetch(cluster.connection, { path, approvalId: id })))?.reason).toBe("APPROVAL_EXPIRED");
    const decided = await cli(["approve", id]);
    expect(decided.code).toBe(1);
    expect(decided.stderr).toContain("APPROVAL_EXPIRED");
    expect(upstreamCalls(path)).toBe(0);
  }, 60_000);

  it("every step is a hash-chained audit event, and the trail verifies", async () => {
    const events = await cluster.auditEvents();
    const actions = new Set(events.map((e) => e.action));
    for (const action of ["approval_held", "approval_decided", "approval_used", "approval_expired"]) expect(actions.has(action), action).toBe(true);
    const decided = events.filter((e) => e.action === "approval_decided");
    expect(decided.some((e) => e.decision === "allow" && e.subject === "ops@acme" && e.detail?.includes("via=api"))).toBe(true);
    expect(decided.some((e) => e.decision === "deny")).toBe(true);
    const verify = await runCli(["audit", "verify", "--tenant", "acme"], {
      env: { ...process.env, ...cluster.env, CAPVAULT_TOKEN: cluster.operatorToken, CAPVAULT_GRPC_ADDR: cluster.brokers[0].address },
    });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});
