import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeGitHubTokenResponse } from "../../src/oauth/github-token-normalizer.js";
import { normalizeSlackTokenResponse } from "../../src/oauth/slack-token-normalizer.js";
import { followToCallback, openCallback } from "./support/authorize-driver.js";
import { connectThroughFlow } from "./support/connect-helper.js";
import { startFakeGitHub, type FakeGitHub } from "./support/fake-github.js";
import { startFakeSlack, type FakeSlack } from "./support/fake-slack.js";
import { freePort } from "../support/free-port.js";
import { openOAuthStore, startBroker, type Broker } from "./support/oauth-harness.js";

const THIRTEEN_HOURS = 13 * 3600_000; // past GitHub's 8 h and Slack's 12 h access tokens

/** GitHub- and Slack-shaped servers reproducing their documented token-endpoint quirks, through the whole module. */
describe("GitHub and Slack quirks", () => {
  let env: Awaited<ReturnType<typeof openOAuthStore>>;
  let github: FakeGitHub;
  let slack: FakeSlack;
  let broker: Broker;
  let later: Broker;

  beforeAll(async () => {
    env = await openOAuthStore();
    await env.store.tenants.insert({ id: "acme", name: "Acme Robotics", createdAt: new Date() });
    github = await startFakeGitHub();
    slack = await startFakeSlack();
    const config = {
      providerOverrides: {
        github: {
          authorizationEndpoint: `${github.url}/login/oauth/authorize`,
          tokenEndpoint: `${github.url}/login/oauth/access_token`,
          revocationEndpoint: `${github.url}/applications/{client_id}/token`,
          apiBaseUrl: github.url,
        },
        slack: {
          authorizationEndpoint: `${slack.url}/oauth/v2/authorize`,
          tokenEndpoint: `${slack.url}/api/oauth.v2.access`,
          revocationEndpoint: `${slack.url}/api/auth.revoke`,
          apiBaseUrl: `${slack.url}/api`,
        },
      },
      clients: {
        github: { clientId: github.clientId, clientSecret: github.clientSecret },
        slack: { clientId: slack.clientId, clientSecret: slack.clientSecret },
      },
    };
    broker = await startBroker(env.store, env.vault, { ...config, port: await freePort() });
    later = await startBroker(env.store, env.vault, config, { now: () => Date.now() + THIRTEEN_HOURS });
  });
  afterAll(async () => {
    await broker?.close();
    await later?.close();
    await github?.close();
    await slack?.close();
    await env?.close();
  });

  describe("GitHub", () => {
    it("connects: asks for JSON, splits comma-separated scopes, finds the login, says so on the page", async () => {
      const { authorizationUrl, connectionId } = await broker.oauth.beginConnect({ tenant: "acme", user: "u1", provider: "github" });
      const page = await openCallback(await followToCallback(authorizationUrl, broker.redirectUri));
      expect(page.text).toContain("Your GitHub account octocat is now connected to Acme Robotics. You can close this tab.");
      const c = await broker.oauth.getConnection("acme", connectionId);
      expect(c).toMatchObject({ status: "active", account: "octocat", scopes: ["read:user", "repo"] });
      expect(github.accepts.at(-1)).toContain("application/json");
      const t = await broker.oauth.resolveAccessToken("acme", connectionId);
      expect(t.accessToken).toMatch(/^ghu_/);
    });

    it("normalises a form-encoded answer (GitHub without Accept: application/json)", async () => {
      const raw = new Response("access_token=ghu_x&expires_in=28800&refresh_token=ghr_y&scope=repo%2Cgist&token_type=bearer", {
        headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
      });
      const res = await normalizeGitHubTokenResponse(raw);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ access_token: "ghu_x", expires_in: 28800, refresh_token: "ghr_y", scope: "repo gist", token_type: "bearer" });
      const err = await normalizeGitHubTokenResponse(new Response("error=bad_verification_code&error_description=expired", { headers: { "content-type": "application/x-www-form-urlencoded" } }));
      expect(err.status).toBe(400);
      expect(await err.json()).toMatchObject({ error: "invalid_grant", provider_error: "bad_verification_code" });
    });

    it("treats an HTTP-200 error answer to the code exchange as a failure with a clear page", async () => {
      const { authorizationUrl, connectionId } = await broker.oauth.beginConnect({ tenant: "acme", user: "u1", provider: "github" });
      const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
      callbackUrl.searchParams.set("code", "not-a-real-code");
      const before = github.tokenRequests;
      const page = await openCallback(callbackUrl);
      expect(page.status).toBe(400);
      expect(page.text).toContain("GitHub did not accept the sign-in (it said: invalid_grant)");
      expect(github.tokenRequests - before).toBe(1);
      await expect(broker.oauth.getConnection("acme", connectionId)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
    });

    it("refreshes an 8 h token; a dead refresh token (HTTP 200 bad_refresh_token) → needs_reauth, one request", async () => {
      const id = await connectThroughFlow(broker, "github");
      const first = await later.oauth.resolveAccessToken("acme", id);
      expect(first.generation).toBe(2);
      expect(first.accessToken).toMatch(/^ghu_/);
      // The user revokes the app on github.com: every refresh token is gone.
      const gen2 = (await env.store.credentials.latest("acme", id))!;
      const rt = (await env.vault.open(gen2.refreshToken!, { tenant: "acme", record: id, provider: "github", field: "refresh_token" })).toString();
      await fetch(`${github.url}/login/oauth/access_token`, {
        method: "POST",
        headers: { accept: "application/json" },
        body: new URLSearchParams({ client_id: github.clientId, client_secret: github.clientSecret, grant_type: "refresh_token", refresh_token: rt }),
      });
      const before = github.tokenRequests;
      await expect(later.oauth.resolveAccessToken("acme", id, { forceRefresh: true })).rejects.toMatchObject({ reason: "CONNECTION_NEEDS_REAUTH" });
      await expect(later.oauth.resolveAccessToken("acme", id, { forceRefresh: true })).rejects.toMatchObject({ reason: "CONNECTION_NEEDS_REAUTH" });
      expect(github.tokenRequests - before).toBe(1);
      expect((await broker.oauth.getConnection("acme", id)).status).toBe("needs_reauth");
    });

    it("disconnect revokes with DELETE /applications/{client_id}/token and Basic auth, and deletes locally", async () => {
      const id = await connectThroughFlow(broker, "github");
      const token = (await broker.oauth.resolveAccessToken("acme", id)).accessToken;
      expect(await broker.oauth.disconnect("acme", id)).toEqual({ revokedAtProvider: true });
      expect(github.revoked).toContain(token);
      await expect(broker.oauth.getConnection("acme", id)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
      expect(await env.store.credentials.latest("acme", id)).toBeUndefined();
    });

    it("disconnect with the revocation endpoint failing still deletes locally and records the failure", async () => {
      const id = await connectThroughFlow(broker, "github");
      github.revocationDown = true;
      try {
        expect(await broker.oauth.disconnect("acme", id)).toEqual({ revokedAtProvider: false });
      } finally {
        github.revocationDown = false;
      }
      await expect(broker.oauth.getConnection("acme", id)).rejects.toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
      const failures = await broker.oauth.listDisconnectFailures("acme");
      expect(failures.at(-1)).toMatchObject({ connection: id, provider: "github", reason: "HTTP 503" });
    });
  });

  describe("Slack", () => {
    it("connects with the user token nested under authed_user, comma scopes and the team as account", async () => {
      const { authorizationUrl, connectionId } = await broker.oauth.beginConnect({ tenant: "acme", user: "u1", provider: "slack" });
      const auth = new URL(authorizationUrl);
      expect(auth.searchParams.get("user_scope")).toBe("channels:read,chat:write,users:read");
      const page = await openCallback(await followToCallback(authorizationUrl, broker.redirectUri));
      expect(page.text).toContain("Your Slack account U0ALICE (Acme) is now connected to Acme Robotics.");
      const c = await broker.oauth.getConnection("acme", connectionId);
      expect(c.scopes).toEqual(["channels:read", "chat:write", "users:read"]);
      expect(c.expiresAt!.getTime() - Date.now()).toBeGreaterThan(43_000_000);
      const t = await broker.oauth.resolveAccessToken("acme", connectionId);
      expect(t.accessToken).toMatch(/^xoxe\.xoxp-/); // the user token, not the bot token
      const rt = (await env.store.credentials.latest("acme", connectionId))!.refreshToken!;
      expect((await env.vault.open(rt, { tenant: "acme", record: connectionId, provider: "slack", field: "refresh_token" })).toString()).toMatch(/^xoxe-1-/);
    });

    it("rotates on refresh (12 h tokens); ok:false invalid_refresh_token → needs_reauth; other ok:false → REFRESH_FAILED", async () => {
      const id = await connectThroughFlow(broker, "slack");
      const r = await later.oauth.resolveAccessToken("acme", id);
      expect(r.generation).toBe(2);
      expect(r.accessToken).toMatch(/^xoxe\.xoxp-/);

      slack.failNextWith = "ratelimited";
      await expect(later.oauth.resolveAccessToken("acme", id, { forceRefresh: true })).rejects.toMatchObject({ reason: "REFRESH_FAILED" });
      expect((await broker.oauth.getConnection("acme", id)).status).toBe("active");

      const id2 = await connectThroughFlow(broker, "slack");
      slack.failNextWith = "invalid_refresh_token";
      const before = slack.tokenRequests;
      await expect(later.oauth.resolveAccessToken("acme", id2)).rejects.toMatchObject({ reason: "CONNECTION_NEEDS_REAUTH" });
      await expect(later.oauth.resolveAccessToken("acme", id2)).rejects.toMatchObject({ reason: "CONNECTION_NEEDS_REAUTH" });
      expect(slack.tokenRequests - before).toBe(1);
    });

    it("normalises ok:false answers into OAuth errors", async () => {
      const res = await normalizeSlackTokenResponse(Response.json({ ok: false, error: "invalid_code" }), "user");
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: "invalid_grant", provider_error: "invalid_code" });
    });

    it("refuses an ok:false code exchange with a clear page", async () => {
      const { authorizationUrl } = await broker.oauth.beginConnect({ tenant: "acme", user: "u1", provider: "slack" });
      const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
      slack.failNextWith = "invalid_code";
      const page = await openCallback(callbackUrl);
      expect(page.status).toBe(400);
      expect(page.text).toContain("Slack did not accept the sign-in");
    });

    it("disconnect calls auth.revoke with the token", async () => {
      const id = await connectThroughFlow(broker, "slack");
      const token = (await broker.oauth.resolveAccessToken("acme", id)).accessToken;
      expect(await broker.oauth.disconnect("acme", id)).toEqual({ revokedAtProvider: true });
      expect(slack.revoked).toContain(token);
    });
  });

  it("never writes a token or client secret to logs or events", async () => {
    const all = [...broker.logs, ...later.logs, JSON.stringify(broker.events), JSON.stringify(later.events)].join("\n");
    for (const secret of [github.clientSecret, slack.clientSecret, "ghu_", "ghr_", "xoxe"]) expect(all).not.toContain(secret);
  });
});
