import * as oauth from "oauth4webapi";
import type { OAuthContext } from "./oauth-context.js";
import type { ProviderClient } from "./provider-client.js";

/** The tokens to revoke (plaintext, in memory only for this call). */
export interface TokensToRevoke {
  accessToken?: string;
  refreshToken?: string;
}

/** Whether the provider confirmed revocation; `failure` is a short secret-free reason when it could not. */
export type RevocationResult = { revoked: true } | { revoked: false; failure?: string };

/**
 * Revoke a connection's tokens at the provider, by the method its catalog entry names:
 * RFC 7009 (refresh token first, which ends the grant at strict servers, then the access token), GitHub's
 * `DELETE /applications/{client_id}/token` with Basic client authentication, Slack's `auth.revoke`, or none.
 * Never throws: every failure comes back as `{revoked: false, failure}`.
 */
export async function revokeAtProvider(ctx: OAuthContext, pc: ProviderClient, tokens: TokensToRevoke): Promise<RevocationResult> {
  try {
    switch (pc.provider.revocation) {
      case "none":
        return { revoked: false };
      case "rfc7009":
        return await revokeRfc7009(ctx, pc, tokens);
      case "github":
        return await revokeGitHub(ctx, pc, tokens);
      case "slack":
        return await revokeSlack(ctx, pc, tokens);
    }
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) return { revoked: false, failure: `provider error ${safeCode(err.error)}` };
    const name = (err as Error)?.name;
    if (name === "TimeoutError" || name === "AbortError") return { revoked: false, failure: "provider timed out" };
    if (err instanceof TypeError) return { revoked: false, failure: "provider unreachable" };
    return { revoked: false, failure: "revocation failed" };
  }
}

async function revokeRfc7009(ctx: OAuthContext, pc: ProviderClient, tokens: TokensToRevoke): Promise<RevocationResult> {
  if (!pc.as.revocation_endpoint) return { revoked: false, failure: "provider has no revocation endpoint" };
  const order: [string | undefined, string][] = [
    [tokens.refreshToken, "refresh_token"],
    [tokens.accessToken, "access_token"],
  ];
  let any = false;
  for (const [token, hint] of order) {
    if (!token) continue;
    const options = { ...pc.http(ctx.timings.providerRequestTimeoutMs), additionalParameters: { token_type_hint: hint } };
    const res = await oauth.revocationRequest(pc.as, pc.client, pc.clientAuth, token, options);
    await oauth.processRevocationResponse(res);
    any = true;
  }
  return any ? { revoked: true } : { revoked: false, failure: "no token to revoke" };
}

async function revokeGitHub(ctx: OAuthContext, pc: ProviderClient, tokens: TokensToRevoke): Promise<RevocationResult> {
  if (!tokens.accessToken) return { revoked: false, failure: "no token to revoke" };
  const url = pc.provider.revocationEndpoint!.replace("{client_id}", encodeURIComponent(pc.client.client_id));
  const res = await fetch(url, {
    method: "DELETE",
    redirect: "manual",
    headers: {
      authorization: pc.basicAuthorization(),
      accept: "application/vnd.github+json",
      "content-type": "application/json",
      "user-agent": "capvault",
    },
    body: JSON.stringify({ access_token: tokens.accessToken }),
    signal: AbortSignal.timeout(ctx.timings.providerRequestTimeoutMs),
  });
  await res.body?.cancel();
  // 204: revoked. 404: GitHub no longer knows the token (already revoked or expired): it is dead either way.
  if (res.status === 204 || res.status === 404) return { revoked: true };
  return { revoked: false, failure: `HTTP ${res.status}` };
}

async function revokeSlack(ctx: OAuthContext, pc: ProviderClient, tokens: TokensToRevoke): Promise<RevocationResult> {
  if (!tokens.accessToken) return { revoked: false, failure: "no token to revoke" };
  const res = await fetch(pc.provider.revocationEndpoint!, {
    method: "POST",
    redirect: "manual",
    headers: { authorization: `Bearer ${tokens.accessToken}`, "content-type": "application/x-www-form-urlencoded" },
    body: "",
    signal: AbortSignal.timeout(ctx.timings.providerRequestTimeoutMs),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    return { revoked: false, failure: `HTTP ${res.status}` };
  }
  const body = (await res.json().catch(() => ({}))) as { ok?: boolean; revoked?: boolean; error?: string };
  if (body.ok === true && body.revoked !== false) return { revoked: true };
  // The token is already dead at Slack: nothing left to revoke.
  if (body.error === "token_revoked" || body.error === "invalid_auth" || body.error === "account_inactive") return { revoked: true };
  return { revoked: false, failure: `provider error ${safeCode(body.error)}` };
}

const safeCode = (v: unknown) => (typeof v === "string" && /^[a-z_]{1,64}$/.test(v) ? v : "unknown");
