import type { Header } from "../gen/capvault/v1/common.js";

/**
 * Whether an upstream response says the access token is no longer good (checklist item 21): status 401 with a
 * Bearer challenge carrying `error="invalid_token"` (RFC 6750 section 3.1), or a plain 401 with no error code at all
 * (many providers send no challenge). A 401 whose challenge names another error (e.g. `insufficient_scope`,
 * `invalid_request`) is not: refreshing would not help. The pipeline refreshes at most once and retries at most
 * once on true.
 */
export function isInvalidTokenResponse(status: number, headers: readonly Header[]): boolean {
  if (status !== 401) return false;
  const challenges = headers.filter((h) => h.name.toLowerCase() === "www-authenticate").map((h) => h.value);
  const errors: string[] = [];
  for (const c of challenges) {
    for (const m of c.matchAll(/(?:^|[\s,])error\s*=\s*(?:"([^"]*)"|([^\s,]+))/gi)) errors.push((m[1] ?? m[2]).toLowerCase());
  }
  return errors.length === 0 || errors.includes("invalid_token");
}
