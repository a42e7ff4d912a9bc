import type { Job, ReplayResult } from "../protocol.js";
import { isWasmPanic } from "./binding-errors.js";
import type { WorkerContext } from "./context.js";

/**
 * Low-level: parse a token with an explicit root public key and run arbitrary authorizer code on it, returning the
 * binding's raw result. Used to replay the Biscuit specification samples (conformance), never for requests.
 */
export function replayJob(ctx: WorkerContext, job: Extract<Job, { kind: "replay" }>): ReplayResult {
  const B = ctx.binding;
  const guard = <T>(f: () => T): { value: T } | { Err: unknown } => {
    try {
      return { value: f() };
    } catch (err) {
      if (isWasmPanic(err)) throw err;
      return { Err: err instanceof Error ? { Error: err.message } : err };
    }
  };
  const key = guard(() => B.PublicKey.fromString(job.publicKeyHex, B.SignatureAlgorithm.Ed25519));
  if ("Err" in key) return { revocationIds: null, result: key };
  const parsed = guard(() => B.Biscuit.fromBytes(job.token, key.value));
  key.value.free();
  if ("Err" in parsed) return { revocationIds: null, result: parsed };
  const token = parsed.value;
  try {
    const revocationIds = token.getRevocationIdentifiers() as string[];
    const builder = new B.AuthorizerBuilder();
    const added = guard(() => builder.addCode(job.code));
    if ("Err" in added) {
      builder.free();
      return { revocationIds, result: added };
    }
    const authorizer = guard(() => builder.buildAuthenticated(token));
    if ("Err" in authorizer) return { revocationIds, result: authorizer };
    try {
      const limits = job.limits
        ? { max_facts: job.limits.maxFacts, max_iterations: job.limits.maxIterations, max_time_micro: job.limits.maxTimeMicros }
        : {};
      const outcome = guard(() => authorizer.value.authorizeWithLimits(limits));
      return { revocationIds, result: "Err" in outcome ? outcome : { Ok: outcome.value } };
    } finally {
      authorizer.value.free();
    }
  } finally {
    token.free();
  }
}
