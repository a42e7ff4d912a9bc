import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

/**
 * A GitHub-shaped OAuth server reproducing GitHub's documented quirks: the token endpoint answers form-encoded unless
 * `Accept: application/json`; errors come with HTTP 200 (`bad_verification_code`, `bad_refresh_token`,
 * `incorrect_client_credentials`); scopes are comma-separated; expiring user tokens (8 h) with refresh tokens that are
 * invalidated on use; `GET /user`; revocation by `DELETE /applications/{client_id}/token` with Basic auth.
 */
export interface FakeGitHub {
  url: string;
  clientId: string;
  clientSecret: string;
  tokenRequests: number;
  /** Accept headers seen at the token endpoint. */
  accepts: string[];
  revoked: string[];
  /** Answer authorization requests with error=access_denied. */
  deny: boolean;
  /** Answer the revocation endpoint with HTTP 503. */
  revocationDown: boolean;
  close(): Promise<void>;
}

export async function startFakeGitHub(): Promise<FakeGitHub> {
  const codes = new Map<string, { challenge: string; redirectUri: string; scope: string }>();
  const refreshTokens = new Map<string, string>(); // refresh → scope
  const accessTokens = new Set<string>();
  const fake: FakeGitHub = {
    url: "",
    clientId: "Iv1.fakegithub",
    clientSecret: "github-client-secret-DO-NOT-LEAK-91c2",
    tokenRequests: 0,
    accepts: [],
    revoked: [],
    deny: false,
    revocationDown: false,
    close: async () => {},
  };

  const issue = (scope: string) => {
    const access = `ghu_${randomBytes(18).toString("hex")}`;
    const refresh = `ghr_${randomBytes(30).toString("hex")}`;
    accessTokens.add(access);
    refreshTokens.set(refresh, scope);
    return { access_token: access, expires_in: "28800", refresh_token: refresh, refresh_token_expires_in: "15811200", scope, token_type: "bearer" };
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", fake.url);
    const body = await readBody(req);
    if (req.method === "GET" && url.pathname === "/login/oauth/authorize") {
      const redirect = new URL(url.searchParams.get("redirect_uri")!);
      redirect.searchParams.set("state", url.searchParams.get("state") ?? "");
      if (fake.deny) {
        redirect.searchParams.set("error", "access_denied");
        redirect.searchParams.set("error_description", "The user has denied your application access.");
      } else {
        const code = randomBytes(10).toString("hex");
        codes.set(code, {
          challenge: url.searchParams.get("code_challenge") ?? "",
          redirectUri: url.searchParams.get("redirect_uri")!,
          scope: (url.searchParams.get("scope") ?? "").split(" ").join(","),
        });
        redirect.searchParams.set("code", code);
      }
      res.writeHead(302, { location: redirect.href }).end();
      return;
    }
    if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
      fake.tokenRequests++;
      fake.accepts.push(String(req.headers.accept ?? ""));
      const p = new URLSearchParams(body);
      const answer = (obj: Record<string, string>) => {
        // Quirk: form-encoded unless JSON is asked for; HTTP 200 even for errors.
        if (String(req.headers.accept ?? "").includes("application/json")) {
          res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(obj));
        } else {
          res.writeHead(200, { "content-type": "application/x-www-form-urlencoded; charset=utf-8" }).end(new URLSearchParams(obj).toString());
        }
      };
      if (p.get("client_id") !== fake.clientId || p.get("client_secret") !== fake.clientSecret) {
        return answer({ error: "incorrect_client_credentials", error_description: "The client_id and/or client_secret passed are incorrect." });
      }
      if (p.get("grant_type") === "refresh_token") {
        const scope = refreshTokens.get(p.get("refresh_token") ?? "");
        if (scope === undefined) return answer({ error: "bad_refresh_token", error_description: "The refresh token passed is incorrect or expired." });
        refreshTokens.delete(p.get("refresh_token")!);
        return answer(issue(scope));
      }
      const code = codes.get(p.get("code") ?? "");
      codes.delete(p.get("code") ?? "");
      const challenge = createHash("sha256").update(p.get("code_verifier") ?? "").digest("base64url");
      if (!code || code.challenge !== challenge || code.redirectUri !== p.get("redirect_uri")) {
        return answer({ error: "bad_verification_code", error_description: "The code passed is incorrect or expired." });
      }
      return answer(issue(code.scope));
    }
    if (req.method === "GET" && url.pathname === "/user") {
      const token = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
      if (!accessTokens.has(token)) return void res.writeHead(401).end('{"message":"Bad credentials"}');
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ login: "octocat", id: 1 }));
      return;
    }
    const m = /^\/applications\/([^/]+)\/token$/.exec(url.pathname);
    if (req.method === "DELETE" && m) {
      if (fake.revocationDown) return void res.writeHead(503).end();
      const basic = `Basic ${Buffer.from(`${fake.clientId}:${fake.clientSecret}`).toString("base64")}`;
      if (m[1] !== fake.clientId || req.headers.authorization !== basic) return void res.writeHead(404).end();
      const token = (JSON.parse(body || "{}") as { access_token?: string }).access_token ?? "";
      if (!accessTokens.delete(token)) return void res.writeHead(422).end();
      fake.revoked.push(token);
      res.writeHead(204).end();
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  fake.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  fake.close = () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); });
  return fake;
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString()));
  });
}

export type { ServerResponse };
