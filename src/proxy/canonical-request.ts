import { CapvaultError } from "../errors/capvault-error.js";
import type { HttpRequest } from "../gen/capvault/v1/common.js";
import { forwardableAgentHeaders } from "./agent-request-headers.js";
import { type BodyFieldValue, type BodyFormat, readBodyFields } from "./body-fields.js";
import { type CanonicalHeader, canonicalizeHeaders } from "./canonical-headers.js";
import { canonicalizePath } from "../capabilities/canonical-path.js";
import { type CanonicalQueryParam, canonicalizeQuery } from "./canonical-query.js";
import { isHopByHopHeader } from "./hop-by-hop-headers.js";
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
  /** The Content-Type header value, if any (at most one is allowed). */
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
export function canonicalizeRequest(req: HttpRequest, limits: Partial<CanonicalLimits> = {}): CanonicalRequest {
  const l: CanonicalLimits = { ...DEFAULT_CANONICAL_LIMITS, ...limits };
  const method = canonicalizeMethod(req.method);
  const { path, segments } = canonicalizePath(req.path, l);
  const { params, queryString } = canonicalizeQuery(req.query ?? [], l);
  const allHeaders = canonicalizeHeaders(req.headers ?? [], l);
  refuseConnectionListedEndToEndHeaders(allHeaders);
  const contentType = allHeaders.find((h) => h.name === "content-type")?.value;
  const contentEncoding = allHeaders.find((h) => h.name === "content-encoding")?.value.toLowerCase();
  const body = req.body ?? Buffer.alloc(0);
  if (body.length > l.maxBodyBytes) {
    throw new CapvaultError("BODY_TOO_LARGE", undefined, { metadata: { maxBodyBytes: String(l.maxBodyBytes) } });
  }
  // An encoded body is not what the broker would read: its fields are unknown, so body caveats cannot be met by it.
  const encoded = contentEncoding !== undefined && contentEncoding !== "identity";
  const { format, fields } = encoded ? { format: "other" as const, fields: new Map<string, never>() } : readBodyFields(body, contentType, l);
  return Object.freeze({
    connection: req.connection,
    method,
    path,
    pathSegments: segments,
    query: params,
    queryString,
    headers: forwardableAgentHeaders(allHeaders),
    body,
    contentType,
    bodyFormat: format,
    bodyFields: fields,
  });
}

/**
 * A `Connection` (or `Proxy-Connection`) header makes a proxy drop the headers it names. The agent-to-broker hop is
 * gRPC, so such a header can only be an attempt to have the broker authorize one message and send another: e.g.
 * `Connection: content-type` would have the JSON body's fields authorized and then the Content-Type stripped, leaving
 * the upstream to read the same bytes as a form. Refused (never silently ignored) when it names a header that
 * describes the body or its target, which authorization reads; other names it lists are dropped as hop-by-hop.
 */
function refuseConnectionListedEndToEndHeaders(headers: readonly CanonicalHeader[]): void {
  for (const h of headers) {
    if (h.name !== "connection" && h.name !== "proxy-connection") continue;
    for (const token of h.value.split(",")) {
      const named = token.trim().toLowerCase();
      if (named === "" || isHopByHopHeader(named)) continue;
      if (BODY_HEADERS.has(named)) {
        throw new CapvaultError("HEADER_INVALID", "a Connection header must not name an end-to-end header of the request", {
          metadata: { header: named },
        });
      }
    }
  }
}

const BODY_HEADERS: ReadonlySet<string> = new Set(["content-type", "content-length", "content-encoding", "content-range", "host"]);

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
