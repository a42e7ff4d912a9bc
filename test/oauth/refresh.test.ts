import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { connectThroughFlow } from "./support/connect-helper.js";
import { freePort } from "../support/free-port.js";
import { openOAuthStore, startBroker, type Broker } from "./support/oauth-harness.js";
import { startOidcServer, type OidcServer } from "./support/oidc-server.js";

const TWO_HOURS = 2 * 3600_000;

/** Lazy refresh, single flight, invalid_grant and failures, in one process against oidc-provider (rotation on). */
describe("refresh against oidc-provider", () => {
  let env: Awaited<ReturnType<typeof openOAuthStore>>;
  let idp: OidcServer;
  let broker: Broker; // real clock
  let later: Broker; // same database, clock two hours ahead: every 1 h access token has expired
  let down: Broker; // same database, token endpoint unreachable, clock ahead
  let config: { providerOverrides: Record<string, { issuer: string }>; clients: Record<string, { clientId: string; clientSecret: string }> };

  beforeAll(async () => {
    env = await openOAuthStore();
    const port = await freePort();
    idp = await startOidcServer({ redirectUris: [`http://127.0.0.1:${port}/oauth/callback`] });
    config = {
      providerOverrides: { "generic-oidc": { issuer: idp.issuer } },
      clients: { "generic-oidc": { clientId: idp.clientId, clientSecret: idp.clientSecret } },
    };
    broker = await startBroker(env.store, env.vault, { ...config, port });
    later = await startBroker(env.store, env.vault, config, { now: () => Date.now() + TWO_HOURS });
    down = await startBroker(
      env.store,
      env.vault,
      {
        ...config,
        providerOverrides: { "generic-oidc": { issuer: idp.issuer, tokenEndpoint: `http://127.0.0.1:${await freePort()}/token` } },
        timings: { refreshFailureBackoffMs: 60_000 },
      },
      { now: () => Date.now() + TWO_HOURS },
    );
  });
  afterAll(async () => {
    for (const b of [broker, later, down]) await b?.close();
    await idp?.close();
    await env?.close();
  });

  it("returns the stored token while it is fresh, without a token request", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    const before = idp.tokenRequests.refresh_token;
    const a = await broker.oauth.resolveAccessToken("acme", id);
    const b = await broker.oauth.resolveAccessToken("acme", id);
    expect(a.accessToken).toBe(b.accessToken);
    expect(a.generation).toBe(1);
    expect(idp.tokenRequests.refresh_token).toBe(before);
  });

  it("refreshes an expired token exactly once for 100 concurrent callers, persisting the rotated refresh token", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    const before = { ...idp.events, refresh: idp.tokenRequests.refresh_token };
    const results = await Promise.all(Array.from({ length: 100 }, () => later.oauth.resolveAccessToken("acme", id)));
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    expect(results.every((r) => r.generation === 2)).toBe(true);
    expect(idp.tokenRequests.refresh_token - before.refresh).toBe(1);
    expect(idp.events["refresh_token.consumed"] - before["refresh_token.consumed"]).toBe(1);
    expect(idp.events["grant.revoked"]).toBe(before["grant.revoked"]);
    expect((await idp.introspect(results[0].accessToken)).active).toBe(true);
    const latest = await env.store.credentials.latest("acme", id);
    expect(latest?.generation).toBe(2);
    expect(latest?.refreshToken).toBeDefined();
    expect(later.events.filter((e) => e.action === "refresh" && e.connection === id)).toEqual([
      { action: "refresh", tenant: "acme", connection: id, provider: "generic-oidc", decision: "allow", reason: "refreshed" },
    ]);

    // The rotated refresh token works: a forced refresh succeeds, and the grant is still alive.
    const forced = await later.oauth.resolveAccessToken("acme", id, { forceRefresh: true, staleGeneration: 2 });
    expect(forced.generation).toBe(3);
    // A caller that saw an older generation fail gets the newer one without another refresh.
    const refreshes = idp.tokenRequests.refresh_token;
    expect((await later.oauth.resolveAccessToken("acme", id, { forceRefresh: true, staleGeneration: 2 })).generation).toBe(3);
    expect(idp.tokenRequests.refresh_token).toBe(refreshes);
    expect(idp.events["grant.revoked"]).toBe(before["grant.revoked"]);
    expect((await idp.introspect(forced.accessToken)).active).toBe(true);
  });

  it("marks the connection needs_reauth on invalid_grant, with one token request and no retry loop", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    // The user revokes capvault at the provider: the grant is gone.
    const latest = (await env.store.credentials.latest("acme", id))!;
    const refreshToken = (await env.vault.open(latest.refreshToken!, { tenant: "acme", record: id, provider: "generic-oidc", field: "refresh_token" })).toString();
    const revoke = await fetch(`${idp.issuer}/token/revocation`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(`${idp.clientId}:${idp.clientSecret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: refreshToken }),
    });
    expect(revoke.status).toBe(200);

    const before = idp.tokenRequests.refresh_token;
    const errors = await Promise.all(Array.from({ length: 20 }, () => later.oauth.resolveAccessToken("acme", id).catch((e: unknown) => e)));
    for (const e of errors) {
      expect(CapvaultError.is(e, "CONNECTION_NEEDS_REAUTH")).toBe(true);
      expect((e as CapvaultError).code).toBe(status.FAILED_PRECONDITION);
    }
    expect(idp.tokenRequests.refresh_token - before).toBe(1);
    expect((await broker.oauth.getConnection("acme", id)).status).toBe("needs_reauth");
    // Later calls fail at once, with no token request at all.
    await expect(later.oauth.resolveAccessToken("acme", id)).rejects.toMatchObject({ reason: "CONNECTION_NEEDS_REAUTH" });
    await expect(broker.oauth.resolveAccessToken("acme", id, { forceRefresh: true })).rejects.toMatchObject({ reason: "CONNECTION_NEEDS_REAUTH" });
    expect(idp.tokenRequests.refresh_token - before).toBe(1);
    expect(later.events.at(-1)).toMatchObject({ action: "refresh", connection: id, decision: "deny", reason: "invalid_grant" });
  });

  it("reports REFRESH_FAILED when the provider is down, fails fast during the backoff, and keeps the connection", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    await expect(down.oauth.resolveAccessToken("acme", id)).rejects.toMatchObject({ reason: "REFRESH_FAILED" });
    const t0 = Date.now();
    await expect(down.oauth.resolveAccessToken("acme", id)).rejects.toMatchObject({ reason: "REFRESH_FAILED" });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await broker.oauth.getConnection("acme", id)).status).toBe("active");
    // Nothing reached the provider (connection refused): no evidence of a refresh whose answer was lost.
    expect(await env.store.leases.get(`refresh-sent:${id}:1:0`)).toBeUndefined();
    expect(down.logs.join("\n")).not.toContain(idp.clientSecret);
  });

  it("refreshes proactively from the sweeper: two sweepers at once still refresh each connection once", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    const before = { refresh: idp.tokenRequests.refresh_token, revoked: idp.events["grant.revoked"] };
    const generations = async () => {
      const out = new Map<string, number>();
      for (const c of await env.store.connections.list("acme")) {
        const latest = await env.store.credentials.latest("acme", c.id);
        if (latest) out.set(c.id, latest.generation);
      }
      return out;
    };
    const genBefore = await generations();
    const sweepers = [later.oauth.startSweeper({ intervalMs: 3600_000, spreadMs: 50 }), later.oauth.startSweeper({ intervalMs: 3600_000, spreadMs: 50 })];
    const scheduled = await Promise.all(sweepers.map((s) => s.runOnce()));
    expect(scheduled.every((n) => n >= 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 500)); // let the jittered refreshes run
    for (const s of sweepers) await s.stop();

    const genAfter = await generations();
    expect(genAfter.get(id)).toBe(2);
    let refreshed = 0;
    for (const [c, g] of genAfter) {
      const delta = g - (genBefore.get(c) ?? g);
      expect(delta).toBeLessThanOrEqual(1); // never two refreshes of one expiry
      refreshed += delta;
    }
    expect(idp.tokenRequests.refresh_token - before.refresh).toBe(refreshed);
    expect(idp.events["grant.revoked"]).toBe(before.revoked);
  });

  it("answers CONNECTION_NOT_FOUND and CONNECTION_PENDING", async () => {
    await expect(broker.oauth.resolveAccessToken("acme", "conn_nope")).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
    const { connectionId } = await broker.oauth.beginConnect({ tenant: "acme", user: "u", provider: "generic-oidc" });
    await expect(broker.oauth.resolveAccessToken("acme", connectionId)).rejects.toMatchObject({ reason: "CONNECTION_PENDING" });
    await expect(broker.oauth.resolveAccessToken("other-tenant", connectionId)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
  });
});
