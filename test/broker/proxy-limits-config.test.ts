import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, type CapvaultClient } from "../../src/client/index.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * The Proxy's size caps come from the configuration (`proxy.*`, or CAPVAULT_PROXY_* variables): a broker started with
 * small caps refuses a unary body, a streamed upload and an upstream response past them, with the usual reasons.
 */

const KiB = 1024;
let t: TestBroker;
let connection: string;
let agent: CapvaultClient;

function expectClientError(err: unknown, code: status, reason: string): void {
  expect(err).toBeInstanceOf(CapvaultClientError);
  expect({ code: (err as CapvaultClientError).code, reason: (err as CapvaultClientError).reason }).toEqual({ code, reason });
}

async function* chunks(total: number): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < total; sent += 16 * KiB) yield Buffer.alloc(Math.min(16 * KiB, total - sent), 0x61);
}

beforeAll(async () => {
  t = await startTestBroker({
    memory: true,
    config: { "proxy.maxBodyBytes": 4 * KiB, "proxy.maxStreamBodyBytes": 64 * KiB, "proxy.maxResponseBytes": 32 * KiB },
  });
  t.upstream.handler = (req, res, body) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    const bytes = Number(url.searchParams.get("bytes") ?? "0");
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(bytes ? Buffer.alloc(bytes, 0x62) : JSON.stringify({ received: body.length }));
  };
  connection = await t.connectAccount("alice");
  const minted = await t.mint(["GET", "POST", "PUT"].map((method) => ({ connection, method, pathPrefix: "/" })), 600);
  agent = t.client(minted.token);
});

afterAll(async () => {
  agent?.close();
  await t?.close();
});

describe("Proxy caps from the configuration", () => {
  it("a unary body under proxy.maxBodyBytes goes through; one over it is refused before the upstream sees it", async () => {
    const ok = await agent.fetch(connection, { method: "POST", path: "/upload", body: Buffer.alloc(3 * KiB, 0x61) });
    expect(ok.status).toBe(200);
    const requests = t.upstream.requests.length;
    const err = await agent.fetch(connection, { method: "POST", path: "/upload", body: Buffer.alloc(5 * KiB, 0x61) }).catch((e: unknown) => e);
    expectClientError(err, status.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE");
    expect(t.upstream.requests.length).toBe(requests);
  });

  it("a streamed upload past proxy.maxStreamBodyBytes fails with BODY_TOO_LARGE; one under it arrives whole", async () => {
    const ok = await agent.stream(connection, { method: "PUT", path: "/upload" }, chunks(48 * KiB));
    expect(ok.status).toBe(200);
    let body = "";
    for await (const c of ok.body) body += c.toString();
    expect(JSON.parse(body)).toEqual({ received: 48 * KiB });
    const err = await agent.stream(connection, { method: "PUT", path: "/upload" }, chunks(96 * KiB)).catch((e: unknown) => e);
    expectClientError(err, status.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE");
  });

  it("an upstream response past proxy.maxResponseBytes fails with RESPONSE_TOO_LARGE; one under it is returned", async () => {
    expect((await agent.fetch(connection, { path: "/download", query: { bytes: 16 * KiB } })).body.length).toBe(16 * KiB);
    const err = await agent.fetch(connection, { path: "/download", query: { bytes: 40 * KiB } }).catch((e: unknown) => e);
    expectClientError(err, status.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE");
  });
});

describe("proxy.* configuration", () => {
  it("is read from CAPVAULT_PROXY_* variables, with the defaults otherwise", () => {
    const defaults = loadConfig({ env: {}, overrides: { dev: true } }).proxy;
    expect(defaults).toEqual({ maxBodyBytes: 8 * 1024 * KiB, maxStreamBodyBytes: 64 * 1024 * KiB, maxResponseBytes: 16 * 1024 * KiB, upstreamTimeoutMs: 30_000 });
    const fromEnv = loadConfig({
      env: {
        CAPVAULT_PROXY_MAX_BODY_BYTES: "1024",
        CAPVAULT_PROXY_MAX_STREAM_BODY_BYTES: "2048",
        CAPVAULT_PROXY_MAX_RESPONSE_BYTES: "4096",
        CAPVAULT_PROXY_UPSTREAM_TIMEOUT_MS: "5000",
      },
      overrides: { dev: true },
    }).proxy;
    expect(fromEnv).toEqual({ maxBodyBytes: 1024, maxStreamBodyBytes: 2048, maxResponseBytes: 4096, upstreamTimeoutMs: 5000 });
  });

  it("refuses a bad value, naming the field and its variable", () => {
    let err: unknown;
    try {
      loadConfig({ env: { CAPVAULT_PROXY_MAX_RESPONSE_BYTES: "-1" }, overrides: { dev: true } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(String((err as Error).message)).toContain("proxy.maxResponseBytes (CAPVAULT_PROXY_MAX_RESPONSE_BYTES)");
  });
});
