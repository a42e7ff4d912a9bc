import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, type CapvaultClient, type StreamResponse } from "../../src/client/index.js";
import { DEFAULT_UPSTREAM_LIMITS } from "../../src/proxy/upstream-call.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * ProxyStream through the client's `stream` helper against a whole broker: a streamed upload and download of a few MiB,
 * the size caps (BODY_TOO_LARGE, RESPONSE_TOO_LARGE), and that a deadline or a cancellation aborts the upstream
 * request (the upstream sees its socket close).
 */

const MiB = 1024 * 1024;
let t: TestBroker;
let connection: string;
let agent: CapvaultClient;
/** Responses the upstream is holding open, so a test can check what happens to them. */
const held: ServerResponse[] = [];

/** Deterministic bytes: block i of 64 KiB is sha256(seed:i) repeated. */
function* pattern(total: number, seed = "x"): Generator<Buffer> {
  for (let offset = 0, i = 0; offset < total; offset += 64 * 1024, i++) {
    const block = Buffer.alloc(Math.min(64 * 1024, total - offset), createHash("sha256").update(`${seed}:${i}`).digest());
    yield block;
  }
}
const sha256Of = (chunks: Iterable<Buffer>) => {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
};

async function collect(res: StreamResponse): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c);
  return Buffer.concat(chunks);
}

function expectClientError(err: unknown, code: status, reason: string): void {
  expect(err).toBeInstanceOf(CapvaultClientError);
  expect({ code: (err as CapvaultClientError).code, reason: (err as CapvaultClientError).reason }).toEqual({ code, reason });
}

beforeAll(async () => {
  t = await startTestBroker();
  t.upstream.handler = (req, res, body) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    switch (url.pathname) {
      case "/upload":
        res.writeHead(201, { "content-type": "application/json" });
        res.end(JSON.stringify({ bytes: body.length, sha256: createHash("sha256").update(body).digest("hex"), contentType: req.headers["content-type"] }));
        return;
      case "/download": {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        const chunks = [...pattern(Number(url.searchParams.get("bytes")), "download")];
        const write = () => {
          while (chunks.length) if (!res.write(chunks.shift())) return void res.once("drain", write);
          res.end();
        };
        write();
        return;
      }
      case "/declared-huge":
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(DEFAULT_UPSTREAM_LIMITS.maxResponseBytes + 1) });
        res.write(Buffer.alloc(1024));
        held.push(res);
        return;
      case "/slow":
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first chunk;");
        held.push(res);
        return;
      case "/hang":
        held.push(res);
        return;
      default:
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ method: req.method, url: req.url, bytes: body.length }));
    }
  };
  connection = await t.connectAccount("alice");
  agent = t.client(
    (
      await t.mint([
        { connection, method: "GET", pathPrefix: "/" },
        { connection, method: "PUT", pathPrefix: "/upload" },
      ])
    ).token,
  );
});
afterAll(async () => {
  for (const r of held) r.destroy();
  await t?.close();
});

describe("ProxyStream through cv.stream()", () => {
  it("uploads a few MiB as a stream and the upstream receives every byte", async () => {
    const size = 5 * MiB + 12345;
    const res = await agent.stream(connection, { method: "PUT", path: "/upload", headers: { "content-type": "application/octet-stream" } }, pattern(size, "up"));
    expect(res.status).toBe(201);
    expect(res.headers["content-type"]).toBe("application/json");
    const echoed = JSON.parse((await collect(res)).toString());
    expect(echoed).toEqual({ bytes: size, sha256: sha256Of(pattern(size, "up")), contentType: "application/octet-stream" });
    const seen = t.upstream.requests.at(-1)!;
    expect(seen.method).toBe("PUT");
    expect(t.upstream.headerValues(t.upstream.requests.length - 1, "authorization")).toEqual([`Bearer ${await t.accessTokenOf(connection)}`]);
  });

  it("downloads a few MiB as a stream, in many chunks", async () => {
    const size = 6 * MiB + 7;
    const res = await agent.stream(connection, { path: "/download", query: { bytes: size } });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/octet-stream");
    let chunks = 0;
    const hash = createHash("sha256");
    let total = 0;
    for await (const c of res.body) {
      chunks++;
      total += c.length;
      hash.update(c);
    }
    expect(total).toBe(size);
    expect(hash.digest("hex")).toBe(sha256Of(pattern(size, "download")));
    expect(chunks).toBeGreaterThan(10);
  });

  it("a stream the capability does not allow is refused before any byte goes upstream", async () => {
    const before = t.upstream.connections;
    const err = await agent.stream(connection, { method: "POST", path: "/upload" }, pattern(MiB, "denied")).catch((e: unknown) => e);
    expectClientError(err, status.PERMISSION_DENIED, "NO_MATCHING_GRANT");
    expect(t.upstream.connections).toBe(before);
  });

  it("the fences apply to the stream head too", async () => {
    const err = await agent.stream(connection, { path: "//evil.example/x" }).catch((e: unknown) => e);
    expectClientError(err, status.INVALID_ARGUMENT, "PATH_INVALID");
  });
});

describe("ProxyStream size caps", () => {
  it(`an upload past ${DEFAULT_UPSTREAM_LIMITS.maxStreamRequestBytes / MiB} MiB fails with RESOURCE_EXHAUSTED BODY_TOO_LARGE`, async () => {
    const requests = t.upstream.requests.length;
    const closed = t.upstream.nextSocketClose();
    const err = await agent
      .stream(connection, { method: "PUT", path: "/upload" }, pattern(DEFAULT_UPSTREAM_LIMITS.maxStreamRequestBytes + 64 * 1024, "big"))
      .catch((e: unknown) => e);
    expectClientError(err, status.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE");
    await closed; // the broker dropped the half-sent upstream request
    expect(t.upstream.requests.length).toBe(requests); // the upstream never saw a complete request
  }, 60_000);

  it("a download past the response cap fails with RESOURCE_EXHAUSTED RESPONSE_TOO_LARGE after the head", async () => {
    const size = DEFAULT_UPSTREAM_LIMITS.maxResponseBytes + 64 * 1024;
    const res = await agent.stream(connection, { path: "/download", query: { bytes: size } });
    expect(res.status).toBe(200);
    let received = 0;
    const err = await (async () => {
      for await (const c of res.body) received += c.length;
    })().catch((e: unknown) => e);
    expectClientError(err, status.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE");
    expect(received).toBeLessThanOrEqual(DEFAULT_UPSTREAM_LIMITS.maxResponseBytes);
  }, 60_000);

  it("a response that announces more than the cap is refused before the head, and its connection dropped", async () => {
    const closed = t.upstream.nextSocketClose();
    const err = await agent.stream(connection, { path: "/declared-huge" }).catch((e: unknown) => e);
    expectClientError(err, status.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE");
    await closed;
  });
});

describe("ProxyStream deadline and cancellation reach the upstream", () => {
  it("a deadline that passes before the upstream answers aborts the upstream request", async () => {
    const closed = t.upstream.nextSocketClose();
    const started = Date.now();
    const err = await agent.stream(connection, { path: "/hang", timeoutMs: 800 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapvaultClientError);
    expect((err as CapvaultClientError).code).toBe(status.DEADLINE_EXCEEDED);
    await closed;
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a unary Proxy call whose deadline passes before the upstream answers aborts the upstream request too", async () => {
    const closed = t.upstream.nextSocketClose();
    const started = Date.now();
    const err = await agent.fetch(connection, { path: "/hang", timeoutMs: 800 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapvaultClientError);
    expect((err as CapvaultClientError).code).toBe(status.DEADLINE_EXCEEDED);
    await closed;
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a deadline that passes while the body streams aborts the upstream request", async () => {
    const closed = t.upstream.nextSocketClose();
    const res = await agent.stream(connection, { path: "/slow", timeoutMs: 1000 });
    expect(res.status).toBe(200);
    const chunks: string[] = [];
    const err = await (async () => {
      for await (const c of res.body) chunks.push(c.toString());
    })().catch((e: unknown) => e);
    expect(chunks).toEqual(["first chunk;"]);
    expect((err as CapvaultClientError).code).toBe(status.DEADLINE_EXCEEDED);
    await closed;
  });

  it("breaking out of the body cancels the call and the upstream sees its socket close", async () => {
    const closed = t.upstream.nextSocketClose();
    const res = await agent.stream(connection, { path: "/slow" });
    for await (const c of res.body) {
      expect(c.toString()).toBe("first chunk;");
      break;
    }
    await closed;
  });

  it("an upload whose source fails is cancelled: the caller gets its own error and the upstream sees its socket close", async () => {
    const closed = t.upstream.nextSocketClose();
    async function* failing(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(64 * 1024, i);
      await new Promise((r) => setTimeout(r, 50));
      throw new Error("the disk went away");
    }
    const err = await agent.stream(connection, { method: "PUT", path: "/upload" }, failing()).catch((e: unknown) => e);
    expect((err as Error).message).toBe("the disk went away");
    await closed;
  });

  it("an AbortSignal cancels an upload in flight and the upstream sees its socket close", async () => {
    const controller = new AbortController();
    const connections = t.upstream.connections;
    const closed = t.upstream.nextSocketClose();
    async function* endless(): AsyncGenerator<Buffer> {
      for (let i = 0; ; i++) {
        yield Buffer.alloc(64 * 1024, i);
        if (i === 20) setTimeout(() => controller.abort(), 50);
        if (i > 20) await new Promise((r) => setTimeout(r, 20));
      }
    }
    const err = await agent.stream(connection, { method: "PUT", path: "/upload", signal: controller.signal }, endless()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapvaultClientError);
    expect((err as CapvaultClientError).code).toBe(status.CANCELLED);
    expect(t.upstream.connections).toBeGreaterThan(connections - 1);
    await closed;
  });
});
