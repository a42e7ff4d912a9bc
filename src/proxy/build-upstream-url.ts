import { CapvaultError } from "../errors/capvault-error.js";
import { isIpLiteralHost } from "./address-fence.js";
import { memoizedForFrozen } from "./frozen-memo.js";
import type { CanonicalRequest } from "./canonical-request.js";
import type { UpstreamTarget } from "./upstream-target.js";

/** The upstream URL of one request, split the way undici wants it. */
export interface UpstreamUrl {
  /** e.g. "https://api.github.com" or "https://api.test:8443". */
  readonly origin: string;
  /** Host name, lower-case, no port. */
  readonly hostname: string;
  /** Path and query for the request line, e.g. "/gmail/v1/users/me?x=1". */
  readonly pathAndQuery: string;
  /** The full URL (for audit; it never carries a credential). */
  readonly href: string;
}

/**
 * Build the upstream URL from the target's baseUrl (its path prefix kept) and the canonical path and query (checklist
 * items 16-17). The agent never supplies any part of the authority. The final URL is then checked, not trusted: the
 * base (once per target) must be https, without userinfo, its host exactly (lower-case) in allowedHosts and never an
 * IP literal in any spelling; and the WHATWG parse of every final URL must serialize to exactly that base's origin
 * followed by the path and query that were canonicalized, with no fragment, so that scheme, host, port, path and query
 * are all the ones checked. Any failure is UPSTREAM_HOST_FORBIDDEN (fails closed on anything unparseable).
 */
export function buildUpstreamUrl(target: UpstreamTarget, request: Pick<CanonicalRequest, "path" | "queryString">): UpstreamUrl {
  const base = checkedBase(target);
  const pathAndQuery = base.prefix + request.path + (request.queryString === "" ? "" : "?" + request.queryString);
  const href = base.origin + pathAndQuery;
  if (!keepsItsForm(pathAndQuery)) {
    let parsed: string;
    try {
      parsed = new URL(pathAndQuery, base.origin).href;
    } catch {
      throw forbidden("the upstream URL does not parse");
    }
    if (parsed !== href || pathAndQuery.includes("#")) {
      throw forbidden("the upstream URL does not keep the provider's origin and the canonical path");
    }
  }
  return Object.freeze({ origin: base.origin, hostname: base.hostname, pathAndQuery, href });
}

// Absolute paths of non-empty segments made only of characters the WHATWG URL parser writes as they are, in the path
// (RFC 3986 pchar without ";" and "%") and in the query (unreserved, "%", "=" and "&"), with an optional trailing "/".
const PLAIN_PATH_AND_QUERY = /^(?=\/)(?:\/[A-Za-z0-9\-._~!$&'()*+,=:@]+)*\/?(?:\?[A-Za-z0-9\-._~%=&]*)?$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|\?|$)/;

/**
 * Whether a path and query is one that the WHATWG parser, given it relative to an origin, serializes back unchanged:
 * no dot segment, no empty segment (so no "//" that would name a host), nothing it would percent-encode, drop or turn
 * into "/", no "#". Canonical requests are (canonical-path.ts, canonical-query.ts), and for them the parse is
 * skipped; anything else, such as a path with "%" escapes, is parsed and compared (test/proxy/build-upstream-url.test.ts
 * holds this shortcut to the parser over generated strings).
 */
export function keepsItsForm(pathAndQuery: string): boolean {
  return PLAIN_PATH_AND_QUERY.test(pathAndQuery) && !DOT_SEGMENT.test(pathAndQuery);
}

/** A target's base URL, checked: where every upstream URL of the target must stay. */
interface CheckedBase {
  /** e.g. "https://api.test:8443" (no default port). */
  readonly origin: string;
  readonly hostname: string;
  /** The base path without trailing slashes ("" or e.g. "/gmail/v1"). */
  readonly prefix: string;
}

/** Checked once per frozen target (catalog targets are: provider-upstream-target.ts); any other every time. */
const checkedBase = memoizedForFrozen(checkBase, (target) => Object.isFrozen(target) && Object.isFrozen(target.allowedHosts));

function checkBase(target: UpstreamTarget): CheckedBase {
  let base: URL;
  try {
    base = new URL(target.baseUrl);
  } catch {
    throw forbidden("the provider's base URL does not parse");
  }
  if (base.protocol !== "https:") throw forbidden("the upstream URL is not https");
  if (base.username !== "" || base.password !== "") throw forbidden("the upstream URL carries userinfo");
  const hostname = base.hostname.toLowerCase();
  if (isIpLiteralHost(hostname) || isIpLiteralHost(rawHost(target.baseUrl))) throw forbidden("the upstream host is an IP literal");
  if (!target.allowedHosts.some((h) => h.toLowerCase() === hostname)) throw forbidden();
  return Object.freeze({ origin: base.origin, hostname, prefix: base.pathname.replace(/\/+$/, "") });
}

const builtFor = new WeakMap<Pick<CanonicalRequest, "path" | "queryString">, { target: UpstreamTarget; url: UpstreamUrl }>();

/**
 * {@link buildUpstreamUrl}, remembered per canonical request object: canonical requests are frozen, and a repeated
 * request shares one (canonical-request-memo.ts), so its URL is built and checked once.
 */
export function upstreamUrlFor(target: UpstreamTarget, request: Pick<CanonicalRequest, "path" | "queryString">): UpstreamUrl {
  const known = builtFor.get(request);
  if (known && known.target === target) return known.url;
  const url = buildUpstreamUrl(target, request);
  builtFor.set(request, { target, url });
  return url;
}

/** The host as written in the URL string, before WHATWG normalisation (which turns `0x7f.1` into `127.0.0.1`). */
function rawHost(href: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)/i.exec(href);
  return m ? m[1] : "";
}

function forbidden(message?: string): CapvaultError {
  return new CapvaultError("UPSTREAM_HOST_FORBIDDEN", message);
}
