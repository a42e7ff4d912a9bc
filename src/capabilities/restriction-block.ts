import { CapvaultError } from "../errors/capvault-error.js";
import { normalisePathPrefix } from "./canonical-path.js";
import { dateParam, integerParam, stringParam, type DatalogParam, type DatalogSnippet } from "./datalog-values.js";
import type { CapabilityLimits } from "./limits.js";
import { APPROVAL_CHECK_PREFIX, identifier, normaliseMethod, type RawCheck, type Restriction } from "./vocabulary.js";

/*
 * An attenuation block from a Restriction (proto capvault.v1.Restriction): checks only, values as parameters.
 * See docs/capabilities.md for the table of fields and checks.
 */

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

  // Last, so that the other checks keep their indexes whether or not a block asks for approval.
  const approvalMethods = list(r.approvalMethods, "approvalMethods", limits, normaliseMethod);
  if (approvalMethods.length) {
    // Held for a person's approval (src/approvals), not refused: see APPROVAL_CHECK_PREFIX.
    lines.push(`${APPROVAL_CHECK_PREFIX}, method($m), {approvalMethods}.contains($m);`);
    params.approvalMethods = { set: approvalMethods };
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
