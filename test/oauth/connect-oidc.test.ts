import { BSON } from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { COLLECTIONS } from "../../src/store/mongodb/collections.js";
import { followToCallback, openCallback } from "./support/authorize-driver.js";
import { freePort } from "../support/free-port.js";
import { openOAuthStore, startBroker, type Broker } from "./support/oauth-harness.js";
import { startOidcServer, type OidcServer } from "./support/oidc-server.js";

/**
 * The connect flow end to end against oidc-provider 9.13 (PKCE required, rotation on), driven by code: follow the
 * authorization URL over HTTP, let the test's interaction route log in and consent, hit the callback.
 * Also: every way a callback must be refused, each with a clear page and NO token request.
 */
describe("connect against oidc-provider", () => {
  let env: Awaited<ReturnType<typeof openOAuthStore>>;
  let idp: OidcServer;
  let broker: Broker;
  let other: Broker; // a second broker with a different redirect URI, same database
  const pages: string[] = [];

  beforeAll(async () => {
    env = await openOAuthStore();
    await env.store.tenants.insert({ id: "acme", name: "Acme Robotics", createdAt: new Date() });
    const port = await freePort();
    const otherPort = await freePort();
    const redirectUri = `http://127.0.0.1:${port}/oauth/callback`;
    const otherRedirectUri = `http://127.0.0.1:${otherPort}/oauth/callback`;
    idp = await startOidcServer({ redirectUris: [redirectUri, otherRedirectUri] });
    const config = {
      providerOverrides: { "generic-oidc": { issuer: idp.issuer } },
      clients: { "generic-oidc": { clientId: idp.clientId, clientSecret: idp.clientSecret } },
    };
    broker = await startBroker(env.store, env.vault, { ...config, port });
    other = await startBroker(env.store, env.vault, { ...config, port: otherPort });
  });
  afterAll(async () => {
    await broker?.close();
    await other?.close();
    await idp?.close();
    await env?.close();
  });
  beforeEach(() => {
    idp.interaction = "auto";
  });

  const begin = () => broker.oauth.beginConnect({ tenant: "acme", user: "u-alice", provider: "generic-oidc" });
  const tokenRequests = () => idp.tokenRequests.authorization_code;
  const visit = async (url: URL | string) => {
    const page = await openCallback(url);
    pages.push(page.html);
    return page;
  };

  it("connects: connection active with the granted scopes, account from userinfo, a page that says so", async () => {
    const before = tokenRequests();
    const { authorizationUrl, connectionId, expiresAt } = await begin();
    expect(expiresAt.getTime()).toBeGreaterThan(Date.now());
    const pending = await broker.oauth.getConnection("acme", connectionId);
    expect(pending.status).toBe("pending");

    const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
    expect(callbackUrl.searchParams.get("iss")).toBe(idp.issuer); // RFC 9207: oidc-provider sends iss
    const page = await visit(callbackUrl);
    expect(page.status).toBe(200);
    expect(page.text).toContain("Your Example Identity Provider account alice@example.com is now connected to Acme Robotics.");
    expect(page.text).toContain("You can close this tab.");

    const c = await broker.oauth.getConnection("acme", connectionId);
    expect(c.status).toBe("active");
    expect(c.scopes.sort()).toEqual(["email", "offline_access", "openid"]);
    expect(c.account).toBe("alice@example.com");
    expect(c.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 3000_000);
    expect(tokenRequests() - before).toBe(1);
    expect(idp.events["grant.success"]).toBeGreaterThanOrEqual(1);

    const token = await broker.oauth.resolveAccessToken("acme", connectionId);
    expect((await idp.introspect(token.accessToken)).active).toBe(true);
    expect(broker.events.at(-1)).toMatchObject({ action: "connect", decision: "allow", connection: connectionId });

    // Nothing secret in logs, pages, events or the database (tokens are sealed, the state is stored as a hash).
    const state = new URL(authorizationUrl).searchParams.get("state")!;
    const dump = await dumpDatabase();
    for (const secret of [token.accessToken, idp.clientSecret, callbackUrl.searchParams.get("code")!, state]) {
      expect(dump).not.toContain(secret);
      expect(broker.logs.join("\n")).not.toContain(secret);
      expect(pages.join("\n")).not.toContain(secret);
      expect(JSON.stringify(broker.events)).not.toContain(secret);
    }
  });

  it("sends PKCE S256 with a fresh verifier and an unguessable state every time", async () => {
    const a = new URL((await begin()).authorizationUrl);
    const b = new URL((await begin()).authorizationUrl);
    for (const u of [a, b]) {
      expect(u.searchParams.get("code_challenge_method")).toBe("S256");
      expect(u.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(u.searchParams.get("state")!.length).toBeGreaterThanOrEqual(43); // 32 random bytes
      expect(u.searchParams.get("redirect_uri")).toBe(broker.redirectUri);
      expect(u.searchParams.get("prompt")).toBe("consent");
    }
    expect(a.searchParams.get("code_challenge")).not.toBe(b.searchParams.get("code_challenge"));
    expect(a.searchParams.get("state")).not.toBe(b.searchParams.get("state"));
    const stored = await env.db.db.collection(COLLECTIONS.oauthStates).find({}).toArray();
    expect(stored.every((s) => s.codeVerifier && typeof s.codeVerifier.ct === "string")).toBe(true);
  });

  it("refuses a replayed state (the second use of a callback URL) without a second token request", async () => {
    const { authorizationUrl, connectionId } = await begin();
    const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
    expect((await visit(callbackUrl)).status).toBe(200);
    const before = tokenRequests();
    const replay = await visit(callbackUrl);
    expect(replay.status).toBe(400);
    expect(replay.text).toContain("This link was already used");
    // ...even through another broker process's listener (the consumption marker is in the shared database).
    const replayElsewhere = await visit(callbackUrl.href.replace(broker.redirectUri, other.redirectUri));
    expect(replayElsewhere.text).toContain("This link was already used");
    expect(tokenRequests()).toBe(before);
    expect((await broker.oauth.getConnection("acme", connectionId)).status).toBe("active");
  });

  it("refuses a forged state and a missing state without any token request", async () => {
    const before = tokenRequests();
    const forged = await visit(`${broker.redirectUri}?code=abc&state=${"A".repeat(43)}&iss=${encodeURIComponent(idp.issuer)}`);
    expect(forged.status).toBe(400);
    expect(forged.text).toContain("We don't recognise this sign-in request");
    const missing = await visit(`${broker.redirectUri}?code=abc`);
    expect(missing.text).toContain("This link is not valid");
    expect(tokenRequests()).toBe(before);
  });

  it("refuses a response whose iss is not the provider the state belongs to (mix-up), and one without iss", async () => {
    for (const tamper of [(u: URL) => u.searchParams.set("iss", "https://evil.example"), (u: URL) => u.searchParams.delete("iss")]) {
      const { authorizationUrl, connectionId } = await begin();
      const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
      tamper(callbackUrl);
      const before = tokenRequests();
      const page = await visit(callbackUrl);
      expect(page.status).toBe(400);
      expect(page.text).toContain("Unexpected sign-in service");
      expect(tokenRequests()).toBe(before);
      await expect(broker.oauth.getConnection("acme", connectionId)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
    }
  });

  it("refuses a callback arriving at a different redirect URI than the state was created for", async () => {
    const { authorizationUrl } = await begin();
    const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
    const before = tokenRequests();
    const page = await visit(callbackUrl.href.replace(broker.redirectUri, other.redirectUri));
    expect(page.status).toBe(400);
    expect(page.text).toContain("arrived at a different address");
    expect(tokenRequests()).toBe(before);
  });

  it("refuses a state whose PKCE verifier is missing", async () => {
    const { authorizationUrl } = await begin();
    await env.db.db.collection(COLLECTIONS.oauthStates).updateMany({}, { $unset: { codeVerifier: "" } });
    const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
    const before = tokenRequests();
    const page = await visit(callbackUrl);
    expect(page.text).toContain("missing information");
    expect(tokenRequests()).toBe(before);
  });

  it("refuses an expired state", async () => {
    const { authorizationUrl } = await begin();
    await env.db.db.collection(COLLECTIONS.oauthStates).updateMany({}, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
    const before = tokenRequests();
    const page = await visit(callbackUrl);
    expect(page.text).toContain("expired");
    expect(tokenRequests()).toBe(before);
  });

  it("shows the provider's refusal (access_denied) in plain words, without a token request", async () => {
    idp.interaction = "deny";
    const { authorizationUrl, connectionId } = await begin();
    const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
    expect(callbackUrl.searchParams.get("error")).toBe("access_denied");
    const before = tokenRequests();
    const page = await visit(callbackUrl);
    expect(page.status).toBe(400);
    expect(page.text).toContain("You chose not to give access to your Example Identity Provider account");
    expect(tokenRequests()).toBe(before);
    await expect(broker.oauth.getConnection("acme", connectionId)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
    expect(broker.events.at(-1)).toMatchObject({ action: "connect", decision: "deny", reason: "access_denied" });
  });

  it("answers 404 off the callback path and 405 for other methods, with safe headers", async () => {
    expect((await fetch(`${broker.callback.url}/other`)).status).toBe(404);
    const post = await fetch(broker.redirectUri, { method: "POST" });
    expect(post.status).toBe(405);
    const res = await fetch(`${broker.redirectUri}?state=x`);
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("cache-control")).toBe("no-store");
  });

  async function dumpDatabase(): Promise<string> {
    const parts: string[] = [];
    for (const c of await env.db.db.listCollections().toArray()) {
      parts.push(BSON.EJSON.stringify(await env.db.db.collection(c.name).find({}).toArray()));
    }
    return parts.join("\n");
  }
});
