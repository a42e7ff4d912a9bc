import * as oauth from "oauth4webapi";
import type { OAuthContext } from "./oauth-context.js";
import { errorName } from "./oauth-events.js";
import type { ProviderClient } from "./provider-client.js";

/**
 * Find the account id people recognise (GitHub login, Slack user and team, OIDC email or subject), if it is cheap.
 * Best effort: any failure returns undefined and the connection is still made.
 */
export async function lookupAccount(
  ctx: OAuthContext,
  pc: ProviderClient,
  tokens: oauth.TokenEndpointResponse,
): Promise<string | undefined> {
  try {
    switch (pc.provider.account) {
      case "none":
        return undefined;
      case "slack":
        return typeof tokens.x_capvault_account === "string" ? tokens.x_capvault_account : undefined;
      case "oidc": {
        // Prefer an email: from the ID token when it carries one, else from userinfo (one cheap request).
        const claims = oauth.getValidatedIdTokenClaims(tokens);
        if (pick(claims?.email)) return pick(claims?.email);
        if (pc.as.userinfo_endpoint) {
          const res = await oauth.userInfoRequest(pc.as, pc.client, tokens.access_token, pc.http(ctx.timings.providerRequestTimeoutMs));
          const info = await oauth.processUserInfoResponse(pc.as, pc.client, claims?.sub ?? oauth.skipSubjectCheck, res);
          return pick(info.email) ?? pick(info.preferred_username) ?? info.sub;
        }
        return pick(claims?.preferred_username) ?? claims?.sub;
      }
      case "github-user": {
        const url = new URL("user", pc.provider.api.baseUrl.endsWith("/") ? pc.provider.api.baseUrl : `${pc.provider.api.baseUrl}/`);
        const res = await fetch(url, {
          headers: { authorization: `Bearer ${tokens.access_token}`, accept: "application/vnd.github+json", "user-agent": "capvault" },
          redirect: "manual",
          signal: AbortSignal.timeout(ctx.timings.providerRequestTimeoutMs),
        });
        if (res.status !== 200) return undefined;
        return pick(((await res.json()) as { login?: unknown }).login);
      }
    }
  } catch (err) {
    ctx.logger.warn({ provider: pc.provider.id, err: errorName(err) }, "account lookup failed");
    return undefined;
  }
}

const pick = (v: unknown) => (typeof v === "string" && v.length > 0 && v.length <= 256 ? v : undefined);
