import { CapvaultError } from "../errors/capvault-error.js";
import type { QueryParam } from "../gen/capvault/v1/common.js";

/** One validated query parameter, decoded (as the agent sent it in the request message). */
export interface CanonicalQueryParam {
  readonly name: string;
  readonly value: string;
}

/** The canonical query: the parameters in the agent's order and the one string that goes on the wire. */
export interface CanonicalQuery {
  readonly params: readonly CanonicalQueryParam[];
  /** `name=value&…` with every byte outside RFC 3986 `unreserved` percent-encoded (UTF-8, upper-case hex); "" if none. */
  readonly queryString: string;
}

/** Size limits for the query. */
export interface QueryLimits {
  maxQueryParams: number;
  maxQueryBytes: number;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * Validate and encode query parameters. Names and values arrive decoded (the request message carries them as
 * fields, not as a query string), so the broker does all the encoding, always the same way. Refused with
 * QUERY_INVALID: an empty name, any control character (CR, LF, NUL, …), a lone UTF-16 surrogate, or too many or
 * too large parameters. Order and repeated names are kept: both can matter to an API.
 */
export function canonicalizeQuery(params: readonly QueryParam[], limits: QueryLimits): CanonicalQuery {
  if (params.length > limits.maxQueryParams) {
    throw invalid("too many query parameters", { maxQueryParams: String(limits.maxQueryParams) });
  }
  const out: CanonicalQueryParam[] = [];
  const encoded: string[] = [];
  for (const p of params) {
    const name = p.name ?? "";
    const value = p.value ?? "";
    if (name === "") throw invalid("a query parameter has an empty name");
    if (CONTROL.test(name) || CONTROL.test(value)) throw invalid("a query parameter contains a control character");
    let pair: string;
    try {
      pair = `${encodeComponent(name)}=${encodeComponent(value)}`;
    } catch {
      throw invalid("a query parameter is not well-formed Unicode"); // a lone surrogate: URIError
    }
    out.push(Object.freeze({ name, value }));
    encoded.push(pair);
  }
  const queryString = encoded.join("&");
  if (Buffer.byteLength(queryString) > limits.maxQueryBytes) {
    throw invalid("the query string is too large", { maxQueryBytes: String(limits.maxQueryBytes) });
  }
  return Object.freeze({ params: Object.freeze(out), queryString });
}

/** Percent-encode everything but RFC 3986 unreserved (encodeURIComponent alone leaves `!'()*` raw). */
function encodeComponent(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function invalid(message: string, metadata?: Record<string, string>): CapvaultError {
  return new CapvaultError("QUERY_INVALID", message, { metadata });
}
