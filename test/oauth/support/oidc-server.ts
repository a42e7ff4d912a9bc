import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import Provider from "oidc-provider";

/** The events the tests count. */
export const COUNTED_EVENTS = ["grant.success", "grant.error", "grant.revoked", "refresh_token.consumed", "refresh_token.destroyed"] as const;
export type CountedEvent = (typeof COUNTED_EVENTS)[number];

export interface OidcServer {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Counts of provider events since start. */
  events: Record<CountedEvent, number>;
  /** The real reasons behind grant.error events (the HTTP bodies are generic). */
  grantErrors: string[];
  /** POSTs to the token endpoint, by grant_type. */
  tokenRequests: { authorization_code: number; refresh_token: number };
  /** What the interaction route does: complete login+consent in code, render a consent page, or deny. */
  interaction: "auto" | "page" | "deny";
  /** RFC 7662 introspection of a token, as this server's client. */
  introspect(token: string): Promise<{ active: boolean }>;
  close(): Promise<void>;
}

export interface OidcServerOptions {
  redirectUris: string[];
  /** Access-token lifetime in seconds (default 3600). */
  accessTokenTtl?: number;
  port?: number;
  /** Rotate the refresh token on every use (default true; reuse of a rotated one then revokes the grant). */
  rotateRefreshToken?: boolean;
}

/**
 * oidc-provider 9.13 in-process on a loopback port, configured like a strict real provider: PKCE required for every
 * client, refresh tokens issued and rotated on every use (reuse of a rotated one revokes the whole grant — its
 * default), revocation and introspection on, dev interactions off; the interaction route is the test's own.
 */
export async function startOidcServer(options: OidcServerOptions): Promise<OidcServer> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(options.port ?? 0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = "capvault-test";
  const clientSecret = "oidc-client-secret-DO-NOT-LEAK-7f3a";

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: options.redirectUris,
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    rotateRefreshToken: options.rotateRefreshToken ?? true,
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed("refresh_token"),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: async () => ({ sub: id, email: `${id}@example.com`, email_verified: true }),
    }),
    claims: { openid: ["sub"], email: ["email", "email_verified"] },
    cookies: { keys: ["capvault-test-cookie-key"] },
    ttl: { AccessToken: options.accessTokenTtl ?? 3600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 86400, RefreshToken: 86400 },
  });

  const events = Object.fromEntries(COUNTED_EVENTS.map((e) => [e, 0])) as Record<CountedEvent, number>;
  const grantErrors: string[] = [];
  for (const e of COUNTED_EVENTS) provider.on(e, () => events[e]++);
  provider.on("grant.error", (_ctx: unknown, err: { error?: string; error_detail?: string }) => grantErrors.push(`${err.error}: ${err.error_detail ?? ""}`));
  provider.on("server_error", () => {});

  const fixture: OidcServer = {
    issuer,
    clientId,
    clientSecret,
    events,
    grantErrors,
    tokenRequests: { authorization_code: 0, refresh_token: 0 },
    interaction: "auto",
    async introspect(token) {
      const res = await fetch(`${issuer}/token/introspection`, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token }),
      });
      return (await res.json()) as { active: boolean };
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };

  const callback = provider.callback();
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", issuer);
    if (url.pathname.startsWith("/interaction/")) {
      interactionRoute(provider, fixture, req, res, url).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    if (req.method === "POST" && url.pathname === "/token") {
      countTokenRequest(req, fixture);
    }
    callback(req, res);
  });
  return fixture;
}

/** Peek at the grant_type without consuming the body oidc-provider reads. */
function countTokenRequest(req: IncomingMessage, fixture: OidcServer): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const type = new URLSearchParams(Buffer.concat(chunks).toString()).get("grant_type");
    if (type === "authorization_code" || type === "refresh_token") fixture.tokenRequests[type]++;
  });
}

async function interactionRoute(provider: any, fixture: OidcServer, req: IncomingMessage, res: ServerResponse, url: URL) {
  const details = await provider.interactionDetails(req, res);
  const confirm = url.pathname.endsWith("/confirm");
  if (fixture.interaction === "page" && !confirm) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in to Test IdP</title>
<style>body{font:16px system-ui;margin:3rem}button{font-size:1rem;padding:.6rem 1.2rem}</style></head>
<body><h1>Test IdP</h1><p>Signed in as <b>alice</b>. Allow <b>capvault</b> to access: ${escape(details.params.scope)}?</p>
<form method="post" action="/interaction/${details.uid}/confirm"><button id="allow" type="submit">Allow</button></form></body></html>`);
    return;
  }
  if (fixture.interaction === "deny") {
    await provider.interactionFinished(req, res, { error: "access_denied", error_description: "End-User denied" }, { mergeWithLastSubmission: false });
    return;
  }
  const accountId = "alice";
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
