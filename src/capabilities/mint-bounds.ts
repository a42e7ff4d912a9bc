import { CapvaultError } from "../errors/capvault-error.js";
import type { InspectOutput } from "./inspect.js";
import type { Restriction } from "./vocabulary.js";

/** What a capability may mint: never more than itself (docs/capabilities.md, "Minting never widens"). */
export interface MintBounds {
  /** The minter's own expiry: nothing it mints outlives it. */
  expiresAt?: Date;
  /** The minter's attenuation blocks, appended (as checks) to everything it mints. */
  carried: Restriction[];
}

/**
 * The bounds a minting capability puts on what it mints:
 * - an operator capability that has been narrowed (any attenuation block) never mints an operator capability: a
 *   fresh operator token would carry none of the narrowing;
 * - the minted token expires no later than the minter;
 * - every check of the minter's attenuation blocks is appended to the minted token, so every request the minted
 *   token allows is one the minter's restrictions allow too. A block that cannot be carried that way (facts or rules
 *   of its own, or a third-party block) makes Mint refuse.
 */
export function mintBoundsOf(minter: InspectOutput, request: { operator: boolean }): MintBounds {
  const narrowing = minter.blocks.slice(1);
  if (request.operator && narrowing.length > 0) {
    throw new CapvaultError("MINT_WIDER_THAN_MINTER", "a narrowed operator capability cannot mint an operator capability", {
      metadata: { blocks: String(narrowing.length) },
    });
  }
  const carried = narrowing.map((block): Restriction => {
    if (block.externalKey || block.facts.length || block.rules.length) {
      throw new CapvaultError("MINT_WIDER_THAN_MINTER", "the minter's restrictions cannot be carried into a minted capability", {
        metadata: { block: String(block.index) },
      });
    }
    return { checks: block.checks };
  });
  return { expiresAt: minter.expiresAt, carried };
}

/** The lifetime to mint with: the requested one, cut to end no later than the minter's expiry. */
export function boundedTtlSeconds(requested: number | undefined, bounds: MintBounds, now: Date): number | undefined {
  if (!bounds.expiresAt || requested === undefined) return requested;
  const left = Math.floor((bounds.expiresAt.getTime() - now.getTime()) / 1000);
  if (left < 1) throw new CapvaultError("MINT_WIDER_THAN_MINTER", "the minting capability expires within a second");
  return Math.min(requested, left);
}
