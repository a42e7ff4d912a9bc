import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The sandbox OAuth provider (for `capvault dev`, the demo and tests): oidc-provider (a certified OpenID Connect server)
 * on a loopback port, configured like a strict real provider (PKCE required, rotating refresh tokens, revocation). It
 * has one user, alice, who signs in and approves automatically: there is no login page, the caller plays the browser
 * (see sign-in-in-code.ts).
 *
 * The HTTP listener starts first so the issuer URL is known before the broker starts; the client (with the broker's
 * exact redirect URI) is registered once the broker has printed where its callback listener is.
 */
export interface SandboxOAuthProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Register capvault as a client with its exact redirect URI; until then every request answers 503. */
  registerClient(redirectUri: string): Promise<void>;
  /** Who an access token was issued to, if it is a live token of this provider. */
  lookupAccessToken(token: string): Promise<{ accountId: string; scope: string } | undefined>;
  /** Development-mode notices oidc-provider printed (kept out of the story). */
  notices: string[];
  close(): Promise<void>;
}

export const SANDBOX_ACCOUNT = "alice";

export async function startSandboxOAuthProvider(): Promise<SandboxOAuthProvider> {
  const notices: string[] = [];
  const restoreConsole = quietProviderNotices(notices);
  // oidc-provider ships no types; the sandbox uses a small surface of it.
  const { default: Provider } = (await import("oidc-provider")) as { default: any };

  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = "capvault-sandbox";
  const clientSecret = randomBytes(24).toString("base64url");
  let provider: any;
  let callback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (!provider || !callback) {
      res.writeHead(503, { "content-type": "text/plain" }).end("the sandbox provider is not ready yet");
      return;
    }
    const url = new URL(req.url ?? "/", issuer);
    if (url.pathname.startsWith("/interaction/")) {
      signInAndConsent(provider, req, res).catch((err) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(String(err));
      });
      return;
    }
    callback(req, res);
  });

  return {
    issuer,
    clientId,
    clientSecret,
    notices,
    async registerClient(redirectUri) {
      const signingKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
      provider = new Provider(issuer, {
        clients: [
          {
            client_id: clientId,
            client_secret: clientSecret,
            redirect_uris: [redirectUri],
            grant_types: ["authorization_code", "refresh_token"],
            response_types: ["code"],
            token_endpoint_auth_method: "client_secret_basic",
          },
        ],
        jwks: { keys: [{ ...signingKey, kid: "sandbox-signing-key", use: "sig", alg: "RS256" }] },
        pkce: { required: () => true },
        features: {
          devInteractions: { enabled: false },
          revocation: { enabled: true },
        },
        rotateRefreshToken: true,
        issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed("refresh_token"),
        interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
        findAccount: async (_ctx: unknown, id: string) => ({
          accountId: id,
          claims: async () => ({ sub: id, email: `${id}@example.com`, email_verified: true }),
        }),
        claims: { openid: ["sub"], email: ["email", "email_verified"] },
        cookies: { keys: [randomBytes(32).toString("base64url")] },
        ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 86400, RefreshToken: 86400 },
      });
      provider.on("server_error", (_ctx: unknown, err: Error) => notices.push(`server_error: ${err.message}`));
      callback = provider.callback();
    },
    async lookupAccessToken(token) {
      const found = await provider?.AccessToken.find(token);
      return found ? { accountId: String(found.accountId), scope: String(found.scope ?? "") } : undefined;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      restoreConsole();
    },
  };
}

/** The provider's login and consent step, done in code: alice is signed in and approves what was asked. */
async function signInAndConsent(provider: any, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: SANDBOX_ACCOUNT, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: SANDBOX_ACCOUNT }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

/**
 * oidc-provider prints development-mode notices (in-memory storage, Node 20 not being its preferred runtime) through
 * console.warn/console.info. They are right for a real deployment and noise here; they are kept for a failure report.
 */
function quietProviderNotices(into: string[]): () => void {
  const { warn, info } = console;
  const filter =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]) => {
      if (typeof args[0] === "string" && args[0].replace(/\x1b\[[0-9;]*m/g, "").startsWith("oidc-provider ")) into.push(args[0]);
      else original(...args);
    };
  console.warn = filter(warn);
  console.info = filter(info);
  return () => {
    console.warn = warn;
    console.info = info;
  };
}
