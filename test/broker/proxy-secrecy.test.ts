import { credentials, Metadata, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { BSON } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHttpRequest, type FetchRequest } from "../../src/client/index.js";
import type { AuditEvent, TailAuditEventsResponse } from "../../src/gen/capvault/v1/admin.js";
import type { HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { ProxyServiceClient, type ProxyResponse } from "../../src/gen/capvault/v1/proxy.js";
import { RESPONSE_HEADER_ALLOWLIST, RESPONSE_HEADER_ALLOWED_PREFIXES } from "../../src/proxy/response-header-allowlist.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";
import { freePort } from "../support/free-port.js";
import { storedAuditText } from "../support/audit-documents.js";

/**
 * Must-show: an agent holding only its capability has NO way to obtain the OAuth tokens (checklist item 10).
 *
 * A broker with a GitHub-shaped upstream is driven through everything an agent or an operator can do, including the
 * failures an agent can provoke (upstream down, upstream 500, TLS failure, timeouts, 401s, a dead grant). Every byte
 * that comes out is collected: each RPC response and error (message, details, every trailer), each response header,
 * every log line, every audit record, and a dump of every MongoDB collection. Then every access and refresh token the
 * broker ever stored for those connections, and the OAuth client secret, are searched for in plain text, base64 and
 * base64url (at every byte alignment), hex, and URL encoding. A positive control shows the search finds the token
 * where it legitimately is: in the request the upstream received.
 */

let t: TestBroker;
let rawProxy: ProxyServiceClient;
/** Every output, labelled. */
const outputs: Array<{ label: string; text: string }> = [];
/** Every OAuth secret stored at any point. */
const secrets = new Map<string, string>();
let alice: string;
let agentToken: string;
let refreshedOnce = false;
let failNextWithInvalidToken = false;

/** Flatten anything into the strings it carries (bytes as latin1 and utf8, metadata values, error fields, keys). */
function strings(value: unknown, out: string[] = [], seen = new Set<unknown>()): string[] {
  if (value === null || value === undefined) return out;
  if (typeof value === "string") return (out.push(value), out);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return (out.push(String(value)), out);
  if (value instanceof Date) return (out.push(value.toISOString()), out);
  if (value instanceof Uint8Array) {
    const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    out.push(b.toString("latin1"), b.toString("utf8"));
    return out;
  }
  if (typeof value !== "object" || seen.has(value)) return out;
  seen.add(value);
  if (value instanceof Metadata) return strings(value.getMap(), out, seen);
  if (value instanceof Error) {
    out.push(value.name, value.message, value.stack ?? "");
    strings((value as { cause?: unknown }).cause, out, seen);
  }
  for (const key of Object.getOwnPropertyNames(value)) {
    out.push(key);
    strings((value as Record<string, unknown>)[key], out, seen);
  }
  return out;
}

function record(label: string, value: unknown): void {
  outputs.push({ label, text: strings(value).join("\n") });
}

/** Every way a secret could be written down: plain, URL-encoded, hex, and base64/base64url at each byte alignment. */
function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret, "utf8");
  const out = new Set([secret, encodeURIComponent(secret), bytes.toString("hex"), bytes.toString("hex").toUpperCase()]);
  for (const enc of ["base64", "base64url"] as const) {
    for (let k = 0; k < 3; k++) {
      const text = Buffer.concat([Buffer.alloc(k), bytes]).toString(enc).replace(/=+$/, "");
      // Drop the characters that depend on the unknown bytes before and after the secret.
      out.add(text.slice(k === 0 ? 0 : 4, text.length - 4));
    }
  }
  return [...out].filter((s) => s.length >= 16);
}

async function collectSecrets(connection: string): Promise<void> {
  const { accessTokens, refreshTokens } = await t.secretsOf(connection);
  for (const a of accessTokens) secrets.set(a, `access token of ${connection}`);
  for (const r of refreshTokens) secrets.set(r, `refresh token of ${connection}`);
}

/** A unary RPC as a raw gRPC call, recording the full response or the full error (status, details, trailers). */
function rpc<Res>(label: string, call: (md: Metadata, options: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown, token?: string, timeoutMs = 10_000): Promise<Res | ServiceError> {
  const md = new Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) =>
    call(md, { deadline: Date.now() + timeoutMs }, (err, res) => {
      record(label, err ?? res);
      resolve(err ?? res);
    }),
  );
}

function proxy(label: string, connection: string, request: FetchRequest, token = agentToken, timeoutMs?: number): Promise<ProxyResponse | ServiceError> {
  const req: HttpRequest = toHttpRequest(connection, request);
  return rpc(label, (md, o, cb) => rawProxy.proxy({ request: req }, md, o, cb), token, timeoutMs);
}

const isError = (x: unknown): x is ServiceError => x instanceof Error;

/** A loopback port nothing listens on (free right now). */
const closedPort = freePort;

beforeAll(async () => {
  const downPort = await closedPort();
  t = await startTestBroker({
    exposeSecrets: true,
    providers: {
      "gh-down": () => ({ baseUrl: `https://localhost:${downPort}` }),
      "gh-badtls": (c) => ({ caFile: c.unrelatedCaFile }),
      "gh-private": () => ({ allowPrivateAddresses: undefined }),
    },
  });
  // A GitHub-shaped API. /echo-headers echoes the request's Authorization into response headers, allowlisted or not,
  // and into its body.
  t.upstream.handler = (req, res, body) => {
    const auth = String(req.headers.authorization ?? "");
    const url = new URL(req.url ?? "/", "https://localhost");
    const github = {
      "content-type": "application/json; charset=utf-8",
      "x-github-request-id": "C0DE:1234:5678",
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": "4999",
      "x-oauth-scopes": "repo, read:org",
      "x-accepted-oauth-scopes": "repo",
      "x-github-media-type": "github.v3; format=json",
    };
    if (failNextWithInvalidToken) {
      failNextWithInvalidToken = false;
      res.writeHead(401, { ...github, "www-authenticate": 'Bearer error="invalid_token"' });
      res.end('{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}');
      return;
    }
    switch (url.pathname) {
      case "/user":
        res.writeHead(200, github);
        res.end(JSON.stringify({ login: "alice", id: 1, type: "User" }));
        return;
      case "/echo-headers":
        res.writeHead(200, {
          ...github,
          authorization: auth,
          "x-echo-authorization": auth,
          "proxy-authorization": auth,
          "set-cookie": `token=${auth.slice(7)}`,
          "www-authenticate": `Bearer realm="echo", note="${auth}"`,
          link: `<https://localhost/next?access_token=${auth.slice(7)}>; rel="next"`,
          location: `https://localhost/callback#access_token=${auth.slice(7)}`,
          "x-request-id": `req ${auth}`,
        });
        // And into the body, httpbin-style (raw, JSON-escaped, in a URL): the broker overwrites every echo.
        res.end(JSON.stringify({ headers: { Authorization: auth }, url: `https://localhost/echo-headers?access_token=${encodeURIComponent(auth.slice(7))}` }));
        return;
      case "/server-error":
        res.writeHead(500, github);
        res.end('{"message":"Server Error"}');
        return;
      case "/always-401":
        res.writeHead(401, { ...github, "www-authenticate": 'Bearer error="invalid_token"' });
        res.end('{"message":"Bad credentials"}');
        return;
      case "/reset":
        req.socket.destroy();
        return;
      case "/hang":
        return; // never answers
      case "/upload":
        res.writeHead(201, github);
        res.end(JSON.stringify({ bytes: body.length }));
        return;
      default:
        res.writeHead(404, github);
        res.end('{"message":"Not Found"}');
    }
  };
  rawProxy = new ProxyServiceClient(t.address, credentials.createInsecure());

  alice = await t.connectAccount("alice");
  const down = await t.connectAccount("bob", "gh-down");
  const badTls = await t.connectAccount("carol", "gh-badtls");
  const privateAddress = await t.connectAccount("dave", "gh-private");
  for (const c of [alice, down, badTls, privateAddress]) await collectSecrets(c);

  const operatorMd = t.operatorMetadata();
  const minted = await t.mint([alice, down, badTls, privateAddress].flatMap((c) => [
    { connection: c, method: "GET", pathPrefix: "/" },
    { connection: c, method: "PUT", pathPrefix: "/upload" },
  ]));
  record("Mint", minted);
  agentToken = minted.token;

  // --- Proxy: success, provider errors, refresh, echoes ---
  await proxy("Proxy 200", alice, { path: "/user" });
  await proxy("Proxy echo", alice, { path: "/echo-headers" });
  await proxy("Proxy 404", alice, { path: "/nope" });
  await proxy("Proxy 500", alice, { path: "/server-error" });
  failNextWithInvalidToken = true;
  const refreshed = await proxy("Proxy 401 then refresh", alice, { path: "/user" });
  refreshedOnce = !isError(refreshed) && refreshed.status === 200;
  await collectSecrets(alice);
  await proxy("Proxy 401 twice", alice, { path: "/always-401" });
  await collectSecrets(alice);

  // --- Errors an agent can provoke ---
  await proxy("Proxy upstream reset", alice, { path: "/reset" });
  await proxy("Proxy timeout", alice, { path: "/hang" }, agentToken, 700);
  await proxy("Proxy upstream down", down, { path: "/user" });
  await proxy("Proxy TLS failure", badTls, { path: "/user" });
  await proxy("Proxy private address", privateAddress, { path: "/user" });
  await proxy("Proxy denied", alice, { method: "DELETE", path: "/user" });
  await proxy("Proxy bad path", alice, { path: "//evil.example/x" });
  await proxy("Proxy no capability", alice, { path: "/user" }, "");
  await proxy("Proxy garbage capability", alice, { path: "/user" }, "not-a-biscuit");
  await proxy("Proxy unknown connection", "conn_does_not_exist", { path: "/user" });

  // --- ProxyStream ---
  const agent = t.client(agentToken);
  const up = await agent.stream(alice, { method: "PUT", path: "/upload" }, [Buffer.alloc(300_000, 1)]);
  const upBody: Buffer[] = [];
  for await (const c of up.body) upBody.push(c);
  record("ProxyStream upload", { status: up.status, headers: up.headers, body: Buffer.concat(upBody) });
  const echo = await agent.stream(alice, { path: "/echo-headers" });
  for await (const c of echo.body) record("ProxyStream echo body", c);
  record("ProxyStream echo head", { status: echo.status, headers: echo.headers });
  const streamErr = await agent.stream(down, { path: "/user" }).catch((e: unknown) => e);
  record("ProxyStream upstream down", streamErr);

  // --- CapabilityService ---
  const caps = t.rpc.capabilities;
  const aliceReq = toHttpRequest(alice, { path: "/user" });
  await rpc("Authorize allowed", (md, o, cb) => caps.authorize({ token: agentToken, request: aliceReq }, md, o, cb), agentToken);
  await rpc("Authorize denied", (md, o, cb) => caps.authorize({ token: agentToken, request: { ...aliceReq, method: "DELETE" } }, md, o, cb), agentToken);
  await rpc("Inspect", (md, o, cb) => caps.inspect({ token: agentToken }, md, o, cb), agentToken);
  const narrower = await rpc<{ token: string; revocationIds: string[] }>(
    "Attenuate",
    (md, o, cb) =>
      caps.attenuate({ token: agentToken, restriction: { connections: [alice], methods: ["GET"], pathPrefix: "/user", query: [], body: [], checks: [], approvalMethods: [] } }, md, o, cb),
    agentToken,
  );
  await rpc("ListPublicKeys", (md, o, cb) => caps.listPublicKeys({}, md, o, cb));
  if (!isError(narrower)) {
    await rpc("Revoke", (md, o, cb) => caps.revoke({ revocationIds: [narrower.revocationIds.at(-1)!], reason: "test" }, md, o, cb), t.operatorToken);
    await proxy("Proxy revoked capability", alice, { path: "/user" }, narrower.token);
  }
  await rpc("Mint as agent (refused)", (md, o, cb) => caps.mint({ tenant: t.tenant, subject: "x", grants: [], operator: true, ttl: undefined, allowUnknownConnections: false }, md, o, cb), agentToken);

  // --- ConnectionService ---
  const conns = t.rpc.connections;
  await rpc("ListConnections", (md, o, cb) => conns.listConnections({ tenant: t.tenant, user: "" }, md, o, cb), t.operatorToken);
  for (const c of [alice, down, badTls, privateAddress]) {
    await rpc(`GetConnection ${c}`, (md, o, cb) => conns.getConnection({ tenant: t.tenant, connectionId: c }, md, o, cb), t.operatorToken);
  }
  await rpc("BeginConnect", (md, o, cb) => conns.beginConnect({ tenant: t.tenant, user: "erin", provider: "gh", scopes: [] }, md, o, cb), t.operatorToken);
  await rpc("ListConnections as agent (refused)", (md, o, cb) => conns.listConnections({ tenant: t.tenant, user: "" }, md, o, cb), agentToken);

  // --- A dead grant: revoke alice's refresh token at the provider, then hit a 401 ---
  await collectSecrets(alice);
  const { refreshTokens } = await t.secretsOf(alice);
  await fetch(`${t.idp.issuer}/token/revocation`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${t.idp.clientId}:${t.idp.clientSecret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ token: refreshTokens.at(-1)!, token_type_hint: "refresh_token" }),
  });
  failNextWithInvalidToken = true;
  await proxy("Proxy needs_reauth", alice, { path: "/user" });
  await proxy("Proxy needs_reauth again", alice, { path: "/user" });
  await rpc("GetConnection needs_reauth", (md, o, cb) => conns.getConnection({ tenant: t.tenant, connectionId: alice }, md, o, cb), t.operatorToken);

  // --- Disconnect (revokes at the provider with the refresh token) ---
  await collectSecrets(down);
  await rpc("Disconnect", (md, o, cb) => conns.disconnect({ tenant: t.tenant, connectionId: down }, md, o, cb), t.operatorToken);

  // --- AdminService ---
  const admin = t.rpc.admin;
  await new Promise((r) => setTimeout(r, 300)); // let queued audit events be written
  const audit = await rpc<{ events: AuditEvent[] }>("ListAuditEvents", (md, o, cb) => admin.listAuditEvents({ tenant: t.tenant, afterSequence: 0, limit: 1000, writer: "", pageToken: "" }, md, o, cb), t.operatorToken);
  if (!isError(audit)) expect(audit.events.length).toBeGreaterThan(20);
  await rpc("VerifyAudit", (md, o, cb) => admin.verifyAudit({ tenant: t.tenant }, md, o, cb), t.operatorToken);
  await rpc("GetKeyStatus", (md, o, cb) => admin.getKeyStatus({}, md, o, cb), t.operatorToken);
  const tail: ClientReadableStream<TailAuditEventsResponse> = admin.tailAuditEvents({ tenant: t.tenant, afterSequence: 0, writer: "", fromNow: false }, operatorMd);
  await new Promise<void>((resolve) => {
    let n = 0;
    tail.on("data", (m: TailAuditEventsResponse) => {
      record("TailAuditEvents", m);
      if (++n === 5) tail.cancel();
    });
    tail.on("error", () => resolve());
    tail.on("end", () => resolve());
  });

  // Anything still queued (audit) is written before the database is dumped.
  await new Promise((r) => setTimeout(r, 300));
}, 120_000);

afterAll(async () => {
  rawProxy?.close();
  await t?.close();
});

/** Where a secret shows, as "label: encoding" lines. */
function leaks(haystacks: Array<{ label: string; text: string }>): string[] {
  const found: string[] = [];
  for (const [secret, what] of [...secrets, [t.idp.clientSecret, "OAuth client secret"] as const]) {
    for (const needle of encodings(secret)) {
      for (const h of haystacks) if (h.text.includes(needle)) found.push(`${what} found in ${h.label} (as ${JSON.stringify(needle.slice(0, 12))}…)`);
    }
  }
  return found;
}

describe("no way to obtain the OAuth tokens", () => {
  it("the scenario really ran: tokens were stored, rotated by a refresh, and the grant killed", () => {
    expect([...secrets.values()].filter((w) => w.startsWith("access token of")).length).toBeGreaterThanOrEqual(6);
    expect([...secrets.values()].filter((w) => w.startsWith("refresh token of")).length).toBeGreaterThanOrEqual(6);
    expect(refreshedOnce).toBe(true);
    const labels = outputs.map((o) => o.label);
    for (const l of ["Proxy TLS failure", "Proxy upstream down", "Proxy timeout", "Proxy needs_reauth", "ProxyStream upload", "TailAuditEvents"]) expect(labels).toContain(l);
    const reasons = outputs.filter((o) => /Proxy (upstream down|TLS failure|private address|needs_reauth|upstream reset)$/.test(o.label)).map((o) => o.text);
    expect(reasons.join("\n")).toContain("UPSTREAM_UNREACHABLE");
    expect(reasons.join("\n")).toContain("UPSTREAM_ADDRESS_FORBIDDEN");
    expect(reasons.join("\n")).toContain("CONNECTION_NEEDS_REAUTH");
  });

  it("positive control: the search finds the token where it legitimately is (the request the upstream received)", () => {
    const upstreamSaw = t.upstream.requests.map((r, i) => ({ label: `upstream request ${i}`, text: r.rawHeaders.join("\n") }));
    expect(leaks(upstreamSaw).length).toBeGreaterThan(0);
    // …and finds base64 and hex forms too, at any alignment.
    const [secret] = secrets.keys();
    const sample = { label: "sample", text: `xx${Buffer.from(`a${secret}b`).toString("base64")} ${Buffer.from(secret).toString("hex")}` };
    expect(leaks([sample]).length).toBeGreaterThanOrEqual(2);
  });

  it("appears in no RPC response and no error (messages, details, trailers), including every provoked failure", () => {
    expect(outputs.length).toBeGreaterThan(40);
    expect(leaks(outputs)).toEqual([]);
  });

  it("appears in no log line the broker wrote", () => {
    expect(t.logs.length).toBeGreaterThan(10);
    expect(leaks(t.logs.map((l, i) => ({ label: `log line ${i}`, text: l })))).toEqual([]);
  });

  it("appears in no audit record and in no document of any MongoDB collection", async () => {
    const db = t.db!.db;
    const dumps: Array<{ label: string; text: string }> = [];
    const names = (await db.listCollections().toArray()).map((c) => c.name).sort();
    expect(names).toEqual(expect.arrayContaining(["audit_segments", "connections", "credentials", "data_keys", "root_keys"]));
    for (const name of names) {
      const docs = await db.collection(name).find({}).toArray();
      for (const doc of docs) {
        dumps.push({ label: `${name} ${String(doc._id)}`, text: BSON.EJSON.stringify(doc, { relaxed: false }) });
        dumps.push({ label: `${name} ${String(doc._id)} (BSON)`, text: Buffer.from(BSON.serialize(doc)).toString("latin1") });
      }
    }
    // Audit segments are compressed: search what they hold, too.
    const audit = await storedAuditText(db);
    expect(audit.reduce((events, segment) => events + segment.text.split("\n").length, 0)).toBeGreaterThan(20);
    dumps.push(...audit);
    expect(dumps.filter((d) => d.label.startsWith("credentials")).length).toBeGreaterThan(0);
    expect(leaks(dumps)).toEqual([]);
  });

  it("response headers: only allowlisted names come back, and no header that echoes the credential", () => {
    const echo = outputs.find((o) => o.label === "Proxy echo")!;
    expect(echo.text).not.toMatch(/x-echo-authorization|proxy-authorization|set-cookie/);
    const streamed = outputs.find((o) => o.label === "ProxyStream echo head")!;
    expect(streamed.text).not.toMatch(/x-echo-authorization|proxy-authorization|set-cookie/);
    const checked = new Set<string>();
    for (const o of outputs.filter((x) => /^Proxy /.test(x.label))) {
      // In a flattened ProxyResponse each header reads "name\n<name>\nvalue\n<value>": check every name.
      for (const m of o.text.matchAll(/\nname\n([^\n]+)\nvalue\n/g)) {
        const name = m[1].toLowerCase();
        checked.add(name);
        expect(RESPONSE_HEADER_ALLOWLIST.has(name) || RESPONSE_HEADER_ALLOWED_PREFIXES.some((p) => name.startsWith(p)), `${o.label}: ${name}`).toBe(true);
      }
    }
    expect([...checked]).toEqual(expect.arrayContaining(["content-type", "x-github-request-id", "x-ratelimit-remaining", "x-oauth-scopes", "www-authenticate"]));
    // The echo of the credential in allowlisted headers (WWW-Authenticate, Link, Location, X-Request-Id) was dropped.
    expect(echo.text).not.toMatch(/\nname\n(www-authenticate|link|location|x-request-id)\n/);
  });
});
