import { asNumber, jsonResponse, readLooseBody } from "./token-response-body.js";

/** Slack error codes meaning the code or refresh token is dead (reconnect needed). */
const DEAD_GRANT = new Set(["invalid_code", "code_already_used", "code_expired", "invalid_refresh_token", "token_revoked", "token_expired", "invalid_grant_type"]);
const BAD_CLIENT = new Set(["invalid_client_id", "bad_client_secret", "invalid_client"]);

/**
 * Slack's `oauth.v2.access` answers HTTP 200 with `{"ok":false,"error":...}` on failure; the user token is nested
 * under `authed_user` (token_type "user") next to the bot token (token_type "bot"); with rotation on, tokens expire
 * (`expires_in: 43200`) and refresh tokens look like `xoxe-1-...`; scopes are comma-separated. `which` picks the
 * token capvault keeps. The refresh answer for a user token carries it at the top level.
 */
export async function normalizeSlackTokenResponse(response: Response, which: "user" | "bot"): Promise<Response> {
  if (response.status >= 500) return response;
  const body = await readLooseBody(response);
  if (!body) return jsonResponse(502, { error: "server_error", error_description: "unreadable token response" }, response);
  if (body.ok !== true) {
    const e = typeof body.error === "string" ? body.error : "server_error";
    const error = DEAD_GRANT.has(e) ? "invalid_grant" : BAD_CLIENT.has(e) ? "invalid_client" : e;
    return jsonResponse(400, { error, error_description: e, provider_error: e }, response);
  }
  const authed = (body.authed_user ?? {}) as Record<string, unknown>;
  const team = (body.team ?? {}) as Record<string, unknown>;
  const source = which === "user" && typeof authed.access_token === "string" ? authed : body;
  if (typeof source.access_token !== "string") {
    return jsonResponse(502, { error: "server_error", error_description: `no ${which} token in the response` }, response);
  }
  const userId = typeof authed.id === "string" ? authed.id : typeof body.user_id === "string" ? body.user_id : undefined;
  const teamName = typeof team.name === "string" ? team.name : typeof team.id === "string" ? team.id : undefined;
  const out: Record<string, unknown> = { access_token: source.access_token, token_type: "bearer" };
  if (typeof source.refresh_token === "string") out.refresh_token = source.refresh_token;
  const expiresIn = asNumber(source.expires_in);
  if (expiresIn !== undefined) out.expires_in = expiresIn;
  if (typeof source.scope === "string") out.scope = source.scope.split(",").map((s) => s.trim()).filter(Boolean).join(" ");
  const account = which === "user" ? userId : typeof body.bot_user_id === "string" ? body.bot_user_id : undefined;
  if (account || teamName) out.x_capvault_account = [account, teamName && `(${teamName})`].filter(Boolean).join(" ");
  return jsonResponse(200, out, response);
}
