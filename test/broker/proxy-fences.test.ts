import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, toHttpRequest, type FetchRequest } from "../../src/client/index.js";
import type { HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { ProxyServiceClient, type ProxyResponse } from "../../src/gen/capvault/v1/proxy.js";
import { startRecordingUpstream, type RecordingUpstream } from "../proxy/recording-upstream.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * The SSRF and header fences (security checklist items 16-20), exercised through the Proxy RPC of a whole broker:
 * the agent's request travels over gRPC, through canonicalization, authorization, the fenced dispatcher and a real
 * TLS connection to the recording upstream. Every refusal is checked for its gRPC code AND its stable reason, and
 * for what did NOT happen upstream (no request, no TCP connection).
 *
 * Loopback only: every upstream here is reached as `localhost`, which the harness checks resolves only to 127.0.0.1;
 * the "private address" provider is refused by the fence before any socket opens.
 */

let t: TestBroker;
let other: RecordingUpstream;
let connection: string;
let privateConnection: string;
let ipLiteralConnection: string;
let agentToken: string;
let rawProxy: ProxyServiceClient;

beforeAll(async () => {
  other = await startRecordingUpstream("127.0.0.1");
  t = await startTestBroker({
    providers: {
      // gh's API, but without allowPrivateAddresses: localhost resolves to 127.0.0.1, a forbidden range.
      "gh-private": () => ({ allowPrivateAddresses: undefined }),
      // An IP literal as the API host: never resolved, never connected to, whatever the fence setting.
      "gh-ip": (c) => ({ baseUrl: `https://127.0.0.1:${c.upstreamPort}`, allowedHosts: ["127.0.0.1"] }),
      // A plain-http API base URL is refused when the catalog loads: test/broker/provider-api-startup.test.ts.
    },
  });
  t.upstream.handler = (req, res) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    if (url.pathname === "/redirect") {
      res.writeHead(Number(url.searchParams.get("status") ?? 302), { location: `https://localhost:${other.port}/steal?from=broker` });
      res.end("moved");
      return;
    }
    if (url.pathname === "/hop-by-hop") {
      res.writeHead(200, [
        ["content-type", "application/json"],
        ["connection", "x-internal, etag"],
        ["x-internal", "upstream-internal-value"],
        ["etag", '"listed-in-connection"'],
        ["keep-alive", "timeout=5"],
        ["proxy-authenticate", 'Basic realm="upstream-proxy"'],
        ["proxy-connection", "keep-alive"],
        ["trailer", "x-checksum"],
        ["upgrade", "h2c"],
        ["x-ratelimit-remaining", "4999"],
        ["authorization", "Bearer echoed-back"],
        ["x-echo-authorization", "Bearer echoed-back"],
        ["set-cookie", "session=upstream"],
        ["server", "upstream/1.0"],
        ["x-powered-by", "Express"],
      ] as unknown as Record<string, string>);
      res.end("{}");
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, url: req.url }));
  };
  connection = await t.connectAccount("alice");
  privateConnection = await t.connectAccount("bob", "gh-private");
  ipLiteralConnection = await t.connectAccount("carol", "gh-ip");
  agentToken = (
    await t.mint(
      [connection, privateConnection, ipLiteralConnection].flatMap((c) => [
        { connection: c, method: "GET", pathPrefix: "/" },
        { connection: c, method: "POST", pathPrefix: "/" },
      ]),
    )
  ).token;
  rawProxy = new ProxyServiceClient(t.address, credentials.createInsecure());
});

afterAll(async () => {
  rawProxy?.close();
  await t?.close();
  await other?.close();
});

const agent = () => t.client(agentToken);

/** Call Proxy with a wire-level HttpRequest (repeated headers, any bytes), as a hostile agent could. */
function proxyRaw(request: HttpRequest, token = agentToken): Promise<ProxyResponse> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((ok, no) =>
    rawProxy.proxy({ request }, md, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: ProxyResponse) =>
      err ? no(CapvaultClientError.fromServiceError(err)) : ok(res),
    ),
  );
}

/** Expect a refusal with this gRPC code and reason, and no upstream traffic at all (no request, no connection). */
async function expectRefused(call: Promise<unknown>, code: status, reason: string): Promise<CapvaultClientError> {
  const requests = t.upstream.requests.length;
  const connections = t.upstream.connections;
  const err = await call.then(
    () => {
      throw new Error(`expected ${reason}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CapvaultClientError);
  expect({ code: (err as CapvaultClientError).code, reason: (err as CapvaultClientError).reason }).toEqual({ code, reason });
  expect(t.upstream.requests.length).toBe(requests);
  expect(t.upstream.connections).toBe(connections);
  return err as CapvaultClientError;
}

describe("the agent names a path, never a URL (item 16)", () => {
  const refusedPaths = [
    "http://evil/",
    "https://evil.com/x",
    "HTTPS://EVIL.COM/",
    "//evil.com/x",
    "///evil.com/x",
    "evil.com/x",
    "@evil.com/x",
    "",
    "/%2e%2e/",
    "/%2E%2E/etc/passwd",
    "/a/%2E%2E/%2e%2e/b",
    "/a/..%2f..%2fb",
    "/a%2fb",
    "/a%2Fb",
    "/a%5cb",
    "/a\\b",
    "/a/..;/b",
    "/x?admin=true",
    "/x#fragment",
    "/x y",
    "/x\r\nHost: evil.com",
    "/%00",
    "/%E0%A4%A",
    "/%ff",
  ];
  it.each(refusedPaths)("refuses %j with INVALID_ARGUMENT PATH_INVALID before any upstream traffic", async (path) => {
    await expectRefused(agent().fetch(connection, { path }), status.INVALID_ARGUMENT, "PATH_INVALID");
  });

  it("resolves encoded dot segments BEFORE authorizing: a traversal out of the granted prefix is refused", async () => {
    const narrow = (await t.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }])).token;
    const err = await expectRefused(
      t.client(narrow).fetch(connection, { path: "/repos/acme/widgets/%2e%2e/%2E%2E/%2e%2e/admin" }),
      status.PERMISSION_DENIED,
      "NO_MATCHING_GRANT",
    );
    expect(err.message).not.toContain("/repos/acme/widgets");
    // The dry run shows what was authorized: the canonical path, not the spelling the agent sent.
    const dry = await t.client(narrow).authorize(connection, { path: "/repos/acme/widgets/%2e%2e/%2E%2E/%2e%2e/admin" });
    expect(dry).toMatchObject({ allowed: false, canonicalPath: "/admin" });
  });

  it("sends exactly the canonical path it authorized", async () => {
    const narrow = (await t.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }])).token;
    const res = await t.client(narrow).fetch(connection, { path: "/repos/acme/x/%2e%2e/widgets//issues/./%7e%41" });
    expect(res.status).toBe(200);
    expect(t.upstream.requests.at(-1)!.url).toBe("/repos/acme/widgets/issues/~A");
  });

  it("encodes query names and values itself: '&', '=' and '#' cannot add parameters", async () => {
    const res = await agent().fetch(connection, { path: "/search", query: [["q", "a&admin=true#x"], ["q", "b c"]] });
    expect(res.status).toBe(200);
    expect(t.upstream.requests.at(-1)!.url).toBe("/search?q=a%26admin%3Dtrue%23x&q=b%20c");
  });
});

describe("CR, LF and other control characters are refused, never repaired (item 20)", () => {
  it.each([
    ["a header value with CRLF", { headers: { "x-note": "a\r\nX-Injected: 1" } }, "HEADER_INVALID"],
    ["a header value with a bare LF", { headers: { "x-note": "a\nb" } }, "HEADER_INVALID"],
    ["a header value with NUL", { headers: { "x-note": "a\u0000b" } }, "HEADER_INVALID"],
    ["a header value with non-ASCII", { headers: { "x-note": "caf\u00e9" } }, "HEADER_INVALID"],
    ["a header name with CRLF", { headers: { "x-a\r\nx-b": "1" } }, "HEADER_INVALID"],
    ["a header name with a colon", { headers: { "x-a:": "1" } }, "HEADER_INVALID"],
    ["a query value with CRLF", { query: { q: "a\r\nHost: evil" } }, "QUERY_INVALID"],
    ["a query name with LF", { query: { "q\n": "1" } }, "QUERY_INVALID"],
    ["a query value with NUL", { query: { q: "a\u0000" } }, "QUERY_INVALID"],
    ["a query with an empty name", { query: { "": "1" } }, "QUERY_INVALID"],
  ] as Array<[string, Partial<FetchRequest>, string]>)("%s is INVALID_ARGUMENT %s", async (_what, extra, reason) => {
    await expectRefused(agent().fetch(connection, { path: "/x", ...extra }), status.INVALID_ARGUMENT, reason);
  });

  it.each(["TRACE", "TRACK", "CONNECT", "GET /admin HTTP/1.1", "G\r\nET", ""])("method %j is INVALID_ARGUMENT METHOD_INVALID", async (method) => {
    await expectRefused(proxyRaw({ ...toHttpRequest(connection, { path: "/x" }), method }), status.INVALID_ARGUMENT, "METHOD_INVALID");
  });
});

describe("agent credentials and ambient headers never reach the upstream (item 20)", () => {
  it("drops Authorization, Cookie, Host, Proxy-Authorization and friends: the upstream sees exactly one Authorization, the broker's", async () => {
    const before = t.upstream.requests.length;
    const res = await proxyRaw({
      ...toHttpRequest(connection, { method: "POST", path: "/repos/acme/widgets/issues", body: { title: "hi" } }),
      headers: [
        { name: "Authorization", value: "Bearer agent-forged-token" },
        { name: "AUTHORIZATION", value: "token second-forgery" },
        { name: "authorization", value: "Basic YWdlbnQ6cGFzcw==" },
        { name: "Cookie", value: "session=agent" },
        { name: "Cookie2", value: "x=1" },
        { name: "Host", value: "evil.com" },
        { name: "Proxy-Authorization", value: "Basic cHJveHk6cGFzcw==" },
        { name: "X-Forwarded-Host", value: "evil.com" },
        { name: "X-Forwarded-For", value: "169.254.169.254" },
        { name: "Forwarded", value: "host=evil.com" },
        { name: "X-HTTP-Method-Override", value: "DELETE" },
        { name: "X-Original-URL", value: "/admin" },
        { name: "Content-Length", value: "999" },
        { name: "content-type", value: "application/json" },
        { name: "X-Request-Note", value: "kept" },
      ],
    });
    expect(res.status).toBe(200);
    expect(t.upstream.requests.length).toBe(before + 1);
    const i = t.upstream.requests.length - 1;
    const accessToken = await t.accessTokenOf(connection);
    expect(t.upstream.headerValues(i, "authorization")).toEqual([`Bearer ${accessToken}`]);
    expect(t.upstream.headerValues(i, "host")).toEqual([`localhost:${t.upstream.port}`]);
    for (const name of ["cookie", "cookie2", "proxy-authorization", "x-forwarded-host", "x-forwarded-for", "forwarded", "x-http-method-override", "x-original-url"]) {
      expect(t.upstream.headerValues(i, name), name).toEqual([]);
    }
    expect(t.upstream.headerValues(i, "content-length")).toEqual([String(Buffer.byteLength('{"title":"hi"}'))]);
    expect(t.upstream.headerValues(i, "x-request-note")).toEqual(["kept"]);
    expect(t.upstream.requests[i].method).toBe("POST");
    expect(t.upstream.requests[i].body.toString()).toBe('{"title":"hi"}');
  });

  it("strips hop-by-hop request headers, including the names the agent's Connection header lists", async () => {
    const res = await proxyRaw({
      ...toHttpRequest(connection, { path: "/hop" }),
      headers: [
        { name: "Connection", value: "x-drop-me, keep-alive" },
        { name: "X-Drop-Me", value: "1" },
        { name: "Keep-Alive", value: "timeout=99" },
        { name: "TE", value: "trailers" },
        { name: "Transfer-Encoding", value: "chunked" },
        { name: "Upgrade", value: "websocket" },
        { name: "Proxy-Connection", value: "keep-alive" },
        { name: "Trailer", value: "x-checksum" },
        { name: "HTTP2-Settings", value: "AAMAAABkAAQAAP__" },
        { name: "X-Kept", value: "yes" },
      ],
    });
    expect(res.status).toBe(200);
    const i = t.upstream.requests.length - 1;
    for (const name of ["x-drop-me", "te", "transfer-encoding", "upgrade", "proxy-connection", "trailer", "http2-settings"]) {
      expect(t.upstream.headerValues(i, name), name).toEqual([]);
    }
    // undici may announce its own keep-alive; the agent's values never get through.
    expect(t.upstream.headerValues(i, "keep-alive")).not.toContain("timeout=99");
    expect(t.upstream.headerValues(i, "connection").join(",")).not.toMatch(/x-drop-me/i);
    expect(t.upstream.headerValues(i, "x-kept")).toEqual(["yes"]);
  });

  it("returns only allowlisted response headers: hop-by-hop, Connection-listed, credential echoes and Set-Cookie are dropped", async () => {
    const res = await agent().fetch(connection, { path: "/hop-by-hop" });
    expect(res.status).toBe(200);
    expect(Object.keys(res.headers).sort()).toEqual(["content-type", "date", "x-ratelimit-remaining"]);
    expect(res.headers["x-ratelimit-remaining"]).toBe("4999");
    expect(JSON.stringify(res.headers)).not.toContain("echoed-back");
  });
});

describe("redirects are returned, never followed (item 18)", () => {
  it.each([301, 302, 303, 307, 308])("a %i to another origin goes back to the agent; that origin sees no connection", async (code) => {
    const before = t.upstream.requests.length;
    const res = await agent().fetch(connection, { path: "/redirect", query: { status: code } });
    expect(res.status).toBe(code);
    expect(res.headers.location).toBe(`https://localhost:${other.port}/steal?from=broker`);
    expect(res.text()).toBe("moved");
    expect(t.upstream.requests.length).toBe(before + 1);
    expect(other.connections).toBe(0);
    expect(other.requests).toEqual([]);
  });
});

describe("where the token may go is checked before any socket opens (items 17, 19)", () => {
  it("a provider whose API host resolves to a private (loopback) address, without allowPrivateAddresses, is refused with UPSTREAM_ADDRESS_FORBIDDEN", async () => {
    await expectRefused(agent().fetch(privateConnection, { path: "/user" }), status.PERMISSION_DENIED, "UPSTREAM_ADDRESS_FORBIDDEN");
    // The refusal is per connection attempt, not cached as a success: a second call is refused the same way.
    await expectRefused(agent().fetch(privateConnection, { path: "/user" }), status.PERMISSION_DENIED, "UPSTREAM_ADDRESS_FORBIDDEN");
  });

  it("an IP-literal API host is refused with UPSTREAM_HOST_FORBIDDEN, even where private addresses are allowed", async () => {
    await expectRefused(agent().fetch(ipLiteralConnection, { path: "/user" }), status.PERMISSION_DENIED, "UPSTREAM_HOST_FORBIDDEN");
  });

  it("the good connection still works after all of that (the refusals poisoned nothing)", async () => {
    const res = await agent().fetch(connection, { path: "/still-fine" });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ method: "GET", url: "/still-fine" });
    expect(res.headers["set-cookie"]).toBeUndefined();
  });
});
