import type { Header } from "../gen/capvault/v1/common.js";
import { memoizedForFrozen } from "./frozen-memo.js";
import { connectionListedNames, isHopByHopHeader } from "./hop-by-hop-headers.js";

/**
 * Response headers returned to the agent (checklist item 20). Explicit on purpose: anything not named here, such as
 * Set-Cookie, server-internal or tracing headers, is dropped. A provider can add names through
 * UpstreamTarget.extraResponseHeaders.
 */
export const RESPONSE_HEADER_ALLOWLIST: ReadonlySet<string> = new Set([
  "accept-ranges",
  "age",
  "cache-control",
  "content-disposition",
  "content-encoding",
  "content-language",
  "content-length",
  "content-range",
  "content-type",
  "date",
  "etag",
  "expires",
  "last-modified",
  "link",
  "location",
  "ratelimit",
  "ratelimit-limit",
  "ratelimit-policy",
  "ratelimit-remaining",
  "ratelimit-reset",
  "retry-after",
  "vary",
  "www-authenticate",
  "x-accepted-oauth-scopes",
  "x-github-media-type",
  "x-github-request-id",
  "x-oauth-scopes",
  "x-request-id",
]);

/** Prefixes of allowed response header names (rate-limit families differ per provider). */
export const RESPONSE_HEADER_ALLOWED_PREFIXES: readonly string[] = ["x-ratelimit-", "x-rate-limit-"];

/** Never returned, whatever a provider's extra list says. */
const NEVER_RETURNED: ReadonlySet<string> = new Set(["set-cookie", "set-cookie2"]);

/**
 * Filter an upstream response's headers for the agent: hop-by-hop headers and the names the response's Connection
 * header lists go first (even when allowlisted), then only allowlisted names (plus `extra`) remain. Names come out
 * lower-case, in upstream order, one entry per value.
 */
export function filterResponseHeaders(headers: readonly Header[], extra: readonly string[] = NO_EXTRA): Header[] {
  const extraNames = extraNamesOf(extra);
  const listed = connectionListedNames(headers);
  const out: Header[] = [];
  for (const h of headers) {
    const name = h.name.toLowerCase();
    if (isHopByHopHeader(name) || listed?.has(name) || NEVER_RETURNED.has(name)) continue;
    if (RESPONSE_HEADER_ALLOWLIST.has(name) || extraNames.has(name) || hasAllowedPrefix(name)) out.push({ name, value: h.value });
  }
  return out;
}

function hasAllowedPrefix(name: string): boolean {
  for (const prefix of RESPONSE_HEADER_ALLOWED_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}

const NO_EXTRA: readonly string[] = Object.freeze([]);

/** A provider's extra names, lower-case (once per frozen list: catalog targets' lists are). */
const extraNamesOf = memoizedForFrozen((extra: readonly string[]): ReadonlySet<string> => new Set(extra.map((n) => n.toLowerCase())));

/** Flatten undici's response header object (`string | string[]` values) into Header entries. */
export function responseHeaderEntries(headers: Record<string, string | string[] | undefined>): Header[] {
  const out: Header[] = [];
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push({ name, value: v });
    else out.push({ name, value });
  }
  return out;
}
