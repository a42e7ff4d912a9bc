import { randomBytes } from "node:crypto";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProxyServiceClient, type ProxyRequest, type ProxyResponse } from "../../src/gen/capvault/v1/proxy.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * Traces of a whole broker, exported to the OpenTelemetry SDK's in-memory exporter: a Proxy call carrying a W3C
 * `traceparent` continues that trace with one server span and its authorization, credential and upstream children;
 * a refreshed call adds the refresh; a denied call ends at authorization. No attribute holds a token, the query value
 * or the body. With log.access on, each RPC also writes one access line carrying the same trace id.
 */

const exporter = new InMemorySpanExporter();
const QUERY_VALUE = "query-value-that-must-not-be-traced";
const BODY = "body-text-that-must-not-be-traced";
const rejected = new Set<string>();
let t: TestBroker;
let connection: string;
let agentToken: string;
let proxy: InstanceType<typeof ProxyServiceClient>;

beforeAll(async () => {
  t = await startTestBroker({ memory: true, exposeSecrets: true, config: { "log.access": true }, brokerOptions: { spanExporter: exporter } });
  t.upstream.handler = (req, res) => {
    const token = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
    if (rejected.has(token)) {
      res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"' }).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  };
  connection = await t.connectAccount("alice");
  agentToken = (await t.mint([{ connection, method: "POST", pathPrefix: "/repos/" }])).token;
  proxy = new ProxyServiceClient(t.address, credentials.createInsecure());
});
afterAll(async () => {
  proxy?.close();
  await t?.close();
});

function call(path: string, traceId: string): Promise<ProxyResponse> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${agentToken}`);
  md.set("traceparent", `00-${traceId}-${randomBytes(8).toString("hex")}-01`);
  const request: ProxyRequest = {
    request: { connection, method: "POST", path, query: [{ name: "q", value: QUERY_VALUE }], headers: [], body: Buffer.from(BODY) },
  } as ProxyRequest;
  return new Promise((ok, no) => proxy.proxy(request, md, (e: ServiceError | null, r?: ProxyResponse) => (e ? no(e) : ok(r!))));
}

/** The spans of one trace, as `name` under `parent name` lines, once the server span has ended. */
async function spansOf(traceId: string): Promise<ReadableSpan[]> {
  for (let i = 0; i < 100; i++) {
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    if (spans.some((s) => s.name === "Proxy")) return spans;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no Proxy span for trace ${traceId}`);
}

function tree(spans: ReadableSpan[]): string[] {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  return spans
    .map((s) => `${byId.get(s.parentSpanContext?.spanId ?? "")?.name ?? "(remote)"} > ${s.name}`)
    .sort();
}

describe("tracing", () => {
  it("continues the caller's trace: a Proxy span with authorize, credential.resolve and upstream children", async () => {
    expect(t.broker.metricsUrl).toBeUndefined(); // metrics are off unless metrics.addr is set
    const traceId = randomBytes(16).toString("hex");
    expect((await call("/repos/x", traceId)).status).toBe(200);
    const spans = await spansOf(traceId);
    expect(tree(spans)).toEqual(["(remote) > Proxy", "Proxy > authorize", "Proxy > credential.resolve", "Proxy > upstream"]);
    const server = spans.find((s) => s.name === "Proxy")!;
    expect(server.parentSpanContext?.isRemote).toBe(true);
    expect(server.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.method": "Proxy" });
    expect(spans.find((s) => s.name === "upstream")!.attributes).toMatchObject({ "capvault.provider": "gh", "http.response.status_code": 200 });
    expect(spans.find((s) => s.name === "authorize")!.attributes).toMatchObject({ "capvault.decision": "allow" });
  });

  it("shows the refresh after a 401 and both upstream calls", async () => {
    rejected.add(await t.accessTokenOf(connection));
    const traceId = randomBytes(16).toString("hex");
    expect((await call("/repos/y", traceId)).status).toBe(200);
    expect(tree(await spansOf(traceId))).toEqual([
      "(remote) > Proxy",
      "Proxy > authorize",
      "Proxy > credential.refresh",
      "Proxy > credential.resolve",
      "Proxy > upstream",
      "Proxy > upstream",
    ]);
  });

  it("a denied call ends at authorization, with the reason and an error status", async () => {
    const traceId = randomBytes(16).toString("hex");
    const denied = await call("/admin", traceId).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(denied?.code).toBe(status.PERMISSION_DENIED);
    const spans = await spansOf(traceId);
    expect(tree(spans)).toEqual(["(remote) > Proxy", "Proxy > authorize"]);
    const server = spans.find((s) => s.name === "Proxy")!;
    expect(server.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(server.attributes["capvault.reason"]).toBe(spans.find((s) => s.name === "authorize")!.attributes["capvault.reason"]);
  });

  it("puts no token, query value or body into any span", async () => {
    const secrets = await t.secretsOf(connection);
    const forbidden = [agentToken, QUERY_VALUE, BODY, ...secrets.accessTokens, ...secrets.refreshTokens];
    const spans = exporter.getFinishedSpans();
    expect(spans.length).toBeGreaterThan(8);
    const text = JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status })));
    for (const f of forbidden) expect(text.includes(f)).toBe(false);
  });
});

describe("the access log (log.access)", () => {
  it("writes one line per RPC with who, what, the decision, the upstream status, the latency and the trace id", async () => {
    const traceId = randomBytes(16).toString("hex");
    await call("/repos/z", traceId);
    const denyTrace = randomBytes(16).toString("hex");
    await call("/admin", denyTrace).catch(() => undefined);
    const lines = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.log === "access");
    const allowed = lines.filter((l) => l.traceId === traceId);
    expect(allowed).toHaveLength(1);
    expect(allowed[0]).toMatchObject({ msg: "rpc", method: "Proxy", tenant: t.tenant, subject: "agent-1", connection, decision: "allow", upstreamStatus: 200 });
    expect(allowed[0].latencyMs).toBeGreaterThan(0);
    const denied = lines.filter((l) => l.traceId === denyTrace);
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ method: "Proxy", decision: "deny", connection, subject: "agent-1" });
    expect(denied[0].reason).toMatch(/^[A-Z_]+$/);
    // Other RPCs are logged too (the Mint of this file's agent capability).
    expect(lines.some((l) => l.method === "Mint" && l.decision === "ok")).toBe(true);
    const secrets = await t.secretsOf(connection);
    const text = JSON.stringify(lines);
    for (const f of [agentToken, QUERY_VALUE, BODY, ...secrets.accessTokens, ...secrets.refreshTokens]) expect(text.includes(f)).toBe(false);
  });
});
