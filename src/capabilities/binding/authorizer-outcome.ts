import { printCheck } from "../datalog-printer.js";
import type { AuthorizerOutcome, FailedCheck } from "../protocol.js";
import type { DecodedBlock } from "../token-format.js";
import { variantOf } from "./binding-errors.js";

/** The token as needed to name a failing check: its decoded blocks and its structural expiry checks. */
export interface CheckSource {
  blocks: readonly DecodedBlock[];
  expiryChecks: ReadonlySet<string>;
}

interface BindingFailedCheck {
  Block?: { block_id: number; check_id: number; rule: string };
  Authorizer?: { check_id: number; rule: string };
}

/**
 * A biscuit-auth authorization error (serde JSON, the same from biscuit-wasm and from the native runtime) as an
 * outcome; undefined for an error that is not an authorization result (the caller maps it with mapBindingError).
 */
export function outcomeOf(err: unknown, token: CheckSource): AuthorizerOutcome | undefined {
  const e = err as Record<string, any>;
  switch (variantOf(err)) {
    case "FailedLogic": {
      const logic = e.FailedLogic;
      const unauthorized = logic?.Unauthorized ?? logic?.NoMatchingPolicy;
      if (!unauthorized) return { ok: false, kind: "execution", error: variantOf(logic) ?? "FailedLogic" };
      const checks = ((unauthorized.checks ?? []) as BindingFailedCheck[]).map((c) => failedCheck(c, token));
      const p = logic.Unauthorized?.policy as { Allow?: number; Deny?: number } | undefined;
      const policy = p === undefined ? undefined
        : p.Allow !== undefined ? { allow: true, index: p.Allow } : { allow: false, index: p.Deny ?? -1 };
      return { ok: false, kind: "unauthorized", ...(policy ? { policy } : {}), checks };
    }
    case "RunLimit":
      return { ok: false, kind: "run-limit", limit: String(variantOf(e.RunLimit) ?? "limit") };
    case "Execution":
      return { ok: false, kind: "execution", error: String(variantOf(e.Execution) ?? "error") };
    default:
      return undefined;
  }
}

function failedCheck(c: BindingFailedCheck, token: CheckSource): FailedCheck {
  if (c.Block) {
    const { block_id: block, check_id: check } = c.Block;
    const decoded = token.blocks[block]?.checks[check];
    return {
      block,
      check,
      // capvault's own printing (strings escaped) when available; the binding's otherwise.
      rule: decoded ? printCheck(decoded) : c.Block.rule,
      expiry: token.expiryChecks.has(`${block}:${check}`),
    };
  }
  return { block: -1, check: c.Authorizer?.check_id ?? -1, rule: c.Authorizer?.rule ?? "", expiry: false };
}
