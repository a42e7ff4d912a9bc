import { CapvaultError } from "../errors/capvault-error.js";
import { assertCanonicalPath, normalisePathPrefix } from "./canonical-path.js";
import { dateParam, integerParam, stringParam, type DatalogParam, type DatalogSnippet } from "./datalog-values.js";
import type { CapabilityLimits } from "./limits.js";

/**
 * capvault's Datalog vocabulary: what the authority block says, what an attenuation block may say, which ambient
 * facts the authorizer supplies and which policies decide. Every value is a parameter; the code strings here are
 * constants. See docs/capabilities.md.
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

/** Lower-case and validate a host name (with optional port). */
export function normaliseHost(host: unknown): string {
  if (typeof host !== "string" || !/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::\d{1,5})?$/.test(host)) {
    throw new CapvaultError("INVALID_REQUEST", "host must be a host name");
  }
  return host.toLowerCase();
}

function identifier(value: unknown, what: string, limits: CapabilityLimits): string {
  return stringParam(value, what, { maxBytes: limits.maxIdentifierBytes });
}

function operationName(value: unknown): string {
  const op = value ?? "proxy";
  if (typeof op !== "string" || !/^[a-z][a-z0-9_.-]{0,63}$/.test(op)) {
    throw new CapvaultError("INVALID_REQUEST", "operation must be a lower-case name");
  }
  return op;
}

/** Validate and normalise one grant. */
export function normaliseGrant(grant: Grant, limits: CapabilityLimits): Grant {
  if (!grant || typeof grant !== "object") throw new CapvaultError("INVALID_REQUEST", "a grant must be an object");
  return {
    connection: identifier(grant.connection, "grant.connection", limits),
    method: normaliseMethod(grant.method),
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

function list(values: unknown, what: string, limits: CapabilityLimits, each: (v: unknown) => string): string[] {
  if (values === undefined) return [];
  if (!Array.isArray(values)) throw new CapvaultError("INVALID_REQUEST", `${what} must be a list`);
  if (values.length > limits.maxListValues) throw new CapvaultError("INVALID_REQUEST", `${what} has too many values`);
  return [...new Set(values.map(each))];
}

/** The result of compiling a restriction: the generated checks, the raw checks, and the expiry it sets. */
export interface CompiledRestriction {
  block: DatalogSnippet;
  rawChecks: Array<{ code: string; params: Record<string, DatalogParam> }>;
  expiresAt?: Date;
}

/**
 * Compile a restriction into an attenuation block of checks only. Throws INVALID_REQUEST / PATH_INVALID /
 * METHOD_INVALID / DATALOG_INVALID for bad input, and INVALID_REQUEST for an empty restriction.
 */
export function compileRestriction(r: Restriction, now: Date, limits: CapabilityLimits): CompiledRestriction {
  if (!r || typeof r !== "object") throw new CapvaultError("INVALID_REQUEST", "restriction must be an object");
  const lines: string[] = [];
  const params: Record<string, DatalogParam> = {};

  const connections = list(r.connections, "connections", limits, (v) => identifier(v, "connections[]", limits));
  if (connections.length) {
    lines.push("check if connection($c), {connections}.contains($c);");
    params.connections = { set: connections };
  }
  const methods = list(r.methods, "methods", limits, normaliseMethod);
  if (methods.length) {
    lines.push("check if method($m), {methods}.contains($m);");
    params.methods = { set: methods };
  }
  if (r.pathPrefix !== undefined && r.pathPrefix !== "") {
    lines.push('check if path($path), ($path + "/").starts_with({prefix});');
    params.prefix = normalisePathPrefix(r.pathPrefix);
  }

  const expiries: Date[] = [];
  const ttl = r.ttlSeconds ?? (r.ttl ? r.ttl.seconds + (r.ttl.nanos ?? 0) / 1e9 : undefined);
  if (ttl !== undefined) {
    if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0 || ttl > limits.maxTtlSeconds) {
      throw new CapvaultError("INVALID_REQUEST", "ttl must be positive and within the maximum lifetime");
    }
    expiries.push(new Date(Math.floor(now.getTime() / 1000 + ttl) * 1000));
  }
  if (r.expiresAt !== undefined) expiries.push(new Date(dateParam(r.expiresAt, "expiresAt").date));
  let expiresAt: Date | undefined;
  if (expiries.length) {
    expiresAt = new Date(Math.min(...expiries.map((d) => d.getTime())));
    lines.push("check if time($time), $time <= {expires};");
    params.expires = dateParam(expiresAt, "expiresAt");
  }

  for (const [kind, constraints] of [["query", r.query], ["body", r.body]] as const) {
    if (constraints === undefined) continue;
    if (!Array.isArray(constraints) || constraints.length > limits.maxListValues) {
      throw new CapvaultError("INVALID_REQUEST", `${kind} constraints must be a short list`);
    }
    constraints.forEach((fc, i) => {
      const name = identifier(fc?.name, `${kind}[].name`, limits);
      const values = list(fc?.values, `${kind}[].values`, limits, (v) =>
        stringParam(v, `${kind}[].values[]`, { maxBytes: limits.maxValueBytes, allowEmpty: true }),
      );
      if (!values.length) throw new CapvaultError("INVALID_REQUEST", `${kind} constraint ${name} has no values`);
      // `check all` fails when no fact matches, and when any occurrence has another value: the field must be present
      // and every occurrence allowed (a repeated query parameter cannot smuggle a second value).
      lines.push(`check all ${kind}({${kind}${i}n}, $v), {${kind}${i}v}.contains($v);`);
      params[`${kind}${i}n`] = name;
      params[`${kind}${i}v`] = { set: values };
    });
  }

  const rawChecks = compileRawChecks(r.checks, limits);
  if (lines.length === 0 && rawChecks.length === 0) {
    throw new CapvaultError("INVALID_REQUEST", "the restriction is empty: set at least one field");
  }
  return { block: { code: lines.join("\n"), params }, rawChecks, ...(expiresAt ? { expiresAt } : {}) };
}

function compileRawChecks(checks: Restriction["checks"], limits: CapabilityLimits): CompiledRestriction["rawChecks"] {
  if (checks === undefined) return [];
  if (!Array.isArray(checks) || checks.length > limits.maxRawChecks) {
    throw new CapvaultError("DATALOG_INVALID", `at most ${limits.maxRawChecks} checks`);
  }
  return checks.map((c, i) => {
    const raw: RawCheck = typeof c === "string" ? { code: c } : c;
    const code = stringParam(raw?.code, `checks[${i}]`, { maxBytes: limits.maxCheckBytes, reason: "DATALOG_INVALID" })
      .trim()
      .replace(/;\s*$/, "");
    if (!/^(check if|check all|reject if)\s/.test(code)) {
      throw new CapvaultError("DATALOG_INVALID", `checks[${i}] must be a single check (check if, check all, reject if)`);
    }
    const params: Record<string, DatalogParam> = {};
    for (const [name, value] of Object.entries(raw.params ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new CapvaultError("DATALOG_INVALID", `bad parameter name ${name}`);
      params[name] =
        value instanceof Date ? dateParam(value, name)
          : typeof value === "string" ? stringParam(value, name, { maxBytes: limits.maxValueBytes, allowEmpty: true })
            : typeof value === "boolean" ? value
              : integerParam(value, name);
    }
    return { code, params };
  });
}

/** The ambient facts and policies of one authorization, with the layout needed to explain a denial. */
export interface CompiledRequest {
  snippet: DatalogSnippet;
  /** Which allow policy was used. */
  allow: "grant" | "operator";
  operation: string;
  tenant: string;
  method: string;
  path: string;
}

/**
 * Compile a request into ambient facts (exactly one of each; `query` and `body` may repeat), the tenant check, ONE
 * allow policy and `deny if true`.
 */
export function compileRequest(req: AccessRequest, now: Date, limits: CapabilityLimits): CompiledRequest {
  if (!req || typeof req !== "object") throw new CapvaultError("INVALID_REQUEST", "request must be an object");
  const operation = operationName(req.operation);
  const tenant = identifier(req.tenant, "tenant", limits);
  const params: Record<string, DatalogParam> = { now: dateParam(now, "now"), operation, tenant };
  const lines = ["time({now});", "operation({operation});", "tenant({tenant});"];
  let method = "";
  let path = "";
  const allow = GRANT_OPERATIONS.has(operation) ? "grant" : "operator";

  if (allow === "grant") {
    method = normaliseMethod(req.method);
    path = assertCanonicalPath(req.path);
    stringParam(path, "path", { maxBytes: limits.maxValueBytes, reason: "PATH_INVALID" });
    Object.assign(params, {
      connection: identifier(req.connection, "connection", limits),
      provider: identifier(req.provider, "provider", limits),
      host: normaliseHost(req.host),
      method,
      path,
    });
    lines.push("connection({connection});", "provider({provider});", "host({host});", "method({method});", "path({path});");

    const query = req.query ?? [];
    if (!Array.isArray(query) || query.length > limits.maxQueryParams) {
      throw new CapvaultError("INVALID_REQUEST", `at most ${limits.maxQueryParams} query parameters`);
    }
    query.forEach((q, i) => {
      params[`q${i}n`] = stringParam(q?.name, "query name", { maxBytes: limits.maxIdentifierBytes, allowEmpty: true });
      params[`q${i}v`] = stringParam(q?.value, "query value", { maxBytes: limits.maxValueBytes, allowEmpty: true });
      lines.push(`query({q${i}n}, {q${i}v});`);
    });

    bodyFields(req.body, limits).forEach(([name, value], i) => {
      params[`b${i}n`] = name;
      params[`b${i}v`] = value;
      lines.push(`body({b${i}n}, {b${i}v});`);
    });
  }
  // Operator operations get no connection/method/path facts: block checks on them fail, which only restricts.

  lines.push(`${TENANT_CHECK};`, `${allow === "grant" ? GRANT_POLICY : OPERATOR_POLICY};`, `${DEFAULT_DENY};`);
  return { snippet: { code: lines.join("\n"), params }, allow, operation, tenant, method, path };
}

/**
 * Top-level body fields as `[name, value]` pairs. Strings, booleans and safe integers keep their type; every other
 * value (floats, big integers, null, objects, arrays) becomes its JSON text, so that each top-level field yields
 * exactly one fact (a field cannot dodge a `reject if body(...)` by being an object where a string was expected).
 * A body that is not a JSON object yields no facts (so `check if body(...)` and `check all body(...)` fail).
 */
export function bodyFields(body: AccessRequest["body"], limits: CapabilityLimits): Array<[string, DatalogParam]> {
  if (body === undefined) return [];
  let fields: Record<string, unknown>;
  if (body instanceof Uint8Array) {
    if (body.length === 0) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
    } catch {
      return [];
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return [];
    fields = parsed as Record<string, unknown>;
  } else if (body && typeof body === "object" && !Array.isArray(body)) {
    fields = body;
  } else {
    throw new CapvaultError("INVALID_REQUEST", "body must be JSON bytes or an object");
  }
  const entries = Object.entries(fields);
  if (entries.length > limits.maxBodyFields) {
    throw new CapvaultError("INVALID_REQUEST", `at most ${limits.maxBodyFields} top-level body fields`);
  }
  return entries.map(([name, value]) => {
    const key = stringParam(name, "body field name", { maxBytes: limits.maxIdentifierBytes, allowEmpty: true });
    let v: DatalogParam;
    if (typeof value === "string") v = value;
    else if (typeof value === "boolean") v = value;
    else if (typeof value === "number" && Number.isSafeInteger(value)) v = value;
    else if (typeof value === "bigint") v = String(value);
    else v = JSON.stringify(value) ?? "null";
    if (typeof v === "string") v = stringParam(v, "body field value", { maxBytes: limits.maxValueBytes, allowEmpty: true });
    return [key, v];
  });
}
