import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, CapvaultClientError, type CapvaultClient } from "../../src/client/index.js";
import type { AuditEvent, ListAuditEventsResponse } from "../../src/gen/capvault/v1/admin.js";
import type { MintResponse } from "../../src/gen/capvault/v1/capability.js";
import { CLI, REPO_ROOT, runCli } from "../support/broker-process.js";
import { startDevBroker, type DevBroker } from "../support/broker-harness.js";
import { storedAuditEvents, tamperWithAuditSegment } from "../support/audit-documents.js";

/**
 * The audit trail on a REAL run: `capvault dev` (the built CLI) with CAPVAULT_MONGODB_URI on the FerretDB test
 * database, real Proxy calls (allowed and denied) and the other audited actions, then `capvault audit verify` and
 * `capvault audit tail` as an operator would run them. Then ONE audit document is edited directly in MongoDB and
 * `capvault audit verify` names that event. Run `npm run build` first.
 */

let d: DevBroker;
let connection: string;
let agentMint: MintResponse;
let narrowerToken: string;
let narrowerIds: string[];
let disconnected: string;
let failNextWithInvalidToken = false;

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(args, { env: { ...process.env, CAPVAULT_TOKEN: d.operatorToken, ...d.cliEnv, ...env }, timeoutMs: 20_000 });

function listEvents(): Promise<AuditEvent[]> {
  return new Promise((ok, no) =>
    d.rpc.admin.listAuditEvents({ tenant: d.tenant, afterSequence: 0, limit: 1000, writer: "", pageToken: "" }, d.operatorMetadata(), (e, r: ListAuditEventsResponse) =>
      e ? no(e) : ok(r.events),
    ),
  );
}

/** Audit writes are queued off the hot path: wait until the trail stops growing. */
async function settledEvents(): Promise<AuditEvent[]> {
  let last = -1;
  for (;;) {
    const events = await listEvents();
    if (events.length === last) return events;
    last = events.length;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const tailOnce = async (after = 0) => {
  const r = await cli(["audit", "tail", "--tenant", "dev", "--once", "--after", String(after)]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown> & { id: string; sequence: number; action: string });
};

beforeAll(async () => {
  d = await startDevBroker({
    upstream: (req, res) => {
      if (failNextWithInvalidToken) {
        failNextWithInvalidToken = false;
        res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"' });
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ url: req.url }));
    },
  });
  connection = await d.connectAccount("alice");
  disconnected = await d.connectAccount("bob");

  agentMint = await d.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }], 3600, "agent-7");
  const agent: CapvaultClient = connect(d.address, agentMint.token);
  try {
    expect((await agent.fetch(connection, { path: "/repos/acme/widgets/issues", query: { state: "open" } })).status).toBe(200);
    const denied = await agent.fetch(connection, { path: "/repos/globex/secrets" }).catch((e: unknown) => e);
    expect((denied as CapvaultClientError).reason).toBe("NO_MATCHING_GRANT");
    const post = await agent.fetch(connection, { method: "POST", path: "/repos/acme/widgets/issues", body: { title: "x" } }).catch((e: unknown) => e);
    expect((post as CapvaultClientError).reason).toBe("NO_MATCHING_GRANT");

    // A sub-agent's narrower token: allowed under its prefix, refused by its own check elsewhere.
    narrowerToken = await agent.attenuate({ pathPrefix: "/repos/acme/widgets/" });
    const sub = agent.withToken(narrowerToken);
    narrowerIds = (await sub.inspect()).revocationIds;
    expect((await sub.fetch(connection, { path: "/repos/acme/widgets/pulls" })).status).toBe(200);
    const outside = await sub.fetch(connection, { path: "/repos/acme/gadgets" }).catch((e: unknown) => e);
    expect((outside as CapvaultClientError).reason).toBe("CAPABILITY_CHECK_FAILED");

    // An upstream 401 makes the broker refresh the connection once.
    failNextWithInvalidToken = true;
    expect((await agent.fetch(connection, { path: "/repos/acme/widgets" })).status).toBe(200);

    // The operator revokes the sub-agent's block; its next call is refused.
    await new Promise<void>((ok, no) =>
      d.rpc.capabilities.revoke({ revocationIds: [narrowerIds[1]], reason: "sub-agent done" }, d.operatorMetadata(), (e) => (e ? no(e) : ok())),
    );
    const revoked = await sub.fetch(connection, { path: "/repos/acme/widgets/pulls" }).catch((e: unknown) => e);
    expect((revoked as CapvaultClientError).reason).toBe("CAPABILITY_REVOKED");
  } finally {
    agent.close();
  }
  await new Promise<void>((ok, no) =>
    d.rpc.connections.disconnect({ tenant: d.tenant, connectionId: disconnected }, d.operatorMetadata(), (e) => (e ? no(e) : ok())),
  );
  await settledEvents();
}, 120_000);

afterAll(async () => d?.close());

describe("capvault audit on a real run (capvault dev, audit trail in MongoDB)", () => {
  it("the trail lives in MongoDB: every event, in segments of the group commits that stored them", async () => {
    const events = await settledEvents();
    const stored = await storedAuditEvents(d.db.db, (e) => e.tenant === "dev");
    expect(stored.map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    expect(events.length).toBeGreaterThanOrEqual(12);
  });

  it("`capvault audit verify` passes (exit 0), with the operator token from CAPVAULT_TOKEN or --token-file", async () => {
    const r = await cli(["audit", "verify", "--tenant", "dev"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/audit trail of tenant dev: \d+ event\(s\) verified, the hash chain is intact/);

    const dir = await mkdtemp(join(tmpdir(), "capvault-audit-"));
    try {
      const file = join(dir, "operator.token");
      await writeFile(file, `${d.operatorToken}\n`, { mode: 0o600 });
      const fromFile = await cli(["audit", "verify", "--tenant", "dev", "--token-file", file], { CAPVAULT_TOKEN: "" });
      expect(fromFile.code, fromFile.stderr).toBe(0);
      expect(fromFile.stdout).toContain("the hash chain is intact");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("proxy events carry who, what, the decision, the failing check or policy on deny, upstream status and latency", async () => {
    const events = await tailOnce();
    const proxy = events.filter((e) => e.action === "proxy");
    const allowed = proxy.find((e) => e.path === "/repos/acme/widgets/issues" && e.decision === "allow")!;
    expect(allowed).toMatchObject({
      tenant: "dev",
      subject: "agent-7",
      delegationChain: agentMint.revocationIds,
      connection,
      provider: "gh",
      method: "GET",
      path: "/repos/acme/widgets/issues",
      decision: "allow",
      upstreamStatus: 200,
    });
    expect(allowed.reason ?? "").toBe(""); // (the JSON form leaves out empty and zero fields)
    const stored = (await listEvents()).find((e) => e.id === allowed.id)!;
    expect(stored.latencyMs).toBeGreaterThan(0); // a TLS round trip to the upstream takes more than a millisecond
    expect(stored.time!.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
    expect(allowed.hash).toMatch(/^[0-9a-f]{64}$/);

    const denied = proxy.find((e) => e.path === "/repos/globex/secrets")!;
    expect(denied).toMatchObject({
      subject: "agent-7",
      delegationChain: agentMint.revocationIds,
      connection,
      provider: "gh",
      method: "GET",
      decision: "deny",
      reason: "NO_MATCHING_GRANT",
    });
    expect(denied.upstreamStatus ?? 0).toBe(0);
    expect(String(denied.detail)).toContain("allow if right(");

    const post = proxy.find((e) => e.method === "POST")!;
    expect(post).toMatchObject({ decision: "deny", reason: "NO_MATCHING_GRANT", path: "/repos/acme/widgets/issues" });

    const byCheck = proxy.find((e) => e.path === "/repos/acme/gadgets")!;
    expect(byCheck).toMatchObject({ subject: "agent-7", delegationChain: narrowerIds, decision: "deny", reason: "CAPABILITY_CHECK_FAILED" });
    expect(String(byCheck.detail)).toContain("block=1 check=0");
    expect(String(byCheck.detail)).toContain('starts_with("/repos/acme/widgets/")');

    const subAllowed = proxy.find((e) => e.path === "/repos/acme/widgets/pulls" && e.decision === "allow")!;
    expect(subAllowed.delegationChain).toEqual(narrowerIds);
    expect(narrowerIds).toHaveLength(2);
    expect(narrowerIds[0]).toBe(agentMint.revocationIds[0]);

    const revoked = proxy.find((e) => e.reason === "CAPABILITY_REVOKED")!;
    // Refused before any decision, but still audited with whose capability it was.
    expect(revoked).toMatchObject({ decision: "deny", connection, path: "/repos/acme/widgets/pulls", subject: "agent-7", delegationChain: narrowerIds });

    const retried = proxy.find((e) => e.path === "/repos/acme/widgets" && e.decision === "allow")!;
    expect(retried.upstreamStatus).toBe(200);
  });

  it("connect, refresh, disconnect, mint, attenuate and revoke produce events too", async () => {
    const events = await tailOnce();
    const of = (action: string) => events.filter((e) => e.action === action);
    expect(of("connect").map((e) => e.connection)).toEqual(expect.arrayContaining([connection, disconnected]));
    expect(of("connect").every((e) => e.provider === "gh" && e.decision === "allow")).toBe(true);
    expect(of("refresh")).toEqual([expect.objectContaining({ connection, provider: "gh", decision: "allow", reason: "refreshed" })]);
    // Operator actions are audited before they take effect (decision "intent"), then their outcome.
    expect(of("disconnect")).toEqual([
      expect.objectContaining({ connection: disconnected, subject: "dev-operator", decision: "intent" }),
      expect.objectContaining({ connection: disconnected, provider: "gh" }),
    ]);
    expect(of("mint")).toEqual([expect.objectContaining({ subject: "dev-operator", decision: "ok" })]);
    expect(String(of("mint")[0].detail)).toContain("agent-7");
    expect(of("attenuate")).toEqual([expect.objectContaining({ subject: "agent-7", delegationChain: narrowerIds, decision: "ok" })]);
    expect(of("revoke")).toEqual([
      expect.objectContaining({ subject: "dev-operator", decision: "intent" }),
      expect.objectContaining({ subject: "dev-operator", decision: "ok" }),
    ]);
    expect(String(of("revoke")[1].detail)).toContain(narrowerIds[1]);
    // Sequences run 1..n without gaps, each event linked to the one before.
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
  });

  it("`capvault audit tail --after N` prints only later events, and follows new ones until interrupted", async () => {
    const all = await tailOnce();
    const last = all.at(-1)!.sequence;
    expect((await tailOnce(last - 2)).map((e) => e.sequence)).toEqual([last - 1, last]);

    const child = spawn(process.execPath, [CLI, "audit", "tail", "--tenant", "dev", "--after", String(last)], {
      cwd: REPO_ROOT,
      env: { ...process.env, CAPVAULT_TOKEN: d.operatorToken, ...d.cliEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      const agent = connect(d.address, agentMint.token);
      await agent.fetch(connection, { path: "/repos/acme/followed" });
      agent.close();
      const deadline = Date.now() + 10_000;
      while (!out.includes("/repos/acme/followed") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const line = JSON.parse(out.trim().split("\n")[0]);
      expect(line).toMatchObject({ sequence: last + 1, action: "proxy", path: "/repos/acme/followed", decision: "allow", subject: "agent-7" });
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited).toBe(0);
  });

  it("usage errors exit 2; a non-operator capability is refused (exit 1, with the reason)", async () => {
    const noTenant = await cli(["audit", "verify"]);
    expect(noTenant.code).toBe(2);
    expect(noTenant.stderr).toContain("--tenant is required");
    const unknown = await cli(["audit", "prune", "--tenant", "dev"]);
    expect(unknown.code).toBe(2);
    const asAgent = await cli(["audit", "verify", "--tenant", "dev"], { CAPVAULT_TOKEN: agentMint.token });
    expect(asAgent.code).toBe(1);
    expect(asAgent.stderr).toContain("PERMISSION_DENIED OPERATOR_REQUIRED");
    const tailAsAgent = await cli(["audit", "tail", "--tenant", "dev"], { CAPVAULT_TOKEN: agentMint.token });
    expect(tailAsAgent.code).toBe(1);
    expect(tailAsAgent.stderr).toContain("OPERATOR_REQUIRED");
  });

  it("after ONE audit document is edited directly in MongoDB, `capvault audit verify` fails naming that event", async () => {
    const events = await settledEvents();
    const target = events.find((e) => e.action === "proxy" && e.path === "/repos/globex/secrets")!;
    expect(target.decision).toBe("deny");
    // The classic cover-up: turn a refusal into an allowed call.
    await tamperWithAuditSegment(d.db.db, "dev", target.writer, target.sequence, (events) =>
      events.map((e) => (e.id === target.id ? { ...e, decision: "allow" } : e)),
    );
    expect((await storedAuditEvents(d.db.db, (e) => e.id === target.id))[0].decision).toBe("allow");

    const r = await cli(["audit", "verify", "--tenant", "dev"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN at event ${target.id} (sequence ${target.sequence})`);
    expect(r.stdout).toContain("the event was edited");
    expect(r.stdout).toContain(`${target.sequence - 1} event(s) before it verified`);
  });
});
