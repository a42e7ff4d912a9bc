import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VerifyAuditResponse } from "../../src/gen/capvault/v1/admin.js";
import type { AuthorizeResponse, MintResponse, RevokeResponse } from "../../src/gen/capvault/v1/capability.js";
import type { AuditRecord } from "../../src/store/records.js";
import { mintAgent } from "../support/broker-harness.js";
import { runCli } from "../support/broker-process.js";
import { proxyLoad, startBrokerCluster, type BrokerCluster, type CallResult } from "../support/broker-cluster.js";

/**
 * The audit trail under faults, with two `capvault serve` processes on one private FerretDB and agents calling Proxy
 * on both: the database killed and kept down past the driver's server-selection timeout, a broker SIGKILLed, the
 * database stalled under a Revoke, and Revoke under load on the other broker. What must hold: every call answered OK
 * has its event, every request that reached the upstream has exactly one, nothing is duplicated, every chain
 * verifies, and a Revoke either succeeds (audited) or answers an error having done nothing.
 */

let cluster: BrokerCluster;

beforeAll(async () => {
  cluster = await startBrokerCluster({ brokers: 2, env: { CAPVAULT_AUDIT_COMMIT_TIMEOUT_MS: "2000" } });
}, 120_000);

afterAll(async () => cluster?.close(), 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rpc<Res>(invoke: (md: Metadata, options: { deadline: number }, cb: (e: ServiceError | null, r: Res) => void) => void, timeoutMs = 15_000): Promise<Res> {
  return new Promise((resolve, reject) => invoke(cluster.operatorMetadata(), { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r))));
}

const verify = (broker: number) =>
  rpc<VerifyAuditResponse>((md, o, cb) => cluster.admin(broker).verifyAudit({ tenant: cluster.tenant }, md, o, cb), 60_000);

/**
 * Every audit event, once the brokers have stored what they queued: both SERVING (no write failing) and the trail
 * unchanged across two reads a second apart.
 */
async function settledEvents(): Promise<AuditRecord[]> {
  let previous = -1;
  for (let i = 0; i < 120; i++) {
    const events = await cluster.auditEvents();
    if (events.length === previous && (await health(0)) === 0 && (await health(1)) === 0) return events;
    previous = events.length;
    await sleep(1000);
  }
  throw new Error("the audit trail kept growing");
}

function countByPath(events: AuditRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) if (e.action === "proxy") counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
  return counts;
}

function upstreamPaths(prefix: string): string[] {
  return cluster.upstream.requests.map((r) => r.url).filter((u) => u.startsWith(prefix));
}

describe("audit trail under faults (two brokers, one private FerretDB)", () => {
  it("Revoke on one broker succeeds every time while the other serves c=32 Proxy load", async () => {
    const load = proxyLoad(cluster, [1], 32);
    await sleep(1500);
    const latencies: number[] = [];
    try {
      for (let i = 0; i < 15; i++) {
        const minted = await mintAgent(cluster.capabilities(0), cluster.operatorMetadata(), {
          tenant: cluster.tenant,
          subject: `short-lived-${i}`,
          grants: [{ connection: cluster.connection, method: "GET", pathPrefix: "/" }],
          ttlSeconds: 600,
        });
        const started = performance.now();
        const res = await rpc<RevokeResponse>((md, o, cb) =>
          cluster.capabilities(0).revoke({ revocationIds: [minted.revocationIds[0]], reason: `revoke-under-load-${i}` }, md, o, cb),
        );
        latencies.push(performance.now() - started);
        expect(res.revoked).toBe(1);
      }
    } finally {
      const results = await load.stop();
      expect(results.filter((r) => r.ok).length).toBeGreaterThan(0);
    }
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.ceil(latencies.length * 0.99) - 1];
    console.log(`[audit-outage] Revoke under c=32 load on the other broker: p50 ${latencies[7].toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`);
    expect(p99).toBeLessThan(5000); // a guard against hangs; the target (p99 < 1 s) is measured by bench/audit.ts
  }, 120_000);

  it("a Revoke that answers an error (database stalled) has not taken effect", async () => {
    const minted: MintResponse = await mintAgent(cluster.capabilities(0), cluster.operatorMetadata(), {
      tenant: cluster.tenant,
      subject: "survives-a-failed-revoke",
      grants: [{ connection: cluster.connection, method: "GET", pathPrefix: "/" }],
      ttlSeconds: 600,
    });
    cluster.db.pause();
    let failure: ServiceError | undefined;
    try {
      await rpc<RevokeResponse>((md, o, cb) => cluster.capabilities(0).revoke({ revocationIds: [minted.revocationIds[0]], reason: "stalled" }, md, o, cb), 8000);
    } catch (err) {
      failure = err as ServiceError;
    } finally {
      cluster.db.resume();
    }
    expect(failure, "Revoke must not answer OK while the database is stalled").toBeDefined();
    await sleep(3000);
    for (const broker of [0, 1]) {
      const res = await rpc<AuthorizeResponse>((md, o, cb) =>
        cluster.capabilities(broker).authorize(
          { token: minted.token, request: { connection: cluster.connection, method: "GET", path: "/repos/acme/x", query: [], headers: [], body: Buffer.alloc(0) } },
          md,
          o,
          cb,
        ),
      );
      expect(res.allowed, `broker ${broker} still honours the capability whose Revoke failed`).toBe(true);
    }
    const events = await cluster.auditEvents();
    expect(events.filter((e) => e.action === "revoke" && e.decision === "ok" && e.detail.includes(minted.revocationIds[0]))).toEqual([]);
  }, 60_000);

  it("the database killed for longer than server selection under load: each upstream request has exactly one event", async () => {
    const load = proxyLoad(cluster, [0, 1], 8);
    await sleep(2000);
    await cluster.db.kill();
    await sleep(4000);
    const healthDuringOutage = await health(0);
    await sleep(9000);
    await cluster.db.restart();
    const restartedAt = Date.now();
    await sleep(5000);
    const results = await load.stop();
    expect(healthDuringOutage, "health says NOT_SERVING while the database is down").not.toBe(0);
    // Back to SERVING once the database is back: within 30 s (typically 1-5 s; on a loaded 2-core CI machine the
    // audit writer's catch-up after the outage has taken longer than a fixed 5 s window, while it did recover).
    let serving = await health(0);
    while (serving !== 0 && Date.now() - restartedAt < 30_000) {
      await sleep(500);
      serving = await health(0);
    }
    expect(serving, `and SERVING again once it is back; broker 0 said:\n${brokerWarnings(0)}`).toBe(0);
    console.log(`[audit-outage] broker 0 SERVING ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the database restarted`);

    const events = await settledEvents();
    const counts = countByPath(events);
    const duplicated = [...counts].filter(([, n]) => n > 1);
    expect(duplicated, "no event is stored twice").toEqual([]);
    const answeredOk = results.filter((r) => r.ok);
    expect(answeredOk.length).toBeGreaterThan(50);
    const okWithoutEvent = answeredOk.filter((r) => counts.get(r.path) !== 1);
    expect(okWithoutEvent, "every call answered OK has its event").toEqual([]);
    const sentWithoutEvent = upstreamPaths("/repos/acme/load/").filter((p) => counts.get(p) !== 1);
    expect(sentWithoutEvent, `every request that reached the upstream has exactly one event; the brokers said:\n${brokerWarnings(0)}\n${brokerWarnings(1)}`).toEqual([]);
    const refusedDuringOutage = results.filter((r) => !r.ok);
    expect(refusedDuringOutage.length).toBeGreaterThan(0);
    console.log(`[audit-outage] ${answeredOk.length} calls answered OK, ${refusedDuringOutage.length} refused (${summarize(refusedDuringOutage)})`);
    for (const broker of [0, 1]) expect(await verify(broker)).toMatchObject({ ok: true, problem: "" });
  }, 120_000);

  it("a broker SIGKILLed under load: no call it answered OK is missing from the trail", async () => {
    const load = proxyLoad(cluster, [1], 16);
    await sleep(3000);
    cluster.brokers[1].child.kill("SIGKILL");
    await cluster.brokers[1].exited;
    const results = await load.stop();
    const answeredOk = results.filter((r) => r.ok);
    console.log(`[audit-outage] SIGKILL: ${answeredOk.length} calls answered OK, ${results.length - answeredOk.length} failed (${summarize(results.filter((r) => !r.ok))})`);
    expect(answeredOk.length, `broker 1 said:\n${brokerWarnings(1)}`).toBeGreaterThan(20);
    const counts = countByPath(await cluster.auditEvents());
    expect(answeredOk.filter((r) => counts.get(r.path) !== 1)).toEqual([]);
    expect(await verify(0)).toMatchObject({ ok: true, problem: "" });
  }, 60_000);
});

/** The broker's warnings and errors (readiness changes, failed writes): what a failure message needs. */
function brokerWarnings(broker: number): string {
  const lines = cluster.brokers[broker].stderr().split("\n").filter((l) => /"level":(40|50|60)|ready again/.test(l));
  return lines.slice(-15).join("\n");
}

/** `capvault health` against a broker: exit 0 only when SERVING. */
async function health(broker: number): Promise<number | null> {
  return (await runCli(["health", "--grpc-addr", cluster.brokers[broker].address, "--timeout-ms", "3000"], { env: process.env })).code;
}

function summarize(results: CallResult[]): string {
  const byReason = new Map<string, number>();
  for (const r of results) byReason.set(r.reason ?? "?", (byReason.get(r.reason ?? "?") ?? 0) + 1);
  return [...byReason].map(([k, v]) => `${k}: ${v}`).join(", ");
}

