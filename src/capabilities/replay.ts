import type { RunLimits } from "./limits.js";
import type { ReplayResult } from "./protocol.js";
import type { WorkerPool } from "./worker-pool.js";

export type { ReplayResult } from "./protocol.js";

/**
 * Low-level, for conformance and diagnostics only (never for requests): parse `token` with an explicit root public
 * key and run arbitrary authorizer Datalog on it in a pool worker. Returns the binding's raw result,
 * `{Ok: policy index}` or `{Err: error}`, and the revocation ids (null when the token did not parse).
 */
export function replayAuthorizer(
  pool: WorkerPool,
  token: Uint8Array,
  publicKeyHex: string,
  authorizerCode: string,
  limits?: RunLimits,
): Promise<ReplayResult> {
  return pool.run({ kind: "replay", token, publicKeyHex, code: authorizerCode, ...(limits ? { limits } : {}) });
}
