import type { CanonicalHeader } from "./canonical-headers.js";
import { withoutHopByHopHeaders } from "./hop-by-hop-headers.js";

/**
 * Agent headers that never reach an upstream, whatever the provider:
 * - credentials and ambient authority: the broker sets the one credential header itself (checklist items 10, 20);
 * - framing the HTTP client owns (Host, Content-Length, Expect);
 * - headers that make a server act on a different method or path than the one authorized;
 * - forwarding headers, which some servers trust to build absolute URLs.
 */
export const DROPPED_AGENT_HEADERS: ReadonlySet<string> = new Set([
  "authorization",
  "cookie",
  "cookie2",
  "host",
  "content-length",
  // The broker asks for an unencoded response itself, so that it can take echoed credentials out of the body.
  "accept-encoding",
  "expect",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "x-original-url",
  "x-rewrite-url",
  "x-original-method",
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "x-real-ip",
  "via",
]);

/**
 * The agent headers that may be forwarded to any upstream: hop-by-hop headers (and the names Connection lists) and
 * {@link DROPPED_AGENT_HEADERS} removed. The provider-specific credential header is removed later, when the
 * upstream request is built (see upstream-request-headers.ts).
 */
export function forwardableAgentHeaders(headers: readonly CanonicalHeader[]): readonly CanonicalHeader[] {
  return Object.freeze(withoutHopByHopHeaders(headers).filter((h) => !DROPPED_AGENT_HEADERS.has(h.name)));
}
