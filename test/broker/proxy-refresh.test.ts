import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapvaultClientError, type CapvaultClient } from "../../src/client/index.js";
import { ConnectionStatus, type GetConnectionResponse } from "../../src/gen/capvault/v1/connection.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * Refresh on an upstream 401 (checklist item 21), against oidc-provider (which rotates refresh tokens and revokes the
 * whole grant when a rotated one is reused, so a double refresh would show up as a failure): at most one refresh,
 * through the single flight, then one retry; a second 401 goes back as is; N concurrent 401s cause ONE refresh; a dead
 * grant becomes FAILED_PRECONDITION CONNECTION_NEEDS_REAUTH.
 *
 * The upstream stands in for a provider API that has stopped accepting some access tokens: it answers
 * `401 WWW-Authenticate: Bearer error="invalid_token"` to every token in `rejected`.
 */

const rejected = new Set<string>();
/** Paths that always answer 401 invalid_token, whatever the token. */
const ALWAYS_401 = "/always-401";
let t: TestBroker;
let connection: string;
let agent: CapvaultClient;

const bearer = (i: number) => (t.upstream.headerValues(i, "authorization")[0] ?? "").replace(/^Bearer /, "");

beforeAll(async () => {
  t = await startTestBroker({ exposeSecrets: true });
  t.upstream.handler = (req, res) => {
    const token = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
    const url = new URL(req.url ?? "/", "https://localhost");
    if (url.pathname === "/insufficient-scope") {
      res.writeHead(401, { "www-authenticate": 'Bearer error="insufficient_scope", scope="repo"', "content-type": "application/json" });
      res.end('{"message":"needs repo scope"}');
      return;
    }
    if (rejected.has(token) || url.pathname === ALWAYS_401) {
      res.writeHead(401, { "www-authenticate": 'Bearer realm="api", error="invalid_token", error_description="The access token expired"', "content-type": "application/json" });
      res.end('{"message":"Bad credentials"}');
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true, url: req.url }));
  };
  connection = await t.connectAccount("alice");
  agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }])).token);
});
afterAll(async () => t?.close());
beforeEach(() => rejected.clear());

const refreshes = () => t.idp.tokenRequests.refresh_token;

describe("an upstream 401 invalid_token", () => {
  it("makes the broker refresh exactly once at the provider and retry once, with the new token", async () => {
    const old = await t.accessTokenOf(connection);
    rejected.add(old);
    const [refreshesBefore, consumedBefore, requestsBefore] = [refreshes(), t.idp.events["refresh_token.consumed"], t.upstream.requests.length];

    const res = await agent.fetch(connection, { path: "/user" });

    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ ok: true, url: "/user" });
    expect(refreshes()).toBe(refreshesBefore + 1);
    expect(t.idp.events["refresh_token.consumed"]).toBe(consumedBefore + 1);
    expect(t.idp.events["grant.error"]).toBe(0);
    expect(t.upstream.requests.length).toBe(requestsBefore + 2);
    const fresh = await t.accessTokenOf(connection);
    expect(fresh).not.toBe(old);
    expect([bearer(requestsBefore), bearer(requestsBefore + 1)]).toEqual([old, fresh]);
    // The next call uses the new token straight away: no refresh, one request.
    await agent.fetch(connection, { path: "/user" });
    expect(refreshes()).toBe(refreshesBefore + 1);
    expect(t.upstream.requests.length).toBe(requestsBefore + 3);
  });

  it("a second 401 is returned to the agent as is (status, challenge, body): one refresh, one retry, no loop", async () => {
    const [refreshesBefore, requestsBefore] = [refreshes(), t.upstream.requests.length];
    const res = await agent.fetch(connection, { path: ALWAYS_401 });
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toContain('error="invalid_token"');
    expect(res.json()).toEqual({ message: "Bad credentials" });
    expect(refreshes()).toBe(refreshesBefore + 1);
    expect(t.upstream.requests.length).toBe(requestsBefore + 2);
    expect(bearer(requestsBefore)).not.toBe(bearer(requestsBefore + 1));
    expect(t.idp.events["grant.error"]).toBe(0);
  });

  it("a 401 whose challenge names another error (insufficient_scope) is returned without any refresh", async () => {
    const [refreshesBefore, requestsBefore] = [refreshes(), t.upstream.requests.length];
    const res = await agent.fetch(connection, { path: "/insufficient-scope" });
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toContain("insufficient_scope");
    expect(refreshes()).toBe(refreshesBefore);
    expect(t.upstream.requests.length).toBe(requestsBefore + 1);
  });

  it("N concurrent calls that all hit 401 cause ONE refresh, and every call succeeds on its retry", async () => {
    const N = 12;
    // Warm the broker's token cache so that all N calls start with the same (soon rejected) token.
    await agent.fetch(connection, { path: "/warm" });
    const old = await t.accessTokenOf(connection);
    rejected.add(old);
    const [refreshesBefore, requestsBefore] = [refreshes(), t.upstream.requests.length];

    const results = await Promise.all(Array.from({ length: N }, (_, i) => agent.fetch(connection, { path: `/concurrent/${i}` })));

    expect(results.map((r) => r.status)).toEqual(Array(N).fill(200));
    expect(refreshes()).toBe(refreshesBefore + 1);
    expect(t.idp.events["grant.error"]).toBe(0);
    const fresh = await t.accessTokenOf(connection);
    const sent = t.upstream.requests.slice(requestsBefore).map((_, k) => bearer(requestsBefore + k));
    // Every call sent at most the old token once and then the new one; nothing else was ever sent.
    expect(new Set(sent)).toEqual(new Set([old, fresh]));
    expect(sent.filter((s) => s === fresh)).toHaveLength(N);
    expect(sent.filter((s) => s === old).length).toBeLessThanOrEqual(N);
  });

  it("the refresh is audited", async () => {
    await new Promise((r) => setTimeout(r, 200));
    const events = await new Promise<{ action: string; decision: string; reason: string; connection: string }[]>((ok, no) =>
      t.rpc.admin.listAuditEvents({ tenant: t.tenant, afterSequence: 0, limit: 1000, writer: "", pageToken: "" }, t.operatorMetadata(), (e, r) => (e ? no(e) : ok(r.events))),
    );
    const refreshEvents = events.filter((e) => e.action === "refresh");
    expect(refreshEvents.length).toBeGreaterThanOrEqual(3);
    expect(refreshEvents.every((e) => e.connection === connection && e.decision === "allow" && e.reason === "refreshed")).toBe(true);
  });
});

describe("a streamed call (ProxyStream) that gets 401 invalid_token", () => {
  it("is answered as is (its body cannot be replayed), and the connection is refreshed once so that the next call works", async () => {
    const old = await t.accessTokenOf(connection);
    rejected.add(old);
    const [refreshesBefore, requestsBefore] = [refreshes(), t.upstream.requests.length];

    const first = await agent.stream(connection, { path: "/stream" });
    expect(first.status).toBe(401);
    expect(first.headers["www-authenticate"]).toContain('error="invalid_token"');
    const chunks: Buffer[] = [];
    for await (const c of first.body) chunks.push(c);
    expect(JSON.parse(Buffer.concat(chunks).toString())).toEqual({ message: "Bad credentials" });
    expect(t.upstream.requests.length).toBe(requestsBefore + 1);
    expect(refreshes()).toBe(refreshesBefore + 1);

    const second = await agent.stream(connection, { path: "/stream" });
    expect(second.status).toBe(200);
    for await (const _ of second.body) void _;
    expect(refreshes()).toBe(refreshesBefore + 1);
    expect(bearer(requestsBefore + 1)).toBe(await t.accessTokenOf(connection));
    expect(bearer(requestsBefore + 1)).not.toBe(old);
  });
});

describe("a dead grant", () => {
  it("turns the 401 into FAILED_PRECONDITION CONNECTION_NEEDS_REAUTH after one refresh attempt, and later calls fail fast", async () => {
    // The user revokes capvault's access at the provider (RFC 7009 on the current refresh token).
    const { refreshTokens } = await t.secretsOf(connection);
    const current = refreshTokens.at(-1)!;
    const revoked = await fetch(`${t.idp.issuer}/token/revocation`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${t.idp.clientId}:${t.idp.clientSecret}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token: current, token_type_hint: "refresh_token" }),
    });
    expect(revoked.status).toBe(200);
    rejected.add(await t.accessTokenOf(connection));
    const [refreshesBefore, requestsBefore] = [refreshes(), t.upstream.requests.length];

    const err = await agent.fetch(connection, { path: "/user" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapvaultClientError);
    expect({ code: (err as CapvaultClientError).code, reason: (err as CapvaultClientError).reason }).toEqual({
      code: status.FAILED_PRECONDITION,
      reason: "CONNECTION_NEEDS_REAUTH",
    });
    expect((err as CapvaultClientError).metadata).toEqual({ connection });
    expect(refreshes()).toBe(refreshesBefore + 1);
    expect(t.upstream.requests.length).toBe(requestsBefore + 1);

    // No retry loop: the next call fails at once, without the provider or the upstream.
    const again = await agent.fetch(connection, { path: "/user" }).catch((e: unknown) => e);
    expect((again as CapvaultClientError).reason).toBe("CONNECTION_NEEDS_REAUTH");
    expect(refreshes()).toBe(refreshesBefore + 1);
    expect(t.upstream.requests.length).toBe(requestsBefore + 1);

    const got = await new Promise<GetConnectionResponse>((ok, no) =>
      t.rpc.connections.getConnection({ tenant: t.tenant, connectionId: connection }, t.operatorMetadata(), (e, r) => (e ? no(e) : ok(r))),
    );
    expect(got.connection?.status).toBe(ConnectionStatus.CONNECTION_STATUS_NEEDS_REAUTH);
  });
});
