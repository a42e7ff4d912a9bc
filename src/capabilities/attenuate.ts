import { CapvaultError } from "../errors/capvault-error.js";
import type { CapabilityLimits } from "./limits.js";
import type { RootPublicKey } from "./root-keys.js";
import { encodeToken, prepareToken } from "./token-input.js";
import { compileRestriction } from "./restriction-block.js";
import type { Restriction } from "./vocabulary.js";
import type { WorkerPool } from "./worker-pool.js";

/** An attenuated token (proto capvault.v1.AttenuateResponse). */
export interface AttenuateOutput {
  token: string;
  revocationIds: string[];
  /** The expiry this block adds, if any. */
  expiresAt?: Date;
}

/**
 * Append one block of checks that narrows `token` (connections, methods, path prefix, expiry, query/body values, raw
 * checks). The token is verified first; the result can only do less. Raw checks must each be exactly one check
 * (DATALOG_INVALID otherwise).
 */
export async function attenuate(
  pool: WorkerPool,
  limits: CapabilityLimits,
  token: string,
  restriction: Restriction,
  publicKeys: readonly RootPublicKey[],
  now: Date = new Date(),
): Promise<AttenuateOutput> {
  const prepared = prepareToken(token, publicKeys, limits);
  const compiled = compileRestriction(restriction, now, limits);
  if (prepared.blocks + 1 > limits.maxBlocks) {
    throw new CapvaultError("CAPABILITY_TOO_DEEP", "the capability cannot take another block");
  }
  const result = await pool.run(
    {
      kind: "attenuate",
      token: prepared.bytes,
      key: prepared.key,
      block: compiled.block,
      rawChecks: compiled.rawChecks,
      maxBlocks: limits.maxBlocks,
    },
    prepared.affinity,
  );
  if (result.token.length > limits.maxTokenBytes) {
    throw new CapvaultError("CAPABILITY_TOO_LARGE", "the attenuated capability would exceed the token size limit");
  }
  return {
    token: encodeToken(result.token),
    revocationIds: result.revocationIds,
    ...(compiled.expiresAt ? { expiresAt: compiled.expiresAt } : {}),
  };
}
