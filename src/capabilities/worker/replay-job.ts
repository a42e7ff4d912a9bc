import type { Job, ReplayResult } from "../protocol.js";
import { isTimeout, isWasmPanic } from "../binding/binding-errors.js";
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
    // The binding's fact generation has a fixed 1 ms limit that a loaded machine can exceed: like authorize-job,
    // retry a Timeout a few times before reporting it.
    let result = runOnce(B, token, job, guard);
    for (let attempt = 1; attempt < 4 && "Err" in result && isTimeout(result.Err); attempt++) result = runOnce(B, token, job, guard);
    return { revocationIds, result };
  } finally {
    token.free();
  }
}

function runOnce(
  B: WorkerContext["binding"],
  token: ReturnType<WorkerContext["binding"]["Biscuit"]["fromBytes"]>,
  job: Extract<Job, { kind: "replay" }>,
  guard: <T>(f: () => T) => { value: T } | { Err: unknown },
): ReplayResult["result"] {
  const builder = new B.AuthorizerBuilder();
  const added = guard(() => builder.addCode(job.code));
  if ("Err" in added) {
    builder.free();
    return added;
  }
  const authorizer = guard(() => builder.buildAuthenticated(token));
  if ("Err" in authorizer) return authorizer;
  try {
    const limits = job.limits
      ? { max_facts: job.limits.maxFacts, max_iterations: job.limits.maxIterations, max_time_micro: job.limits.maxTimeMicros }
      : {};
    const outcome = guard(() => authorizer.value.authorizeWithLimits(limits));
    return "Err" in outcome ? outcome : { Ok: outcome.value };
  } finally {
    authorizer.value.free();
  }
}
