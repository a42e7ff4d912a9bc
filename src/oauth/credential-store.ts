import type * as oauth from "oauth4webapi";
import type { CredentialRecord } from "../store/credential-repository.js";
import type { SealedSecret } from "../vault/vault.js";
import type { OAuthContext } from "./oauth-context.js";

/** A token set in plaintext, only ever held in memory for the duration of one operation. */
export interface TokenSet {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: Date;
  /** Scopes actually granted. */
  scopes: string[];
}

/** Which connection a credential generation belongs to. */
export interface CredentialOwner {
  tenant: string;
  connection: string;
  provider: string;
}

/**
 * The token set of a token-endpoint response. Scopes are those the provider says it granted; when it omits `scope`,
 * RFC 6749 §5.1 says the grant equals what was asked (`fallbackScopes`).
 */
export function tokenSetFrom(response: oauth.TokenEndpointResponse, nowMs: number, fallbackScopes: string[]): TokenSet {
  return {
    accessToken: response.access_token,
    refreshToken: response.refresh_token,
    expiresAt: typeof response.expires_in === "number" ? new Date(nowMs + response.expires_in * 1000) : undefined,
    scopes: typeof response.scope === "string" ? response.scope.split(" ").filter(Boolean) : fallbackScopes,
  };
}

const ctxOf = (o: CredentialOwner, field: "access_token" | "refresh_token") => ({
  tenant: o.tenant,
  record: o.connection,
  provider: o.provider,
  field,
});

/**
 * Seal a token set and insert it as generation `generation`. Insert-once: false means another writer already wrote
 * that generation (which the lease protocol makes impossible; callers treat it as "someone else's result wins").
 * `carriedRefreshToken` keeps the previous sealed refresh token when the provider did not rotate it.
 */
export async function insertGeneration(
  ctx: OAuthContext,
  owner: CredentialOwner,
  generation: number,
  tokens: TokenSet,
  carriedRefreshToken?: SealedSecret,
): Promise<boolean> {
  // Both at once: after a refresh, this is the window in which a rotated refresh token exists only in memory.
  const [accessToken, refreshToken] = await Promise.all([
    ctx.vault.seal(tokens.accessToken, ctxOf(owner, "access_token")),
    tokens.refreshToken ? ctx.vault.seal(tokens.refreshToken, ctxOf(owner, "refresh_token")) : carriedRefreshToken,
  ]);
  const record: CredentialRecord = {
    ...owner,
    generation,
    kind: "tokens",
    accessToken,
    scopes: tokens.scopes,
    createdAt: new Date(ctx.now()),
  };
  if (refreshToken) record.refreshToken = refreshToken;
  if (tokens.expiresAt) record.expiresAt = tokens.expiresAt;
  return ctx.store.credentials.insert(record);
}

/** Insert a secret-free generation saying the grant is dead; every broker then answers CONNECTION_NEEDS_REAUTH. */
export function insertNeedsReauth(ctx: OAuthContext, owner: CredentialOwner, generation: number, scopes: string[]): Promise<boolean> {
  return ctx.store.credentials.insert({ ...owner, generation, kind: "needs_reauth", scopes, createdAt: new Date(ctx.now()) });
}

/** Open a generation's access token. */
export async function openAccessToken(ctx: OAuthContext, record: CredentialRecord): Promise<string> {
  return (await ctx.vault.open(record.accessToken!, ctxOf(record, "access_token"))).toString("utf8");
}

/** Open a generation's refresh token, if it has one. */
export async function openRefreshToken(ctx: OAuthContext, record: CredentialRecord): Promise<string | undefined> {
  if (!record.refreshToken) return undefined;
  return (await ctx.vault.open(record.refreshToken, ctxOf(record, "refresh_token"))).toString("utf8");
}
