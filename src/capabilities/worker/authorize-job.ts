import type { Authorizer } from "@biscuit-auth/biscuit-wasm";
import { printCheck } from "../datalog-printer.js";
import { assertSafeParams } from "../datalog-values.js";
import type { AuthorizeJobResult, AuthorizerOutcome, FailedCheck, Job } from "../protocol.js";
import { isWasmPanic, mapBindingError, retryOnTimeout, variantOf } from "../binding/binding-errors.js";
import { JobFailure, type WorkerContext } from "./context.js";
import type { VerifiedToken } from "./token-cache.js";

/**
 * Authorize one request: a fresh authorizer = organisation policy template (merged, never consumed) + the request's
 * ambient facts, tenant check, allow policy and `deny if true`, built on the verified (cached) token and run with
 * limits. Returns the raw outcome; the main thread turns it into denials (denials.ts).
 */
export function authorizeJob(ctx: WorkerContext, job: Extract<Job, { kind: "authorize" }>): AuthorizeJobResult {
  const verified = ctx.tokens.verify(job.token, job.key, job.maxBlocks);
  const identity = ctx.tokens.identity(verified);
  assertSafeParams(job.request.params);
  const limits = {
    max_facts: job.limits.maxFacts,
    max_iterations: job.limits.maxIterations,
    max_time_micro: job.limits.maxTimeMicros,
  };
  let outcome: AuthorizerOutcome;
  try {
    // Fact generation runs with the binding's fixed 1 ms limit: a Timeout there (or in the run) is retried.
    const policy = retryOnTimeout(() => {
      const authorizer = newAuthorizer(ctx, job, verified);
      try {
        return authorizer.authorizeWithLimits(limits);
      } finally {
        authorizer.free();
      }
    });
    outcome = { ok: true, policy };
  } catch (err) {
    if (isWasmPanic(err) || err instanceof JobFailure) throw err;
    outcome = toOutcome(err, verified);
  }
  return { revocationIds: verified.revocationIds, identity, outcome };
}

/** A fresh authorizer: the policy template merged (cloned) and the request's code added, built on the token. */
function newAuthorizer(ctx: WorkerContext, job: Extract<Job, { kind: "authorize" }>, verified: VerifiedToken): Authorizer {
  const builder = new ctx.binding.AuthorizerBuilder();
  try {
    if (job.policies) builder.merge(ctx.policies.template(job.policies));
    ctx.snippets.addTo(builder, job.request);
  } catch (err) {
    builder.free();
    if (isWasmPanic(err) || err instanceof JobFailure) throw err;
    throw new JobFailure(mapBindingError(err, "datalog"));
  }
  return builder.buildAuthenticated(verified.biscuit); // consumes the builder; throws authorization errors as values
}

interface BindingFailedCheck {
  Block?: { block_id: number; check_id: number; rule: string };
  Authorizer?: { check_id: number; rule: string };
}

/** Turn a binding authorization error into an outcome (or rethrow what is not an authorization result). */
function toOutcome(err: unknown, token: VerifiedToken): AuthorizerOutcome {
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
      throw new JobFailure(mapBindingError(err, "token"));
  }
}

function failedCheck(c: BindingFailedCheck, token: VerifiedToken): FailedCheck {
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
