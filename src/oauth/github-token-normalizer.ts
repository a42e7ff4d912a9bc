import { asNumber, jsonResponse, readLooseBody } from "./token-response-body.js";

/**
 * GitHub error codes that mean the code or refresh token is dead: both become `invalid_grant` (reconnect needed).
 * GitHub documents `bad_verification_code` (code expired/used/wrong) and `bad_refresh_token`.
 */
const GITHUB_ERRORS: Record<string, string> = {
  bad_verification_code: "invalid_grant",
  bad_refresh_token: "invalid_grant",
  incorrect_client_credentials: "invalid_client",
  redirect_uri_mismatch: "invalid_grant",
  unverified_user_email: "access_denied",
};

/**
 * GitHub's token endpoint answers form-encoded unless asked for JSON, reports errors with HTTP 200
 * (`{"error":"bad_verification_code"}`), and separates scopes with commas. Normalised to RFC 6749.
 */
export async function normalizeGitHubTokenResponse(response: Response): Promise<Response> {
  if (response.status >= 500) return response;
  const body = await readLooseBody(response);
  if (!body) return jsonResponse(502, { error: "server_error", error_description: "unreadable token response" }, response);
  if (typeof body.error === "string") {
    return jsonResponse(
      400,
      {
        error: GITHUB_ERRORS[body.error] ?? body.error,
        error_description: typeof body.error_description === "string" ? body.error_description : body.error,
        provider_error: body.error,
      },
      response,
    );
  }
  if (response.status !== 200) return jsonResponse(response.status, { error: "server_error" }, response);
  const out: Record<string, unknown> = { ...body, token_type: String(body.token_type ?? "bearer") };
  if (typeof body.scope === "string") out.scope = splitScopes(body.scope, ",").join(" ");
  for (const k of ["expires_in", "refresh_token_expires_in"]) {
    const n = asNumber(body[k]);
    if (n === undefined) delete out[k];
    else out[k] = n;
  }
  return jsonResponse(200, out, response);
}

function splitScopes(s: string, sep: string): string[] {
  return s.split(sep).map((x) => x.trim()).filter(Boolean);
}
