import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COLLECTIONS } from "../../src/store/mongodb/collections.js";
import { connectThroughFlow } from "./support/connect-helper.js";
import { freePort } from "../support/free-port.js";
import { openOAuthStore, startBroker, type Broker } from "./support/oauth-harness.js";
import { startOidcServer, type OidcServer } from "./support/oidc-server.js";

/** Disconnect: RFC 7009 revocation at oidc-provider, always a local delete, failures recorded rather than blocking. */
describe("disconnect against oidc-provider", () => {
  let env: Awaited<ReturnType<typeof openOAuthStore>>;
  let idp: OidcServer;
  let broker: Broker;

  beforeAll(async () => {
    env = await openOAuthStore();
    const port = await freePort();
    idp = await startOidcServer({ redirectUris: [`http://127.0.0.1:${port}/oauth/callback`] });
    broker = await startBroker(env.store, env.vault, {
      port,
      providerOverrides: { "generic-oidc": { issuer: idp.issuer } },
      clients: { "generic-oidc": { clientId: idp.clientId, clientSecret: idp.clientSecret } },
    });
  });
  afterAll(async () => {
    await broker?.close();
    await idp?.close();
    await env?.close();
  });

  it("revokes at the provider (the access token then introspects inactive) and deletes everything locally", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    const { accessToken } = await broker.oauth.resolveAccessToken("acme", id);
    expect((await idp.introspect(accessToken)).active).toBe(true);
    const revokedBefore = idp.events["grant.revoked"];

    expect(await broker.oauth.disconnect("acme", id)).toEqual({ revokedAtProvider: true });
    expect((await idp.introspect(accessToken)).active).toBe(false);
    expect(idp.events["grant.revoked"] - revokedBefore).toBeGreaterThanOrEqual(1);

    await expect(broker.oauth.getConnection("acme", id)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
    await expect(broker.oauth.resolveAccessToken("acme", id)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
    expect(await env.db.db.collection(COLLECTIONS.credentials).countDocuments({ connection: id })).toBe(0);
    expect(await env.store.dataKeys.findByRecord("acme", id)).toBeUndefined();
    expect(broker.events.at(-1)).toMatchObject({ action: "disconnect", connection: id, decision: "allow", reason: "revoked" });
    await expect(broker.oauth.disconnect("acme", id)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
  });

  it("lists connection metadata without secrets", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc", "acme", "u-bob");
    const list = await broker.oauth.listConnections("acme", "u-bob");
    expect(list.map((c) => c.id)).toEqual([id]);
    expect(Object.keys(list[0]).sort()).toEqual(["account", "createdAt", "expiresAt", "id", "provider", "scopes", "status", "tenant", "updatedAt", "user"]);
    expect(await broker.oauth.listConnections("other-tenant")).toEqual([]);
  });

  it("with the provider down: still deletes locally, records the failure, returns revokedAtProvider=false", async () => {
    const id = await connectThroughFlow(broker, "generic-oidc");
    await idp.close(); // the provider is gone (discovery metadata is already cached)
    const t0 = Date.now();
    expect(await broker.oauth.disconnect("acme", id)).toEqual({ revokedAtProvider: false });
    expect(Date.now() - t0).toBeLessThan(6000);
    await expect(broker.oauth.getConnection("acme", id)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
    expect(await env.db.db.collection(COLLECTIONS.credentials).countDocuments({ connection: id })).toBe(0);
    const failures = await broker.oauth.listDisconnectFailures("acme");
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ tenant: "acme", connection: id, provider: "generic-oidc", reason: "provider unreachable" });
    expect(broker.events.at(-1)).toMatchObject({ action: "disconnect", decision: "error" });
    expect(broker.logs.join("\n")).not.toContain(idp.clientSecret);
  });
});
