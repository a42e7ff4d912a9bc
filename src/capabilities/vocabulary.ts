import { CapvaultError } from "../errors/capvault-error.js";
import { normalisePathPrefix } from "./canonical-path.js";
import { dateParam, stringParam, type DatalogParam, type DatalogSnippet } from "./datalog-values.js";
import type { CapabilityLimits } from "./limits.js";

/**
 * capvault's Datalog vocabulary: predicate names, the policies, the request and restriction types, normalisation of
 * grants, methods and hosts, and the authority block. Attenuation blocks are built in restriction-block.ts, ambient
 * facts in request-facts.ts. Every value is a parameter; code strings are constants. See docs/capabilities.md.
 */

/** Operations authorized against the token's grants (`right` facts). Every other operation needs `operator(true)`. */
export const GRANT_OPERATIONS: ReadonlySet<string> = new Set(["proxy", "authorize"]);

/** The allow policy for grant operations: one tuple grant must cover connection, method and path (segment-aligned). */
export const GRANT_POLICY =
  'allow if right($c, $m, $p), connection($c), method($m), path($path), ($path + "/").starts_with($p)';
/** The allow policy for operator operations. */
export const OPERATOR_POLICY = "allow if operator(true)";
/** The final policy. */
export const DEFAULT_DENY = "deny if true";
/** The authorizer check binding the token to the request's tenant (authority and ambient `tenant` facts must agree). */
export const TENANT_CHECK = "check all tenant($t), $t == {tenant}";
/**
 * Step-up approval (src/approvals): a grant operation without a redeemed approval carries this ambient fact, and a
 * check that needs a person's approval is a `reject if` on it (organisation rules `approval_required("why") <- ...`
 * compile to one; a Restriction's `approvalMethods` write one). A redeemed approval removes the fact, so those checks
 * pass for exactly that request.
 */
export const UNAPPROVED_FACT = "unapproved(true)";
/** How every approval check begins (as written, and as biscuit prints it back in a denial). */
export const APPROVAL_CHECK_PREFIX = `reject if ${UNAPPROVED_FACT}`;

/** One grant: a method on a connection under a segment-aligned path prefix (proto capvault.v1.Grant). */
export interface Grant {
  connection: string;
  method: string;
  pathPrefix: string;
}

/** A query parameter or top-level body field pinned to one of some values (proto capvault.v1.FieldConstraint). */
export interface FieldConstraint {
  name: string;
  values: string[];
}

/** A raw check with optional parameters for its `{name}` placeholders. */
export interface RawCheck {
  code: string;
  params?: Record<string, string | boolean | number | bigint | Date>;
}

/**
 * What an attenuation block narrows (proto capvault.v1.Restriction; empty lists and strings mean "not set").
 * Every set field adds checks; nothing can widen.
 */
export interface Restriction {
  connections?: string[];
  methods?: string[];
  pathPrefix?: string;
  /** Expire this long after `now` (proto Duration shape). */
  ttl?: { seconds: number; nanos?: number };
  ttlSeconds?: number;
  expiresAt?: Date;
  query?: FieldConstraint[];
  body?: FieldConstraint[];
  /** Additional checks: each string must be exactly one `check if` / `check all` / `reject if`. */
  checks?: Array<string | RawCheck>;
  /** Requests with these methods are held until a person approves each one (step-up approval). */
  approvalMethods?: string[];
}

/** One query-string parameter (proto capvault.v1.QueryParam). */
export interface QueryParam {
  name: string;
  value: string;
}

/** A body field value: top-level JSON scalars. */
export type BodyValue = string | number | boolean | null | bigint | object;

/**
 * The request being authorized. For grant operations ("proxy", "authorize") connection, provider, host, method and
 * (canonical) path are required; operator operations only need tenant.
 */
export interface AccessRequest {
  /** "proxy" (default), "authorize" (dry run), or an operator operation such as "mint" or "revoke". */
  operation?: string;
  /** The tenant the request acts in (the connection's tenant). */
  tenant: string;
  connection?: string;
  provider?: string;
  host?: string;
  method?: string;
  /** Already canonical (see canonical-path.ts); a non-canonical path is refused with PATH_INVALID. */
  path?: string;
  query?: QueryParam[];
  /** The request body: raw JSON bytes, or already-parsed top-level fields. Non-JSON bytes give no body facts. */
  body?: Uint8Array | Record<string, BodyValue>;
  /** A person approved exactly this request (a redeemed approval: src/approvals): approval checks pass. */
  approved?: boolean;
}

/** What mint puts in the authority block. */
export interface AuthoritySpec {
  tenant: string;
  subject: string;
  grants: Grant[];
  expiresAt: Date;
  operator: boolean;
}

/** Upper-case and validate an HTTP method (an RFC 9110 token). */
export function normaliseMethod(method: unknown): string {
  if (typeof method !== "string" || !/^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,31}$/.test(method)) {
    throw new CapvaultError("METHOD_INVALID");
  }
  return method.toUpperCase();
}

function grantableMethod(method: unknown): string {
  const m = normaliseMethod(method);
  if (!GRANTABLE_METHODS.has(m)) {
    throw new CapvaultError("METHOD_INVALID", `a grant's method must be an HTTP method an API uses (${[...GRANTABLE_METHODS].join(", ")})`, {
      metadata: { method: m },
    });
  }
  return m;
}

/** Lower-case and validate a host name (with optional port). */
export function normaliseHost(host: unknown): string {
  if (typeof host !== "string" || !/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::\d{1,5})?$/.test(host)) {
    throw new CapvaultError("INVALID_REQUEST", "host must be a host name");
  }
  return host.toLowerCase();
}

/** Validate an identifier (tenant, subject, connection, provider, field name). */
export function identifier(value: unknown, what: string, limits: CapabilityLimits): string {
  return stringParam(value, what, { maxBytes: limits.maxIdentifierBytes });
}

/** Validate an operation name (default "proxy"). */
export function operationName(value: unknown): string {
  const op = value ?? "proxy";
  if (typeof op !== "string" || !/^[a-z][a-z0-9_.-]{0,63}$/.test(op)) {
    throw new CapvaultError("INVALID_REQUEST", "operation must be a lower-case name");
  }
  return op;
}

/**
 * Methods a grant may name: those of the IANA HTTP Method Registry an API uses (RFC 9110, PATCH, WebDAV, QUERY).
 * A grant for anything else (a typo such as FETCH, or TRACE/CONNECT, which the Proxy refuses) could never be used.
 */
const GRANTABLE_METHODS: ReadonlySet<string> = new Set([
  "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY", "SEARCH",
  "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT",
]);

/** Validate and normalise one grant. */
export function normaliseGrant(grant: Grant, limits: CapabilityLimits): Grant {
  if (!grant || typeof grant !== "object") throw new CapvaultError("INVALID_REQUEST", "a grant must be an object");
  return {
    connection: identifier(grant.connection, "grant.connection", limits),
    method: grantableMethod(grant.method),
    pathPrefix: normalisePathPrefix(grant.pathPrefix),
  };
}

/** The authority block: identity, tuple grants, expiry, operator flag. No rules, no secrets. */
export function authoritySnippet(spec: AuthoritySpec): DatalogSnippet {
  const params: Record<string, DatalogParam> = {
    tenant: spec.tenant,
    subject: spec.subject,
    expires: dateParam(spec.expiresAt, "expiresAt"),
  };
  const lines = ["tenant({tenant});", "subject({subject});"];
  spec.grants.forEach((g, i) => {
    lines.push(`right({c${i}}, {m${i}}, {p${i}});`);
    params[`c${i}`] = g.connection;
    params[`m${i}`] = g.method;
    params[`p${i}`] = g.pathPrefix;
  });
  if (spec.operator) lines.push("operator(true);");
  lines.push("check if time($time), $time <= {expires};");
  return { code: lines.join("\n"), params };
}
