import { CapvaultError } from "../errors/capvault-error.js";
import type { ConnectionRecord } from "../store/records.js";
import type { OAuthContext } from "./oauth-context.js";
import { newConnectionId, newPkce, newState } from "./pkce-state.js";

/** What BeginConnect asks for. `scopes` empty or absent means the provider's default scopes. */
export interface BeginConnectInput {
  tenant: string;
  user: string;
  provider: string;
  scopes?: string[];
}

/** Where to send the user, and the pending connection that the callback will complete. */
export interface BeginConnectResult {
  authorizationUrl: string;
  connectionId: string;
  /** When the authorization request (state) expires. */
  expiresAt: Date;
}

const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/; // RFC 6749 scope-token characters

/**
 * Start the authorization-code flow with PKCE: create a pending connection, a one-time state bound to it (stored as
 * a hash, with the sealed PKCE verifier, the provider and the exact redirect URI), and return the authorization URL.
 */
export async function beginConnect(ctx: OAuthContext, input: BeginConnectInput): Promise<BeginConnectResult> {
  if (!input.tenant || !input.user) throw new CapvaultError("INVALID_REQUEST", "tenant and user are required");
  const provider = ctx.catalog.get(input.provider);
  const scopes = input.scopes?.length ? [...new Set(input.scopes)] : provider.defaultScopes;
  for (const s of scopes) {
    if (!SCOPE.test(s) || s.includes(provider.scopeSeparator)) {
      throw new CapvaultError("INVALID_REQUEST", "a requested scope is not a valid scope token");
    }
  }
  const pc = await ctx.clients.get(provider.id);

  const now = new Date(ctx.now());
  const expiresAt = new Date(now.getTime() + ctx.timings.stateTtlMs);
  const connection: ConnectionRecord = {
    id: newConnectionId(),
    tenant: input.tenant,
    user: input.user,
    provider: provider.id,
    scopes: [],
    status: "pending",
    createdAt: now,
    updatedAt: now,
  };
  if (!(await ctx.store.connections.insert(connection))) throw new CapvaultError("INTERNAL", "connection id collision");

  const { state, id } = newState();
  const pkce = await newPkce();
  const codeVerifier = await ctx.vault.seal(pkce.verifier, {
    tenant: input.tenant,
    record: connection.id,
    provider: provider.id,
    field: "pkce_verifier",
  });
  const stored = await ctx.store.oauthStates.insert({
    id,
    tenant: input.tenant,
    user: input.user,
    connection: connection.id,
    provider: provider.id,
    redirectUri: ctx.redirectUri,
    scopes,
    codeVerifier,
    createdAt: now,
    expiresAt,
  });
  if (!stored) throw new CapvaultError("INTERNAL", "state collision");

  const url = new URL(pc.as.authorization_endpoint!);
  // Catalog extras first, so they can never override a protocol parameter (state, PKCE, redirect URI).
  for (const [k, v] of Object.entries(provider.authorizationParams)) url.searchParams.set(k, v);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", pc.client.client_id);
  url.searchParams.set("redirect_uri", ctx.redirectUri);
  if (scopes.length) url.searchParams.set(provider.scopeParameter, scopes.join(provider.scopeSeparator));
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", pkce.challenge);
  url.searchParams.set("code_challenge_method", pkce.method);

  ctx.logger.info({ tenant: input.tenant, connection: connection.id, provider: provider.id }, "oauth connect started");
  return { authorizationUrl: url.href, connectionId: connection.id, expiresAt };
}
