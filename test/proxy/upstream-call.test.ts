import { inspect } from "node:util";
import type { Agent } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapvaultError, type Reason } from "../../src/errors/capvault-error.js";
import type { HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { canonicalizeRequest } from "../../src/proxy/canonical-request.js";
import { callUpstream, callUpstreamStreaming, type UpstreamCall, type UpstreamResponse } from "../../src/proxy/upstream-call.js";
import type { UpstreamTarget } from "../../src/proxy/upstream-target.js";
import { guardedDispatcher, type RecordingUpstream, startRecordingUpstream, tableLookup, TEST_CA, UNRELATED_CA } from "./recording-upstream.js";

const TOKEN = "gho_S3CRET_upstream_token_0123456789";

let api: RecordingUpstream;
let other: RecordingUpstream;
let lookup: ReturnType<typeof tableLookup>;
let loopbackOk: Agent; // tests only: lets the loopback test upstreams through the fence
let fenced: Agent; // the production setting: fence on
let target: UpstreamTarget;

const defaultHandler: RecordingUpstream["handler"] = (req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ ok: true, url: req.url }));
};

beforeAll(async () => {
  api = await startRecordingUpstream("127.0.0.1");
  other = await startRecordingUpstream("127.0.0.1");
  lookup = tableLookup({
    "api.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "private.test": ["127.0.0.1"],
    "rfc1918.test": ["192.168.0.10"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:127.0.0.1"],
  });
  loopbackOk = guardedDispatcher({ lookup, allowPrivateAddresses: true, ca: TEST_CA });
  fenced = guardedDispatcher({ lookup, ca: TEST_CA });
  target = {
    baseUrl: `https://api.test:${api.port}`,
    allowedHosts: ["api.test"],
    credentialHeader: { name: "authorization", scheme: "Bearer" },
    allowPrivateAddresses: true,
    ca: TEST_CA,
  };
});
afterAll(async () => {
  await Promise.all([loopbackOk.destroy(), fenced.destroy()]);
  await Promise.all([api.close(), other.close()]);
});
beforeEach(() => {
  api.requests.length = 0;
  other.requests.length = 0;
  api.handler = defaultHandler;
  lookup.calls.length = 0;
});

function httpRequest(over: Partial<HttpRequest> = {}): HttpRequest {
  return { connection: "conn_1", method: "GET", path: "/user", query: [], headers: [], body: Buffer.alloc(0), ...over };
}

/** What the Proxy RPC does for the "where to" half: canonicalize, then call the upstream built from it. */
function proxy(req: HttpRequest, over: Partial<UpstreamCall> = {}): Promise<UpstreamResponse> {
  return (async () =>
    callUpstream({ target, request: canonicalizeRequest(req), credential: TOKEN, dispatcher: loopbackOk, ...over }))();
}

async function refusedWith(reason: Reason, p: Promise<unknown>): Promise<CapvaultError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${reason}`).toBeInstanceOf(CapvaultError);
  expect((err as CapvaultError).reason).toBe(reason);
  assertNoSecret(err);
  return err as CapvaultError;
}

function assertNoSecret(value: unknown): void {
  const seen = inspect(value, { depth: Infinity, showHidden: true }) + JSON.stringify(value) + String((value as Error)?.cause);
  expect(seen).not.toContain(TOKEN);
}

/** Run `fn`, which must be refused before ANY socket opens to either loopback listener. */
async function refusedBeforeAnySocket(reason: Reason, fn: () => Promise<unknown>): Promise<CapvaultError> {
  const before = [api.connections, other.connections];
  const err = await refusedWith(reason, fn());
  expect([api.connections, other.connections]).toEqual(before);
  expect(api.requests).toHaveLength(0);
  return err;
}

const header = (r: UpstreamResponse, name: string) => r.headers.filter((h) => h.name === name).map((h) => h.value);

describe("callUpstream: the request the upstream sees", () => {
  it("is built from the canonical request, with exactly one broker-set Authorization", async () => {
    const res = await proxy(httpRequest({ method: "get", path: "/repos/acme//widgets/./issues", query: [{ name: "state", value: "open all" }] }));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ ok: true, url: "/repos/acme/widgets/issues?state=open%20all" });
    expect(api.requests[0].method).toBe("GET");
    expect(api.headerValues(0, "authorization")).toEqual([`Bearer ${TOKEN}`]);
    expect(api.headerValues(0, "host")).toEqual([`api.test:${api.port}`]);
  });

  it("keeps a single Authorization even when the agent sends its own (any case) and Proxy-Authorization", async () => {
    await proxy(
      httpRequest({
        headers: [
          { name: "Authorization", value: "Bearer agent-token" },
          { name: "authorization", value: "Basic YWdlbnQ6cHc=" },
          { name: "AUTHORIZATION", value: "Token x" },
          { name: "Proxy-Authorization", value: "Basic cHJveHk=" },
          { name: "Cookie", value: "session=agent" },
          { name: "Host", value: "evil.test" },
          { name: "X-HTTP-Method-Override", value: "DELETE" },
          { name: "X-Forwarded-Host", value: "evil.test" },
          { name: "Accept", value: "application/json" },
        ],
      }),
    );
    const raw = api.requests[0].rawHeaders;
    const names = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => n === "authorization")).toHaveLength(1);
    expect(api.headerValues(0, "authorization")).toEqual([`Bearer ${TOKEN}`]);
    expect(api.headerValues(0, "host")).toEqual([`api.test:${api.port}`]);
    for (const gone of ["proxy-authorization", "cookie", "x-http-method-override", "x-forwarded-host"]) expect(names).not.toContain(gone);
    expect(api.headerValues(0, "accept")).toEqual(["application/json"]);
  });

  it("with an API-key provider, sends exactly one key header and no Authorization at all", async () => {
    const keyTarget: UpstreamTarget = { ...target, credentialHeader: { name: "X-Api-Key" } };
    await proxy(
      httpRequest({
        headers: [
          { name: "x-api-key", value: "agent-key" },
          { name: "X-API-KEY", value: "agent-key-2" },
          { name: "Authorization", value: "Bearer agent" },
        ],
      }),
      { target: keyTarget },
    );
    expect(api.headerValues(0, "x-api-key")).toEqual([TOKEN]);
    expect(api.headerValues(0, "authorization")).toEqual([]);
  });

  it("adds the target's default headers unless the agent sent that header", async () => {
    const t: UpstreamTarget = { ...target, defaultHeaders: { "X-GitHub-Api-Version": "2022-11-28", Accept: "application/vnd.github+json" } };
    await proxy(httpRequest({ headers: [{ name: "Accept", value: "text/plain" }] }), { target: t });
    expect(api.headerValues(0, "x-github-api-version")).toEqual(["2022-11-28"]);
    expect(api.headerValues(0, "accept")).toEqual(["text/plain"]);
  });

  it("forwards a body with the client's own framing (the agent's Content-Length is ignored)", async () => {
    const body = JSON.stringify({ title: "hi", n: 1 });
    await proxy(
      httpRequest({
        method: "POST",
        path: "/repos/acme/widgets/issues",
        headers: [
          { name: "Content-Type", value: "application/json" },
          { name: "Content-Length", value: "9999" },
        ],
        body: Buffer.from(body),
      }),
    );
    expect(api.requests[0].body.toString()).toBe(body);
    expect(api.headerValues(0, "content-length")).toEqual([String(Buffer.byteLength(body))]);
    expect(api.headerValues(0, "content-type")).toEqual(["application/json"]);
  });

  it("strips hop-by-hop request headers, including the names Connection lists", async () => {
    await proxy(
      httpRequest({
        headers: [
          { name: "Connection", value: "X-Secret-Hop, keep-alive" },
          { name: "X-Secret-Hop", value: "1" },
          { name: "Keep-Alive", value: "timeout=999" },
          { name: "TE", value: "trailers" },
          { name: "Trailer", value: "X-T" },
          { name: "Upgrade", value: "websocket" },
          { name: "Transfer-Encoding", value: "chunked" },
          { name: "Proxy-Connection", value: "keep-alive" },
          { name: "Proxy-Foo", value: "1" },
          { name: "X-Kept", value: "yes" },
        ],
      }),
    );
    const names = api.requests[0].rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const gone of ["x-secret-hop", "keep-alive", "te", "trailer", "upgrade", "transfer-encoding", "proxy-connection", "proxy-foo"]) {
      expect(names).not.toContain(gone);
    }
    expect(api.headerValues(0, "connection")).not.toContain("X-Secret-Hop, keep-alive");
    expect(api.headerValues(0, "x-kept")).toEqual(["yes"]);
  });
});

describe("callUpstream: SSRF, refused before any socket to a forbidden address opens", () => {
  it("refuses a host that is not the provider's", async () => {
    const t: UpstreamTarget = { ...target, baseUrl: `https://other.test:${other.port}` };
    await refusedBeforeAnySocket("UPSTREAM_HOST_FORBIDDEN", () => proxy(httpRequest(), { target: t }));
  });

  it.each([
    ["userinfo", (p: number) => `https://user:pw@api.test:${p}`],
    ["a host smuggled after userinfo", (p: number) => `https://api.test:${p}@other.test:${p}`],
    ["http", (p: number) => `http://api.test:${p}`],
  ])("refuses a base URL with %s", async (_label, base) => {
    const t: UpstreamTarget = { ...target, baseUrl: base(api.port), allowedHosts: ["api.test"] };
    await refusedBeforeAnySocket("UPSTREAM_HOST_FORBIDDEN", () => proxy(httpRequest(), { target: t }));
  });

  it.each(["2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.1", "127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"])(
    "refuses the IP literal host %s without resolving it",
    async (host) => {
      const t: UpstreamTarget = { ...target, baseUrl: `https://${host}:${api.port}`, allowedHosts: [host, "127.0.0.1", "[::ffff:7f00:1]"] };
      await refusedBeforeAnySocket("UPSTREAM_HOST_FORBIDDEN", () => proxy(httpRequest(), { target: t, dispatcher: fenced }));
      expect(lookup.calls).toEqual([]);
    },
  );

  it.each([
    ["loopback", "private.test"],
    ["RFC 1918", "rfc1918.test"],
    ["cloud metadata 169.254.169.254", "metadata.test"],
    ["v4-mapped loopback", "mapped.test"],
  ])("refuses a provider name that resolves to %s", async (_label, host) => {
    const t: UpstreamTarget = { ...target, baseUrl: `https://${host}:${api.port}`, allowedHosts: [host], allowPrivateAddresses: false };
    await refusedBeforeAnySocket("UPSTREAM_ADDRESS_FORBIDDEN", () => proxy(httpRequest(), { target: t, dispatcher: fenced }));
    expect(lookup.calls).toEqual([host]);
  });

  it.each([
    "http://other.test/x",
    `https://api.test/x`,
    "api.test:443",
    "//evil.com/x",
    "/%2e%2e/",
    "/%2e%2e/etc/passwd",
    "/a/%2E%2E/%2e%2e/b",
    "/a%2fb",
    "/a%2F..%2F..%2Fadmin",
    "/a\\..\\admin",
    "/a/..;/admin",
    "/x\r\nHost: other.test",
  ])("refuses the path %j", async (path) => {
    await refusedBeforeAnySocket("PATH_INVALID", () => proxy(httpRequest({ path })));
  });

  it.each([
    { name: "X-Note", value: "a\r\nAuthorization: Bearer stolen" },
    { name: "X-Note", value: "a\nHost: other.test" },
    { name: "X-Note", value: "a\rb" },
    { name: "X-Note", value: "a\u0000b" },
    { name: "X-Note\r\nX-Injected", value: "1" },
  ])("refuses the header %j", async (h) => {
    await refusedBeforeAnySocket("HEADER_INVALID", () => proxy(httpRequest({ headers: [h] })));
  });

  it("refuses a CR/LF in a query parameter", async () => {
    await refusedBeforeAnySocket("QUERY_INVALID", () => proxy(httpRequest({ query: [{ name: "q", value: "x\r\nHost: other.test" }] })));
  });

  it("refuses TRACE, which would echo the credential back", async () => {
    await refusedBeforeAnySocket("METHOD_INVALID", () => proxy(httpRequest({ method: "TRACE" })));
  });
});

describe("callUpstream: redirects are returned, never followed", () => {
  it.each([301, 302, 303, 307, 308])("returns a %i to another origin as is; that origin sees no connection", async (status) => {
    api.handler = (_req, res) => {
      res.writeHead(status, { location: `https://other.test:${other.port}/steal`, "set-cookie": "a=1" });
      res.end();
    };
    const before = other.connections;
    const res = await proxy(httpRequest({ method: status === 307 ? "POST" : "GET", body: Buffer.from("x") }));
    expect(res.status).toBe(status);
    expect(header(res, "location")).toEqual([`https://other.test:${other.port}/steal`]);
    expect(header(res, "set-cookie")).toEqual([]);
    expect(other.connections).toBe(before);
    expect(api.requests).toHaveLength(1);
  });

  it("does not follow a same-origin redirect either", async () => {
    api.handler = (req, res) => {
      res.writeHead(302, { location: "/elsewhere" });
      res.end();
    };
    const res = await proxy(httpRequest());
    expect(res.status).toBe(302);
    expect(api.requests.map((r) => r.url)).toEqual(["/user"]);
  });
});

describe("callUpstream: response headers and size", () => {
  it("returns only allowlisted headers, never Set-Cookie, and strips hop-by-hop ones", async () => {
    api.handler = (_req, res) => {
      res.setHeader("Content-Type", "application/json");
      res.setHeader("Set-Cookie", ["session=upstream; HttpOnly", "b=2"]);
      res.setHeader("ETag", '"v1"');
      res.setHeader("X-RateLimit-Remaining", "4999");
      res.setHeader("X-GitHub-Request-Id", "ABCD");
      res.setHeader("Server", "internal-nginx/1.2");
      res.setHeader("X-Internal-Trace", "t");
      res.setHeader("Connection", "keep-alive, X-Hop-Listed, Link");
      res.setHeader("X-Hop-Listed", "1");
      res.setHeader("Link", '<https://api.test/next>; rel="next"');
      res.setHeader("Keep-Alive", "timeout=5");
      res.setHeader("Proxy-Authenticate", "Basic");
      res.setHeader("Upgrade", "h2c");
      res.end("{}");
    };
    const res = await proxy(httpRequest());
    const names = res.headers.map((h) => h.name);
    expect(header(res, "content-type")).toEqual(["application/json"]);
    expect(header(res, "etag")).toEqual(['"v1"']);
    expect(header(res, "x-ratelimit-remaining")).toEqual(["4999"]);
    expect(header(res, "x-github-request-id")).toEqual(["ABCD"]);
    for (const gone of ["set-cookie", "server", "x-internal-trace", "connection", "x-hop-listed", "link", "keep-alive", "proxy-authenticate", "upgrade", "transfer-encoding"]) {
      expect(names).not.toContain(gone);
    }
  });

  it("refuses a declared-too-large response with RESPONSE_TOO_LARGE", async () => {
    api.handler = (_req, res) => {
      res.writeHead(200, { "content-length": "4096" });
      res.end(Buffer.alloc(4096));
    };
    await refusedWith("RESPONSE_TOO_LARGE", proxy(httpRequest(), { limits: { maxResponseBytes: 1024 } }));
  });

  it("does not apply the declared length of a HEAD response to the cap", async () => {
    api.handler = (_req, res) => {
      res.writeHead(200, { "content-length": "4096", "content-type": "text/plain" });
      res.end();
    };
    const res = await proxy(httpRequest({ method: "HEAD" }), { limits: { maxResponseBytes: 1024 } });
    expect(res.status).toBe(200);
    expect(header(res, "content-length")).toEqual(["4096"]);
    expect(res.body.length).toBe(0);
  });

  it("refuses a chunked response that grows past the cap, and drops the connection", async () => {
    api.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const timer = setInterval(() => res.write(Buffer.alloc(512)), 5);
      res.on("close", () => clearInterval(timer));
    };
    const closed = api.nextSocketClose();
    await refusedWith("RESPONSE_TOO_LARGE", proxy(httpRequest(), { limits: { maxResponseBytes: 2048 } }));
    await closed;
  });
});

describe("callUpstream: deadline and cancellation", () => {
  const hang: RecordingUpstream["handler"] = () => {};

  it("maps a slow upstream past the deadline to UPSTREAM_TIMEOUT and closes the upstream socket", async () => {
    api.handler = hang;
    const closed = api.nextSocketClose();
    const t0 = Date.now();
    await refusedWith("UPSTREAM_TIMEOUT", proxy(httpRequest(), { deadline: Date.now() + 200 }));
    expect(Date.now() - t0).toBeLessThan(2000);
    await closed;
  });

  it("applies the fallback timeout when there is no deadline", async () => {
    api.handler = hang;
    const closed = api.nextSocketClose();
    await refusedWith("UPSTREAM_TIMEOUT", proxy(httpRequest(), { limits: { timeoutMs: 150 } }));
    await closed;
  });

  it("bounds the body read too, not just the headers", async () => {
    api.handler = (_req, res) => {
      res.writeHead(200);
      res.write("partial");
    };
    const closed = api.nextSocketClose();
    await refusedWith("UPSTREAM_TIMEOUT", proxy(httpRequest(), { deadline: Date.now() + 200 }));
    await closed;
  });

  it("maps a caller cancellation to CANCELLED and closes the upstream socket", async () => {
    api.handler = hang;
    const closed = api.nextSocketClose();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await refusedWith("CANCELLED", proxy(httpRequest(), { signal: controller.signal }));
    await closed;
  });

  it("treats a caller's AbortSignal.timeout as UPSTREAM_TIMEOUT", async () => {
    api.handler = hang;
    await refusedWith("UPSTREAM_TIMEOUT", proxy(httpRequest(), { signal: AbortSignal.timeout(100) }));
  });

  it("does not connect at all when the deadline has already passed", async () => {
    await refusedBeforeAnySocket("UPSTREAM_TIMEOUT", () => proxy(httpRequest(), { deadline: Date.now() - 1 }));
  });

  it("with a signal that covers the deadline (a gRPC call's), that signal alone bounds the call, with its reason", async () => {
    api.handler = hang;
    const closed = api.nextSocketClose();
    const controller = new AbortController();
    setTimeout(() => controller.abort(new CapvaultError("DEADLINE_EXCEEDED")), 150);
    // The deadline named is far away: only the caller's signal can end this call.
    await refusedWith("DEADLINE_EXCEEDED", proxy(httpRequest(), { signal: controller.signal, signalCoversDeadline: true, deadline: Date.now() + 60_000 }));
    await closed;
  });

  it("with a signal that covers the deadline, a passed deadline or a cancelled caller still opens no socket", async () => {
    await refusedBeforeAnySocket("UPSTREAM_TIMEOUT", () =>
      proxy(httpRequest(), { signal: new AbortController().signal, signalCoversDeadline: true, deadline: Date.now() - 1 }),
    );
    const cancelled = new AbortController();
    cancelled.abort(new CapvaultError("CANCELLED"));
    await refusedBeforeAnySocket("CANCELLED", () => proxy(httpRequest(), { signal: cancelled.signal, signalCoversDeadline: true, deadline: Date.now() + 60_000 }));
  });
});

describe("callUpstream: failures never carry the credential", () => {
  it("maps a TLS failure (untrusted certificate) to UPSTREAM_UNREACHABLE", async () => {
    const wrongCa = guardedDispatcher({ lookup, allowPrivateAddresses: true, ca: UNRELATED_CA });
    try {
      const err = await refusedWith("UPSTREAM_UNREACHABLE", proxy(httpRequest(), { dispatcher: wrongCa }));
      expect(String(err.cause)).toMatch(/certificate/i);
      expect(api.requests).toHaveLength(0);
    } finally {
      await wrongCa.destroy();
    }
  });

  it("maps a connection reset mid-response to UPSTREAM_UNREACHABLE", async () => {
    api.handler = (req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setTimeout(() => req.socket.destroy(), 10);
    };
    await refusedWith("UPSTREAM_UNREACHABLE", proxy(httpRequest()));
  });

  it("maps a refused connection to UPSTREAM_UNREACHABLE", async () => {
    const closedPort = await startRecordingUpstream("127.0.0.1");
    const port = closedPort.port;
    await closedPort.close();
    const t: UpstreamTarget = { ...target, baseUrl: `https://api.test:${port}` };
    await refusedWith("UPSTREAM_UNREACHABLE", proxy(httpRequest(), { target: t }));
  });
});

describe("callUpstreamStreaming", () => {
  async function* chunks(n: number, size: number) {
    for (let i = 0; i < n; i++) yield Buffer.alloc(size, 97 + (i % 26));
  }
  async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
    const out: Buffer[] = [];
    for await (const c of body) out.push(c);
    return Buffer.concat(out);
  }

  it("streams the request body up and the response body down", async () => {
    api.handler = (_req, res, body) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(Buffer.concat([Buffer.from(`${body.length}:`), body.subarray(0, 3)]));
    };
    const request = canonicalizeRequest(httpRequest({ method: "PUT", path: "/upload", headers: [{ name: "Content-Type", value: "application/octet-stream" }] }));
    const res = await callUpstreamStreaming({ target, request, credential: TOKEN, dispatcher: loopbackOk, body: chunks(10, 1000) });
    expect(res.status).toBe(200);
    expect((await collect(res.body)).toString()).toBe("10000:aaa");
    expect(api.headerValues(0, "authorization")).toEqual([`Bearer ${TOKEN}`]);
  });

  it("stops a streamed request body past its cap with BODY_TOO_LARGE", async () => {
    api.handler = (_req, res) => res.end("never");
    const request = canonicalizeRequest(httpRequest({ method: "PUT", path: "/upload" }));
    await refusedWith(
      "BODY_TOO_LARGE",
      callUpstreamStreaming({ target, request, credential: TOKEN, dispatcher: loopbackOk, body: chunks(10, 1000), limits: { maxStreamRequestBytes: 4000 } }),
    );
    expect(api.requests).toHaveLength(0);
  });

  it("stops a streamed response past its cap with RESPONSE_TOO_LARGE", async () => {
    api.handler = (_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < 8; i++) res.write(Buffer.alloc(1000));
      res.end();
    };
    const request = canonicalizeRequest(httpRequest());
    const res = await callUpstreamStreaming({ target, request, credential: TOKEN, dispatcher: loopbackOk, body: chunks(0, 0), limits: { maxResponseBytes: 3000 } });
    await refusedWith("RESPONSE_TOO_LARGE", collect(res.body));
  });

  it("releases the connection when the consumer stops early", async () => {
    api.handler = (_req, res) => {
      res.writeHead(200);
      const timer = setInterval(() => res.write(Buffer.alloc(100)), 5);
      res.on("close", () => clearInterval(timer));
    };
    const closed = api.nextSocketClose();
    const res = await callUpstreamStreaming({ target, request: canonicalizeRequest(httpRequest()), credential: TOKEN, dispatcher: loopbackOk, body: chunks(0, 0) });
    for await (const _ of res.body) break;
    await closed;
  });
});
