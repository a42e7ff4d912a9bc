import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectThroughFlow } from "./support/connect-helper.js";
import { freePort } from "../support/free-port.js";
import { openOAuthStore, startBroker, type Broker } from "./support/oauth-harness.js";
import { startOidcServer, type OidcServer } from "./support/oidc-server.js";
import { startTokenRelay, type TokenRelay } from "./support/token-relay.js";
import { spawnWorker, type Worker } from "./support/worker-process.js";

const TWO_HOURS = String(2 * 3600_000);

/**
 * Several broker PROCESSES sharing one FerretDB database refresh one connection: exactly one refresh reaches
 * oidc-provider (which revokes the whole grant if a rotated refresh token is ever reused), and a broker killed while
 * holding the refresh lease is taken over after the lease expires.
 */
describe("refresh across broker processes", () => {
  let env: Awaited<ReturnType<typeof openOAuthStore>>;
  let idp: OidcServer;
  let broker: Broker;
  let relay: TokenRelay;
  const workers: Worker[] = [];

  beforeAll(async () => {
    env = await openOAuthStore();
    const port = await freePort();
    idp = await startOidcServer({ redirectUris: [`http://127.0.0.1:${port}/oauth/callback`] });
    relay = await startTokenRelay(`${idp.issuer}/token`);
    broker = await startBroker(env.store, env.vault, {
      port,
      providerOverrides: { "generic-oidc": { issuer: idp.issuer } },
      clients: { "generic-oidc": { clientId: idp.clientId, clientSecret: idp.clientSecret } },
    });
  });
  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
    await broker?.close();
    await relay?.close();
    await idp?.close();
    await env?.close();
  });

  const workerEnv = (connection: string, extra: Record<string, string> = {}) => ({
    MONGODB_URI: env.db.uri,
    DB_NAME: env.db.name,
    ISSUER: idp.issuer,
    CLIENT_ID: idp.clientId,
    CLIENT_SECRET: idp.clientSecret,
    TENANT: "acme",
    CONNECTION: connection,
    CLOCK_OFFSET_MS: TWO_HOURS, // every worker sees the 1 h access token as expired
    ...extra,
  });
  const start = (e: Record<string, string>) => {
    const w = spawnWorker(e);
    workers.push(w);
    return w;
  };

  it("4 processes × 200 concurrent calls on one expired connection → exactly 1 refresh, 0 grant revocations", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    const before = { ...idp.events, refresh: idp.tokenRequests.refresh_token };
    const procs = Array.from({ length: 4 }, () => start(workerEnv(id, { CALLS: "200" })));
    await Promise.all(procs.map((p) => p.ready));
    for (const p of procs) p.go();
    const results = await Promise.all(procs.map((p) => p.result));

    expect(new Set(results.map((r) => r.pid)).size).toBe(4);
    for (const r of results) {
      expect(r.failed, `worker ${r.pid} failures: ${r.reasons.join(",")}`).toBe(0);
      expect(r.ok).toBe(200);
      expect(r.generations).toEqual([2]);
    }
    expect(new Set(results.flatMap((r) => r.fingerprints)).size).toBe(1); // every use got the one new token
    expect(idp.tokenRequests.refresh_token - before.refresh).toBe(1);
    expect(idp.events["refresh_token.consumed"] - before["refresh_token.consumed"]).toBe(1);
    expect(idp.events["grant.revoked"] - before["grant.revoked"]).toBe(0);
    expect(idp.events["grant.error"] - before["grant.error"]).toBe(0);
    expect((await env.store.credentials.latest("acme", id))?.generation).toBe(2);
  }, 120_000);

  it("a process SIGKILLed while holding the lease: another completes the refresh after the lease expires; the grant survives", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    const before = { ...idp.events, refresh: idp.tokenRequests.refresh_token };
    const timing = { TOKEN_ENDPOINT: relay.url, LEASE_MS: "3000", TOKEN_TIMEOUT_MS: "2000" };

    relay.holdRefreshes = 1;
    const holder = start(workerEnv(id, { ...timing, CALLS: "1" }));
    await holder.ready;
    const held = new Promise((r) => relay.once("held", r));
    holder.go();
    await held; // the holder's refresh request is stuck in the relay, the lease is taken
    const lease = await env.store.leases.get(`refresh:${id}:1:0`);
    expect(lease?.holder).toBe(`worker-${holder.child.pid}`);
    holder.child.kill("SIGKILL");
    await holder.result.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(relay.dropped).toBe(1); // the killed process's request never reached the provider
    expect(idp.tokenRequests.refresh_token).toBe(before.refresh);

    const t0 = Date.now();
    const taker = start(workerEnv(id, { ...timing, CALLS: "20" }));
    await taker.ready;
    taker.go();
    const r = await taker.result;
    expect(r.failed, r.reasons.join(",")).toBe(0);
    expect(r.generations).toEqual([2]);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(idp.tokenRequests.refresh_token - before.refresh).toBe(1);
    expect(await env.store.leases.get(`refresh:${id}:1:1`)).toMatchObject({ holder: `worker-${taker.child.pid}` });

    // The stored (rotated) refresh token still works, and nothing was revoked.
    const again = await broker.oauth.resolveAccessToken("acme", id, { forceRefresh: true });
    expect(again.generation).toBe(3);
    expect((await idp.introspect(again.accessToken)).active).toBe(true);
    expect(idp.events["grant.revoked"] - before["grant.revoked"]).toBe(0);
    expect(idp.events["grant.error"] - before["grant.error"]).toBe(0);
  }, 120_000);
});
