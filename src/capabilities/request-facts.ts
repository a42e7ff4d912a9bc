import { CapvaultError } from "../errors/capvault-error.js";
import { assertCanonicalPath } from "./canonical-path.js";
import { dateParam, stringParam, type DatalogParam, type DatalogSnippet } from "./datalog-values.js";
import type { CapabilityLimits } from "./limits.js";
import {
  DEFAULT_DENY,
  GRANT_OPERATIONS,
  GRANT_POLICY,
  identifier,
  normaliseHost,
  normaliseMethod,
  OPERATOR_POLICY,
  operationName,
  TENANT_CHECK,
  UNAPPROVED_FACT,
  type AccessRequest,
} from "./vocabulary.js";

/*
 * The authorizer's per-request code: ambient facts (exactly one of each; `query` and `body` may repeat), the tenant
 * check, ONE allow policy and `deny if true`. Values are parameters.
 */

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
  let method = "";
  let path = "";
  const allow = GRANT_OPERATIONS.has(operation) ? "grant" : "operator";
  let shape: RequestShape = { allow, queries: 0, bodyFields: 0, approved: false };

  if (allow === "grant") {
    method = normaliseMethod(req.method);
    path = assertCanonicalPath(req.path);
    stringParam(path, "path", { maxBytes: limits.maxValueBytes, reason: "PATH_INVALID" });
    params.connection = identifier(req.connection, "connection", limits);
    params.provider = identifier(req.provider, "provider", limits);
    params.host = normaliseHost(req.host);
    params.method = method;
    params.path = path;

    const query = req.query ?? [];
    if (!Array.isArray(query) || query.length > limits.maxQueryParams) {
      throw new CapvaultError("INVALID_REQUEST", `at most ${limits.maxQueryParams} query parameters`);
    }
    query.forEach((q, i) => {
      params[`q${i}n`] = stringParam(q?.name, "query name", { maxBytes: limits.maxIdentifierBytes, allowEmpty: true });
      params[`q${i}v`] = stringParam(q?.value, "query value", { maxBytes: limits.maxValueBytes, allowEmpty: true });
    });

    const body = bodyFields(req.body, limits);
    body.forEach(([name, value], i) => {
      params[`b${i}n`] = name;
      params[`b${i}v`] = value;
    });
    shape = { allow, queries: query.length, bodyFields: body.length, approved: req.approved === true };
  }
  // Operator operations get no connection/method/path facts: block checks on them fail, which only restricts.
  return { snippet: { code: codeOf(shape), params }, allow, operation, tenant, method, path };
}

/** What the request's code depends on: its values are all parameters. */
interface RequestShape {
  allow: "grant" | "operator";
  queries: number;
  bodyFields: number;
  approved: boolean;
}

/**
 * The code of a request of this shape. Requests of one shape share one code string (the native runtime compiles it
 * once and finds it again by this very string), so a distinct request costs its parameters only.
 */
function codeOf(shape: RequestShape): string {
  const key = `${shape.allow}:${shape.queries}:${shape.bodyFields}:${shape.approved}`;
  let code = codes.get(key);
  if (code === undefined) {
    const lines = ["time({now});", "operation({operation});", "tenant({tenant});"];
    if (shape.allow === "grant") {
      lines.push("connection({connection});", "provider({provider});", "host({host});", "method({method});", "path({path});");
      for (let i = 0; i < shape.queries; i++) lines.push(`query({q${i}n}, {q${i}v});`);
      for (let i = 0; i < shape.bodyFields; i++) lines.push(`body({b${i}n}, {b${i}v});`);
      if (!shape.approved) lines.push(`${UNAPPROVED_FACT};`);
    }
    lines.push(`${TENANT_CHECK};`, `${shape.allow === "grant" ? GRANT_POLICY : OPERATOR_POLICY};`, `${DEFAULT_DENY};`);
    code = lines.join("\n");
    codes.set(key, code);
    // A few shapes cover real traffic; an agent cycling through every count of query parameters and body fields
    // must not grow this without bound.
    if (codes.size > MAX_CODES) codes.delete(codes.keys().next().value as string);
  }
  return code;
}

const codes = new Map<string, string>();
const MAX_CODES = 256;

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
