import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, type CapvaultClient } from "../../src/client/index.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";
import { parsePrometheusText, seriesValue, type MetricFamily } from "../support/prometheus-text.js";

/**
 * The metrics endpoint of a whole broker (FerretDB, oidc-provider, a recording upstream), scraped over HTTP and read
 * with a strict exposition-format parser: three Proxy calls (allowed, denied, allowed after a refresh) move exactly
 * the counters and histograms they should, and no label anywhere carries a path, a subject, a connection id or a
 * token.
 */

const ALLOWED_PATH = "/repos/metrics-allowed-path";
const DENIED_PATH = "/admin/metrics-denied-path";
const SUBJECT = "agent-metrics-subject";
const rejected = new Set<string>();
let t: TestBroker;
let connection: string;
let agentToken: string;
let agent: CapvaultClient;

beforeAll(async () => {
  t = await startTestBroker({ exposeSecrets: true, config: { "metrics.addr": "127.0.0.1:0" } });
  t.upstream.handler = (req, res) => {
    const token = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
    if (rejected.has(token)) {
      res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"', "content-type": "application/json" });
      res.end('{"message":"Bad credentials"}');
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok":true}');
  };
  connection = await t.connectAccount("alice");
  agentToken = (await t.mint([{ connection, method: "GET", pathPrefix: "/repos/" }], 3600, SUBJECT)).token;
  agent = t.client(agentToken);
});
afterAll(async () => t?.close());

async function scrape(): Promise<{ text: string; families: Map<string, MetricFamily> }> {
  const res = await fetch(t.broker.metricsUrl!);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  const text = await res.text();
  return { text, families: parsePrometheusText(text) };
}

/** Every counter and histogram series of capvault's own metrics, by name and labels. */
function movingSeries(families: Map<string, MetricFamily>): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of families.values()) {
    if (!f.name.startsWith("capvault_") || (f.type !== "counter" && f.type !== "histogram")) continue;
    for (const s of f.samples) {
      if (s.name.endsWith("_bucket") || s.name.endsWith("_sum")) continue; // _count moves with them
      out.set(`${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`, s.value);
    }
  }
  return out;
}

function changes(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of after) {
    const delta = value - (before.get(key) ?? 0);
    if (delta !== 0) out[key] = delta;
  }
  return out;
}

const key = (name: string, labels: Record<string, string> = {}) => `${name}${JSON.stringify(Object.entries(labels).sort())}`;

describe("the metrics endpoint", () => {
  it("counts an allowed, a denied and a refreshed Proxy call, and nothing else", async () => {
    // One call first, so that the access token is cached and series that appear on first use exist.
    await agent.fetch(connection, { path: ALLOWED_PATH });
    const before = await scrape();

    expect((await agent.fetch(connection, { path: ALLOWED_PATH })).status).toBe(200);
    const denial = await agent.fetch(connection, { path: DENIED_PATH }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(denial).toBeInstanceOf(CapvaultClientError);
    expect((denial as CapvaultClientError).code).toBe(status.PERMISSION_DENIED);
    const denyReason = (denial as CapvaultClientError).reason;
    rejected.add(await t.accessTokenOf(connection));
    expect((await agent.fetch(connection, { path: ALLOWED_PATH })).status).toBe(200);

    const after = await scrape();
    const gh = { provider: "gh" };
    expect(changes(movingSeries(before.families), movingSeries(after.families))).toEqual({
      [key("capvault_proxy_calls_total", { ...gh, decision: "allow", reason: "none" })]: 2,
      [key("capvault_proxy_calls_total", { ...gh, decision: "deny", reason: denyReason })]: 1,
      [key("capvault_proxy_call_duration_seconds_count", { ...gh, decision: "allow" })]: 2,
      [key("capvault_proxy_call_duration_seconds_count", { ...gh, decision: "deny" })]: 1,
      [key("capvault_proxy_authorization_duration_seconds_count")]: 3,
      // The allowed call and the retry after the refresh answered 200; the first try of the third call got the 401.
      [key("capvault_proxy_upstream_duration_seconds_count", { ...gh, outcome: "2xx" })]: 2,
      [key("capvault_proxy_upstream_duration_seconds_count", { ...gh, outcome: "4xx" })]: 1,
      [key("capvault_oauth_refreshes_total", { ...gh, outcome: "refreshed" })]: 1,
      // Three authorizations: the denied one and the first allowed one computed, the retry's twin maybe cached.
      ...decisionCacheChanges(before.families, after.families),
      // On the native runtime: each computed authorization ran inline or on a libuv thread, with the token kept.
      ...nativeChanges(before.families, after.families),
    });
    const cache = decisionCacheChanges(before.families, after.families);
    expect(Object.values(cache).reduce((a, b) => a + b, 0)).toBe(3);
    const computed = cache[key("capvault_decision_cache_misses_total")] ?? 0;
    const native = nativeChanges(before.families, after.families);
    if (seriesValue(after.families, "capvault_capability_runtime_native") === 1) {
      expect(computed).toBeGreaterThan(0);
      const placed = (native[key("capvault_native_authorizations_inline_total")] ?? 0) + (native[key("capvault_native_authorizations_offloaded_total")] ?? 0);
      expect(placed).toBe(computed);
      expect(native[key("capvault_native_token_cache_hits_total")]).toBe(computed);
    } else {
      expect(native).toEqual({});
    }
  });

  it("serves the gauges of the pool, the audit queue and the revocation view, and process metrics", async () => {
    const { families } = await scrape();
    expect(seriesValue(families, "capvault_capability_workers")).toBeGreaterThanOrEqual(1);
    expect(seriesValue(families, "capvault_capability_queue_depth")).toBe(0);
    expect(seriesValue(families, "capvault_audit_queue_depth")).toBeGreaterThanOrEqual(0);
    const age = seriesValue(families, "capvault_revocation_view_age_seconds")!;
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(2); // capabilities.maxRevocationStalenessMs
    expect(seriesValue(families, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(seriesValue(families, "process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("has no label value holding a path, a subject, a connection id or a token", async () => {
    const { families, text } = await scrape();
    const secrets = await t.secretsOf(connection);
    const forbidden = [ALLOWED_PATH, DENIED_PATH, "/repos/", SUBJECT, connection, agentToken, ...secrets.accessTokens, ...secrets.refreshTokens];
    const values = [...families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
    expect(values.length).toBeGreaterThan(10);
    for (const value of values) for (const f of forbidden) expect(value.includes(f), `label value ${value} holds ${f.slice(0, 12)}`).toBe(false);
    for (const f of forbidden) expect(text.includes(f)).toBe(false);
  });

  it("counts a repeated call answered from the decision cache (the same request within its second)", async () => {
    const hits = (families: Map<string, MetricFamily>) => seriesValue(families, "capvault_decision_cache_hits_total") ?? 0;
    const before = await scrape();
    // Five calls well within two seconds: at most one second boundary falls between them, so at least three of the
    // four repeats find their second's decision.
    for (let i = 0; i < 5; i++) expect((await agent.fetch(connection, { path: `${ALLOWED_PATH}/repeated` })).status).toBe(200);
    const after = await scrape();
    expect(hits(after.families) - hits(before.families)).toBeGreaterThanOrEqual(3);
  });

  it("serves only GET /metrics", async () => {
    const url = new URL(t.broker.metricsUrl!);
    expect((await fetch(new URL("/", url))).status).toBe(404);
    expect((await fetch(url, { method: "POST" })).status).toBe(405);
  });
});

function nativeChanges(before: Map<string, MetricFamily>, after: Map<string, MetricFamily>): Record<string, number> {
  const out: Record<string, number> = {};
  const names = ["inline", "offloaded"].map((p) => `capvault_native_authorizations_${p}_total`);
  names.push("capvault_native_authorization_failures_total", "capvault_native_token_cache_hits_total", "capvault_native_token_cache_misses_total");
  for (const name of names) {
    const delta = (seriesValue(after, name) ?? 0) - (seriesValue(before, name) ?? 0);
    if (delta !== 0) out[key(name)] = delta;
  }
  return out;
}

function decisionCacheChanges(before: Map<string, MetricFamily>, after: Map<string, MetricFamily>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of ["capvault_decision_cache_hits_total", "capvault_decision_cache_misses_total"]) {
    const delta = (seriesValue(after, name) ?? 0) - (seriesValue(before, name) ?? 0);
    if (delta !== 0) out[key(name)] = delta;
  }
  return out;
}

describe("the exposition parser these tests read with", () => {
  it("refuses what Prometheus would refuse", () => {
    const ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n";
    expect(seriesValue(parsePrometheusText(ok), "a_total", { x: "1" })).toBe(3);
    expect(() => parsePrometheusText("b 1\n")).toThrow(/undeclared family/);
    expect(() => parsePrometheusText("# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n")).toThrow(/duplicate label/);
    expect(() => parsePrometheusText("# TYPE a counter\na{x=\"un\\qescaped\"} 1\n")).toThrow(/bad escape/);
    expect(() => parsePrometheusText("# TYPE a counter\na 1\na 2\n")).toThrow(/duplicate series/);
    expect(() => parsePrometheusText("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\nh_sum 1\n")).toThrow(/\+Inf bucket/);
    expect(() => parsePrometheusText("# TYPE a gauge\na one\n")).toThrow(/bad value/);
  });
});
