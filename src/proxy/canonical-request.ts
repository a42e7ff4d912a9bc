import { CapvaultError } from "../errors/capvault-error.js";
import type { HttpRequest } from "../gen/capvault/v1/common.js";
import { forwardableAgentHeaders } from "./agent-request-headers.js";
import { type BodyFieldValue, type BodyFormat, readBodyFields } from "./body-fields.js";
import { assertBodyReadAsSent, assertConnectionKeepsBodyHeaders } from "./body-headers.js";
import { type CanonicalHeader, canonicalizeHeaders } from "./canonical-headers.js";
import { canonicalizePath } from "../capabilities/canonical-path.js";
import { type CanonicalQueryParam, canonicalizeQuery } from "./canonical-query.js";
import { memoizedForFrozen } from "./frozen-memo.js";
import { isHttpToken } from "./http-grammar.js";

/**
 * The one description of an agent's request that the capability is authorized against AND the upstream request is
 * built from (checklist item 23). Nothing downstream reads the raw HttpRequest again. Deeply frozen.
 */
export interface CanonicalRequest {
  /** Connection id, as sent (the handler looks it up). */
  readonly connection: string;
  /** Upper-cased RFC 9110 token, e.g. "GET". */
  readonly method: string;
  /** Canonical origin-form path, already encoded for the wire (see canonical-path.ts). Authorize on this. */
  readonly path: string;
  /** The decoded segments of `path`. */
  readonly pathSegments: readonly string[];
  /** Query parameters in order, decoded. */
  readonly query: readonly CanonicalQueryParam[];
  /** The encoded query string without `?` ("" if none). */
  readonly queryString: string;
  /**
   * The agent headers that will be forwarded: lower-cased names, trimmed values, hop-by-hop and never-forwarded
   * headers (Authorization, Cookie, Host, method overrides, …) already removed.
   */
  readonly headers: readonly CanonicalHeader[];
  readonly body: Buffer;
  /** The value of the Content-Type header in `headers` (the one sent), if any (at most one is allowed). */
  readonly contentType: string | undefined;
  /** How the body was read: "empty", "json" or "other". */
  readonly bodyFormat: BodyFormat;
  /** Top-level scalar fields of a JSON object body (see body-fields.ts). */
  readonly bodyFields: ReadonlyMap<string, BodyFieldValue>;
}

/** Limits applied while canonicalizing. */
export interface CanonicalLimits {
  maxPathLength: number;
  maxPathSegments: number;
  maxQueryParams: number;
  maxQueryBytes: number;
  maxHeaders: number;
  maxHeaderBytes: number;
  /** Cap on a unary request body (the streaming variant caps its chunks separately). */
  maxBodyBytes: number;
  maxBodyFields: number;
}

/** Default limits: generous for REST APIs, small enough to keep one request cheap. */
export const DEFAULT_CANONICAL_LIMITS: Readonly<CanonicalLimits> = Object.freeze({
  maxPathLength: 4096,
  maxPathSegments: 128,
  maxQueryParams: 128,
  maxQueryBytes: 8192,
  maxHeaders: 64,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 8 * 1024 * 1024,
  maxBodyFields: 256,
});

/** Methods refused outright: TRACE/TRACK echo the request (credential included) back; CONNECT opens a tunnel. */
const REFUSED_METHODS: ReadonlySet<string> = new Set(["TRACE", "TRACK", "CONNECT"]);
const MAX_METHOD_LENGTH = 32;

/**
 * Canonicalize an agent's HttpRequest. Validation failures throw CapvaultError with reason METHOD_INVALID,
 * PATH_INVALID, QUERY_INVALID, HEADER_INVALID, BODY_TOO_LARGE or BODY_INVALID; nothing is repaired silently.
 */
export function canonicalizeRequest(req: HttpRequest, limits: Partial<CanonicalLimits> = DEFAULT_CANONICAL_LIMITS): CanonicalRequest {
  const l = resolvedLimits(limits);
  const method = canonicalizeMethod(req.method);
  const { path, segments } = canonicalizePath(req.path, l);
  const { params, queryString } = canonicalizeQuery(req.query ?? [], l);
  const allHeaders = canonicalizeHeaders(req.headers ?? [], l);
  assertConnectionKeepsBodyHeaders(allHeaders);
  // The body is read under the headers that are SENT (not the agent's full list): what is authorized is what the
  // upstream parses. With the Connection refusal above, no filter can remove a Content-Type anyway.
  const headers = forwardableAgentHeaders(allHeaders);
  const contentType = headers.find((h) => h.name === "content-type")?.value;
  const body = req.body ?? Buffer.alloc(0);
  if (body.length > l.maxBodyBytes) {
    throw new CapvaultError("BODY_TOO_LARGE", undefined, { metadata: { maxBodyBytes: String(l.maxBodyBytes) } });
  }
  assertBodyReadAsSent(headers, contentType, body);
  const { format, fields } = readBodyFields(body, contentType, l);
  return Object.freeze({
    connection: req.connection,
    method,
    path,
    pathSegments: segments,
    query: params,
    queryString,
    headers,
    body,
    contentType,
    bodyFormat: format,
    bodyFields: fields,
  });
}

/** The defaults overridden by `limits` (merged once per frozen limits object: the broker's is). */
const resolvedLimits = memoizedForFrozen((limits: Partial<CanonicalLimits>): Readonly<CanonicalLimits> => Object.freeze({ ...DEFAULT_CANONICAL_LIMITS, ...limits }));

/** Validate an HTTP method (RFC 9110 token) and upper-case it; TRACE, TRACK and CONNECT are refused. */
export function canonicalizeMethod(raw: string): string {
  if (typeof raw !== "string" || raw.length === 0 || raw.length > MAX_METHOD_LENGTH || !isHttpToken(raw)) {
    throw new CapvaultError("METHOD_INVALID");
  }
  const method = raw.toUpperCase();
  if (REFUSED_METHODS.has(method)) {
    throw new CapvaultError("METHOD_INVALID", "this HTTP method is not allowed through the proxy", { metadata: { method } });
  }
  return method;
}
