import type { Reason } from "../errors/reasons.js";
import type { AuthorizerOutcome, PolicyStatement } from "./protocol.js";
import { APPROVAL_CHECK_PREFIX, DEFAULT_DENY, GRANT_POLICY, OPERATOR_POLICY, TENANT_CHECK } from "./vocabulary.js";

/** Why a request was refused (proto capvault.v1.Denial). */
export interface Denial {
  /** APPROVAL_REQUIRED for a step-up approval check: the request is held, not refused, if nothing else failed. */
  reason: Reason;
  /** Block index of the failing check, or -1 for an authorizer check or a policy. */
  blockIndex: number;
  /** Check index within its block (or among authorizer checks), or -1 for a policy. */
  checkIndex: number;
  /** Display text of the failing check or policy. */
  rule: string;
  /** The organisation policy file, when one refused. */
  policy: string;
  /** For APPROVAL_REQUIRED: why a person must approve (an organisation rule's reason, or the capability's block). */
  approval?: string;
  /** For APPROVAL_REQUIRED: the rule asks to show the approver the request body. */
  approvalShowsBody?: boolean;
}

/** What capvault put in the authorizer, in order, so binding indexes can be named. */
export interface AuthorizerLayout {
  checks: Array<{ kind: "org"; statement: PolicyStatement } | { kind: "tenant" }>;
  policies: Array<{ kind: "org"; statement: PolicyStatement } | { kind: "grant" | "operator" | "default-deny" }>;
}

/**
 * The layout of one authorizer: organisation checks then the tenant check; organisation deny policies, then the allow
 * policy, then `deny if true` (a merged template comes before the request's own code).
 */
export function authorizerLayout(statements: readonly PolicyStatement[], allow: "grant" | "operator"): AuthorizerLayout {
  let layouts = knownLayouts.get(statements);
  if (!layouts) knownLayouts.set(statements, (layouts = {}));
  return (layouts[allow] ??= layoutOf(statements, allow));
}

/** Layouts by policy statements (a loaded policy set's statements do not change). */
const knownLayouts = new WeakMap<readonly PolicyStatement[], { grant?: AuthorizerLayout; operator?: AuthorizerLayout }>();

function layoutOf(statements: readonly PolicyStatement[], allow: "grant" | "operator"): AuthorizerLayout {
  return {
    checks: [...statements.filter((s) => s.kind === "check").map((statement) => ({ kind: "org" as const, statement })), { kind: "tenant" }],
    policies: [
      ...statements.filter((s) => s.kind === "deny").map((statement) => ({ kind: "org" as const, statement })),
      { kind: allow },
      { kind: "default-deny" },
    ],
  };
}

/** Whether an outcome allows the request: only capvault's own allow policy can allow. */
export function isAllowed(outcome: AuthorizerOutcome, layout: AuthorizerLayout): boolean {
  if (!outcome.ok) return false;
  const kind = layout.policies[outcome.policy]?.kind;
  return kind === "grant" || kind === "operator";
}

/** Name every reason an outcome refused a request. */
export function denialsOf(outcome: AuthorizerOutcome, layout: AuthorizerLayout): Denial[] {
  if (outcome.ok) {
    return isAllowed(outcome, layout) ? [] : [{ reason: "INTERNAL", blockIndex: -1, checkIndex: -1, rule: "unexpected policy", policy: "" }];
  }
  if (outcome.kind === "run-limit") {
    return [{ reason: "AUTHORIZATION_LIMIT", blockIndex: -1, checkIndex: -1, rule: `run limit: ${outcome.limit}`, policy: "" }];
  }
  if (outcome.kind === "execution") {
    return [{ reason: "CAPABILITY_CHECK_FAILED", blockIndex: -1, checkIndex: -1, rule: `execution error: ${outcome.error}`, policy: "" }];
  }
  const denials: Denial[] = outcome.checks.map((c) => {
    if (c.block >= 0) {
      if (c.rule.startsWith(APPROVAL_CHECK_PREFIX)) {
        const approval = `the capability (block ${c.block}) needs a person's approval for this request`;
        return { reason: "APPROVAL_REQUIRED", blockIndex: c.block, checkIndex: c.check, rule: c.rule, policy: "", approval };
      }
      return { reason: c.expiry ? "CAPABILITY_EXPIRED" : "CAPABILITY_CHECK_FAILED", blockIndex: c.block, checkIndex: c.check, rule: c.rule, policy: "" };
    }
    const entry = layout.checks[c.check];
    if (entry?.kind === "org" && entry.statement.approval) {
      const { reason, rule, showBody } = entry.statement.approval;
      return {
        reason: "APPROVAL_REQUIRED",
        blockIndex: -1,
        checkIndex: c.check,
        rule,
        policy: entry.statement.file,
        approval: reason,
        ...(showBody ? { approvalShowsBody: true } : {}),
      };
    }
    if (entry?.kind === "org") {
      return { reason: "POLICY_DENIED", blockIndex: -1, checkIndex: c.check, rule: entry.statement.source, policy: entry.statement.file };
    }
    return { reason: "CAPABILITY_TENANT_MISMATCH", blockIndex: -1, checkIndex: c.check, rule: TENANT_CHECK.replace("{tenant}", "<request tenant>"), policy: "" };
  });
  const policy = outcome.policy;
  if (!policy || !policy.allow) {
    const entry = policy ? layout.policies[policy.index] : undefined;
    if (entry?.kind === "org") {
      denials.push({ reason: "POLICY_DENIED", blockIndex: -1, checkIndex: -1, rule: entry.statement.source, policy: entry.statement.file });
    } else {
      // The final deny: the allow policy did not match.
      const operator = layout.policies.some((p) => p.kind === "operator");
      denials.push({
        reason: operator ? "OPERATOR_REQUIRED" : "NO_MATCHING_GRANT",
        blockIndex: -1,
        checkIndex: -1,
        rule: `${operator ? OPERATOR_POLICY : GRANT_POLICY} (else ${DEFAULT_DENY})`,
        policy: "",
      });
    }
  }
  return denials;
}

const PRIORITY: Reason[] = [
  "CAPABILITY_EXPIRED",
  "CAPABILITY_TENANT_MISMATCH",
  "OPERATOR_REQUIRED",
  "CAPABILITY_CHECK_FAILED",
  "POLICY_DENIED",
  "AUTHORIZATION_LIMIT",
  "NO_MATCHING_GRANT",
  // Last: a request is held for approval only when nothing else refused it.
  "APPROVAL_REQUIRED",
];

/** The single reason to report for a set of denials (an expired token is reported as expired first, and so on). */
export function primaryReason(denials: readonly Denial[]): Reason | undefined {
  if (denials.length === 0) return undefined;
  for (const reason of PRIORITY) if (denials.some((d) => d.reason === reason)) return reason;
  return denials[0]?.reason;
}
