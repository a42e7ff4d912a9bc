import { printCheck, printRule } from "./datalog-printer.js";
import type { CapabilityLimits } from "./limits.js";
import type { RevocationSet } from "./revocation-set.js";
import type { RootPublicKey } from "./root-keys.js";
import { expiryOf, type Predicate } from "./token-format.js";
import { prepareToken } from "./token-input.js";
import type { Grant } from "./vocabulary.js";
import type { WorkerPool } from "./worker-pool.js";

/** One block as Inspect shows it (proto capvault.v1.Block, plus rules and the external key of third-party blocks). */
export interface InspectedBlock {
  index: number;
  revocationId: string;
  /** Facts as structured data (from the signed bytes, never from printed Datalog). */
  facts: Predicate[];
  /** Checks as display text (strings escaped). */
  checks: string[];
  /** Rules as display text (capvault never mints rules; shown for tokens attenuated elsewhere). */
  rules: string[];
  /** The earliest expiry check of this block. */
  expiresAt?: Date;
  /** For third-party blocks, the signer's public key. */
  externalKey?: string;
}

/** A token's structure (proto capvault.v1.InspectResponse). */
export interface InspectOutput {
  blocks: InspectedBlock[];
  rootKeyId: string;
  /** The earliest expiry of all blocks. */
  expiresAt?: Date;
  revocationIds: string[];
  tenant: string;
  subject: string;
  operator: boolean;
  grants: Grant[];
  /** Whether any block is revoked (only meaningful when a RevocationSet was given). */
  revoked: boolean;
}

function earliest(dates: Array<Date | undefined>): Date | undefined {
  const ds = dates.filter((d): d is Date => d !== undefined);
  return ds.length ? new Date(Math.min(...ds.map((d) => d.getTime()))) : undefined;
}

/** Verify a token and describe it block by block. */
export async function inspect(
  pool: WorkerPool,
  limits: CapabilityLimits,
  token: string,
  publicKeys: readonly RootPublicKey[],
  revocations?: RevocationSet,
): Promise<InspectOutput> {
  const prepared = prepareToken(token, publicKeys, limits);
  const result = await pool.run(
    { kind: "inspect", token: prepared.bytes, key: prepared.key, maxBlocks: limits.maxBlocks },
    prepared.affinity,
  );
  const blocks = result.blocks.map((b, index): InspectedBlock => {
    const expiresAt = earliest(b.checks.map(expiryOf));
    return {
      index,
      revocationId: result.revocationIds[index] ?? "",
      facts: b.facts,
      checks: b.checks.map(printCheck),
      rules: b.rules.map(printRule),
      ...(expiresAt ? { expiresAt } : {}),
      ...(b.externalKey ? { externalKey: b.externalKey } : {}),
    };
  });
  const expiresAt = earliest(blocks.map((b) => b.expiresAt));
  return {
    blocks,
    rootKeyId: String(prepared.key.id),
    ...(expiresAt ? { expiresAt } : {}),
    revocationIds: result.revocationIds,
    tenant: result.identity.tenant,
    subject: result.identity.subject,
    operator: result.identity.operator,
    grants: result.identity.grants,
    revoked: revocations?.isRevoked(result.identity.tenant, result.revocationIds) ?? false,
  };
}
