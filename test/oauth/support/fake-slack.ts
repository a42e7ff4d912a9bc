import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { readBody } from "./fake-github.js";

/**
 * A Slack-shaped OAuth server reproducing Slack's documented quirks: `oauth.v2.access` answers HTTP 200 with
 * `{"ok":false,"error":...}` on failure; the user token sits under `authed_user` (token_type "user") next to a bot
 * token (token_type "bot"); with token rotation, `expires_in: 43200` and `xoxe-1-` refresh tokens; comma-separated
 * scopes; `auth.revoke` revokes the token it is called with.
 */
export interface FakeSlack {
  url: string;
  clientId: string;
  clientSecret: string;
  tokenRequests: number;
  revoked: string[];
  /** Answer the next token request with this `ok:false` error. */
  failNextWith?: string;
  close(): Promise<void>;
}

export async function startFakeSlack(): Promise<FakeSlack> {
  const codes = new Map<string, { challenge: string; userScope: string }>();
  const refreshTokens = new Map<string, string>();
  const accessTokens = new Set<string>();
  const fake: FakeSlack = {
    url: "",
    clientId: "1111.2222",
    clientSecret: "slack-client-secret-DO-NOT-LEAK-44de",
    tokenRequests: 0,
    revoked: [],
    close: async () => {},
  };
  const userToken = (scope: string) => {
    const access = `xoxe.xoxp-1-${randomBytes(16).toString("hex")}`;
    const refresh = `xoxe-1-${randomBytes(24).toString("hex")}`;
    accessTokens.add(access);
    refreshTokens.set(refresh, scope);
    return { access, refresh };
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", fake.url);
    const body = await readBody(req);
    const json = (obj: unknown) => res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(obj));
    if (req.method === "GET" && url.pathname === "/oauth/v2/authorize") {
      const code = randomBytes(10).toString("hex");
      codes.set(code, { challenge: url.searchParams.get("code_challenge") ?? "", userScope: url.searchParams.get("user_scope") ?? "" });
      const redirect = new URL(url.searchParams.get("redirect_uri")!);
      redirect.searchParams.set("code", code);
      redirect.searchParams.set("state", url.searchParams.get("state") ?? "");
      return void res.writeHead(302, { location: redirect.href }).end();
    }
    if (req.method === "POST" && url.pathname === "/api/oauth.v2.access") {
      fake.tokenRequests++;
      const p = new URLSearchParams(body);
      if (fake.failNextWith) {
        const error = fake.failNextWith;
        fake.failNextWith = undefined;
        return json({ ok: false, error });
      }
      if (p.get("client_id") !== fake.clientId || p.get("client_secret") !== fake.clientSecret) return json({ ok: false, error: "bad_client_secret" });
      if (p.get("grant_type") === "refresh_token") {
        const scope = refreshTokens.get(p.get("refresh_token") ?? "");
        if (scope === undefined) return json({ ok: false, error: "invalid_refresh_token" });
        refreshTokens.delete(p.get("refresh_token")!);
        const t = userToken(scope);
        return json({ ok: true, app_id: "A1", access_token: t.access, refresh_token: t.refresh, expires_in: 43200, token_type: "user", scope, user_id: "U0ALICE", team: { id: "T0ACME", name: "Acme" } });
      }
      const code = codes.get(p.get("code") ?? "");
      codes.delete(p.get("code") ?? "");
      const challenge = createHash("sha256").update(p.get("code_verifier") ?? "").digest("base64url");
      if (!code || code.challenge !== challenge) return json({ ok: false, error: "invalid_code" });
      const t = userToken(code.userScope);
      return json({
        ok: true,
        app_id: "A1",
        authed_user: { id: "U0ALICE", scope: code.userScope, access_token: t.access, token_type: "user", refresh_token: t.refresh, expires_in: 43200 },
        scope: "commands",
        token_type: "bot",
        access_token: `xoxe.xoxb-1-${randomBytes(16).toString("hex")}`,
        bot_user_id: "B0BOT",
        refresh_token: `xoxe-1-${randomBytes(24).toString("hex")}`,
        expires_in: 43200,
        team: { id: "T0ACME", name: "Acme" },
        enterprise: null,
        is_enterprise_install: false,
      });
    }
    if (req.method === "POST" && url.pathname === "/api/auth.revoke") {
      const token = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
      if (!accessTokens.delete(token)) return json({ ok: false, error: "invalid_auth" });
      fake.revoked.push(token);
      return json({ ok: true, revoked: true });
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  fake.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  fake.close = () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); });
  return fake;
}
