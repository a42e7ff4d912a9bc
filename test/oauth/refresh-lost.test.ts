import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { connectThroughFlow } from "./support/connect-helper.js";
import { freePort } from "../support/free-port.js";
import { openOAuthStore, startBroker, type Broker } from "./support/oauth-harness.js";
import { startOidcServer, type OidcServer } from "./support/oidc-server.js";
import { startTokenRelay, type TokenRelay } from "./support/token-relay.js";
import { spawnWorker, type Worker } from "./support/worker-process.js";

const TWO_HOURS = 2 * 3600_000;
const LEASE = { refreshLeaseMs: 4000, tokenRequestTimeoutMs: 2500 };

/**
 * A refresh lost in flight: the provider has answered a refresh (and, if it rotates, spent the old refresh token) but
 * the broker never stored the answer. Injected for real: a relay forwards the refresh to oidc-provider and keeps its
 * answer back, then the broker PROCESS holding the lease is SIGKILLed (or, alive, times out). Another broker then
 * takes over with the old refresh token — the one retry.
 * - oidc-provider rotating refresh tokens (no reuse grace): the retry gets invalid_grant; the connection needs
 *   reauthorization with the reason REFRESH_LOST_IN_FLIGHT, recorded for audit; no further token request.
 * - oidc-provider not rotating: the retry succeeds and calls go on; the recovery is recorded for audit.
 */
describe("a refresh lost in flight", () => {
  let env: Awaited<ReturnType<typeof openOAuthStore>>;
  const closers: Array<() => Promise<unknown>> = [];
  const workers: Worker[] = [];

  beforeAll(async () => {
    env = await openOAuthStore();
  });
  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
    for (const close of closers.reverse()) await close();
    await env?.close();
  });

  /** oidc-provider (rotating or not), a relay in front of its token endpoint, and brokers on the shared database. */
  async function setup(rotateRefreshToken: boolean) {
    const port = await freePort();
    const idp = await startOidcServer({ redirectUris: [`http://127.0.0.1:${port}/oauth/callback`], rotateRefreshToken });
    closers.push(() => idp.close());
    const relay = await startTokenRelay(`${idp.issuer}/token`);
    closers.push(() => relay.close());
    const config = {
      providerOverrides: { "generic-oidc": { issuer: idp.issuer } },
      clients: { "generic-oidc": { clientId: idp.clientId, clientSecret: idp.clientSecret } },
    };
    const later = { now: () => Date.now() + TWO_HOURS }; // every 1 h access token has expired
    const broker = await startBroker(env.store, env.vault, { ...config, port });
    // Takes over after a lost refresh, straight to the provider.
    const taker = await startBroker(env.store, env.vault, { ...config, timings: LEASE }, later);
    // Refreshes through the relay, and stays alive: its request times out when the relay keeps the answer.
    const viaRelay = await startBroker(
      env.store,
      env.vault,
      {
        ...config,
        providerOverrides: { "generic-oidc": { issuer: idp.issuer, tokenEndpoint: relay.url } },
        timings: { ...LEASE, tokenRequestTimeoutMs: 1000, refreshFailureBackoffMs: 200 },
      },
      later,
    );
    for (const b of [broker, taker, viaRelay]) closers.push(() => b.close());
    return { idp, relay, broker, taker, viaRelay };
  }

  /** A broker process refreshes through the relay; the provider answers; the process is killed before storing. */
  async function loseRefreshInKilledProcess(s: { idp: OidcServer; relay: TokenRelay }, connection: string) {
    const w = spawnWorker({
      MONGODB_URI: env.db.uri,
      DB_NAME: env.db.name,
      ISSUER: s.idp.issuer,
      CLIENT_ID: s.idp.clientId,
      CLIENT_SECRET: s.idp.clientSecret,
      TENANT: "acme",
      CONNECTION: connection,
      CLOCK_OFFSET_MS: String(TWO_HOURS),
      TOKEN_ENDPOINT: s.relay.url,
      LEASE_MS: String(LEASE.refreshLeaseMs),
      TOKEN_TIMEOUT_MS: String(LEASE.tokenRequestTimeoutMs),
      CALLS: "1",
    });
    workers.push(w);
    await w.ready;
    s.relay.loseRefreshAnswers = 1;
    const lost = new Promise((r) => s.relay.once("lost", r));
    w.go();
    await lost; // the provider has answered the refresh; the broker never will see the answer
    w.child.kill("SIGKILL");
    await w.result.catch(() => undefined);
    expect(s.relay.lostAnswers.at(-1)).toBe(200);
    expect((await env.store.leases.get(`refresh:${connection}:1:0`))?.holder).toBe(`worker-${w.child.pid}`);
    expect((await env.store.credentials.latest("acme", connection))?.generation).toBe(1); // never stored
  }

  const refreshEvents = (b: Broker, connection: string) => b.events.filter((e) => e.action === "refresh" && e.connection === connection);
  const openRefreshToken = async (connection: string) => {
    const latest = (await env.store.credentials.latest("acme", connection))!;
    return (await env.vault.open(latest.refreshToken!, { tenant: "acme", record: connection, provider: "generic-oidc", field: "refresh_token" })).toString();
  };

  it("with refresh-token rotation: the one retry gets invalid_grant → REFRESH_LOST_IN_FLIGHT, needs_reauth, audited", async () => {
    const s = await setup(true);
    const id = await connectThroughFlow(s.broker, "generic-oidc");
    const oldRefreshToken = await openRefreshToken(id);
    const before = { ...s.idp.events, refresh: s.idp.tokenRequests.refresh_token };

    await loseRefreshInKilledProcess(s, id);
    expect(s.idp.tokenRequests.refresh_token - before.refresh).toBe(1);
    expect(s.idp.events["refresh_token.consumed"] - before["refresh_token.consumed"]).toBe(1); // rotated: the old one is spent

    // Callers at another broker wait for the lease to expire, then that broker retries the old refresh token once.
    const errors = await Promise.all(Array.from({ length: 10 }, () => s.taker.oauth.resolveAccessToken("acme", id).catch((e: unknown) => e)));
    for (const e of errors) {
      expect(CapvaultError.is(e, "REFRESH_LOST_IN_FLIGHT"), String(e)).toBe(true);
      expect((e as CapvaultError).code).toBe(status.FAILED_PRECONDITION);
      expect((e as CapvaultError).metadata).toMatchObject({ connection: id });
    }
    expect(s.idp.tokenRequests.refresh_token - before.refresh).toBe(2); // the lost refresh and exactly one retry
    expect(s.idp.events["grant.revoked"] - before["grant.revoked"]).toBe(1); // the reuse ended the grant
    expect((await s.broker.oauth.getConnection("acme", id)).status).toBe("needs_reauth");
    expect((await env.store.credentials.latest("acme", id))?.kind).toBe("needs_reauth");
    expect(refreshEvents(s.taker, id)).toEqual([
      { action: "refresh", tenant: "acme", connection: id, provider: "generic-oidc", decision: "deny", reason: "REFRESH_LOST_IN_FLIGHT" },
    ]);

    // Every broker says so from now on, at once, without a token request.
    await expect(s.broker.oauth.resolveAccessToken("acme", id)).rejects.toMatchObject({ reason: "REFRESH_LOST_IN_FLIGHT" });
    await expect(s.taker.oauth.resolveAccessToken("acme", id, { forceRefresh: true })).rejects.toMatchObject({ reason: "REFRESH_LOST_IN_FLIGHT" });
    expect(s.idp.tokenRequests.refresh_token - before.refresh).toBe(2);
    const said = [...s.taker.logs, ...s.broker.logs, JSON.stringify(s.taker.events)].join("\n");
    expect(said).not.toContain(oldRefreshToken);
    expect(said).not.toContain(s.idp.clientSecret);
  }, 60_000);

  it("without refresh-token rotation: the one retry succeeds, calls go on, and the recovery is audited", async () => {
    const s = await setup(false);
    const id = await connectThroughFlow(s.broker, "generic-oidc");
    const before = { ...s.idp.events, refresh: s.idp.tokenRequests.refresh_token };

    await loseRefreshInKilledProcess(s, id);
    expect(s.idp.tokenRequests.refresh_token - before.refresh).toBe(1);

    const results = await Promise.all(Array.from({ length: 10 }, () => s.taker.oauth.resolveAccessToken("acme", id)));
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    expect(results.every((r) => r.generation === 2)).toBe(true);
    expect(s.idp.tokenRequests.refresh_token - before.refresh).toBe(2); // the lost refresh and exactly one retry
    expect(s.idp.events["grant.revoked"] - before["grant.revoked"]).toBe(0);
    expect(s.idp.events["grant.error"] - before["grant.error"]).toBe(0);
    expect((await s.idp.introspect(results[0].accessToken)).active).toBe(true);
    expect(refreshEvents(s.taker, id)).toEqual([
      { action: "refresh", tenant: "acme", connection: id, provider: "generic-oidc", decision: "allow", reason: "refreshed_after_lost_refresh" },
    ]);
    expect(await env.store.leases.get(`refresh-sent:${id}:1:0`)).toBeUndefined(); // g+1 stored: no evidence left

    // Calls go on: the next refresh is an ordinary one.
    const next = await s.taker.oauth.resolveAccessToken("acme", id, { forceRefresh: true, staleGeneration: 2 });
    expect(next.generation).toBe(3);
    expect(refreshEvents(s.taker, id).at(-1)).toMatchObject({ decision: "allow", reason: "refreshed" });
    expect((await s.broker.oauth.getConnection("acme", id)).status).toBe("active");
  }, 60_000);

  it("a live broker whose refresh answer never arrives (timeout): the next attempt is the retry → REFRESH_LOST_IN_FLIGHT", async () => {
    const s = await setup(true);
    const id = await connectThroughFlow(s.broker, "generic-oidc");
    const before = { refresh: s.idp.tokenRequests.refresh_token };

    s.relay.loseRefreshAnswers = 1;
    await expect(s.viaRelay.oauth.resolveAccessToken("acme", id)).rejects.toMatchObject({ reason: "REFRESH_FAILED" });
    expect(s.relay.lostAnswers.at(-1)).toBe(200); // the provider did rotate
    expect((await s.broker.oauth.getConnection("acme", id)).status).toBe("active");

    await new Promise((r) => setTimeout(r, 300)); // the failure backoff
    await expect(s.viaRelay.oauth.resolveAccessToken("acme", id)).rejects.toMatchObject({ reason: "REFRESH_LOST_IN_FLIGHT" });
    expect(s.idp.tokenRequests.refresh_token - before.refresh).toBe(2);
    expect(refreshEvents(s.viaRelay, id).map((e) => [e.decision, e.reason])).toEqual([
      ["error", "provider_unavailable"],
      ["deny", "REFRESH_LOST_IN_FLIGHT"],
    ]);
    expect((await s.broker.oauth.getConnection("acme", id)).status).toBe("needs_reauth");
  }, 60_000);
});
