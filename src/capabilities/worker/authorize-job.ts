import type { Authorizer } from "@biscuit-auth/biscuit-wasm";
import { assertSafeParams } from "../datalog-values.js";
import type { AuthorizeJobResult, AuthorizerOutcome, Job } from "../protocol.js";
import { outcomeOf } from "../binding/authorizer-outcome.js";
import { isWasmPanic, mapBindingError, retryOnTimeout } from "../binding/binding-errors.js";
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

/** Turn a binding authorization error into an outcome (or rethrow what is not an authorization result). */
function toOutcome(err: unknown, token: VerifiedToken): AuthorizerOutcome {
  const outcome = outcomeOf(err, token);
  if (!outcome) throw new JobFailure(mapBindingError(err, "token"));
  return outcome;
}
