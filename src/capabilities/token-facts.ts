import type { TokenIdentity } from "./protocol.js";
import { decodeToken, expiryOf, type DecodedBlock } from "./token-format.js";
import { CapvaultError } from "../errors/capvault-error.js";

/** What capvault reads from a verified token's own bytes, whatever runtime verified it. */
export interface TokenFacts {
  blocks: DecodedBlock[];
  /** `block:check` ids of the structural expiry checks. */
  expiryChecks: ReadonlySet<string>;
  /** Absent when not asked for (the worker reads it lazily). */
  identity?: TokenIdentity;
}

/**
 * Decode a token whose signatures were just verified (throws TokenFormatError on bytes capvault cannot decode, and
 * CAPABILITY_MALFORMED for a token that is not a capvault capability).
 */
export function tokenFactsOf(token: Uint8Array, options: { identity: boolean } = { identity: true }): TokenFacts {
  const blocks = decodeToken(token).blocks;
  const expiryChecks = new Set<string>();
  blocks.forEach((b, bi) => b.checks.forEach((c, ci) => expiryOf(c) && expiryChecks.add(`${bi}:${ci}`)));
  return { blocks, expiryChecks, ...(options.identity ? { identity: identityOf(blocks) } : {}) };
}

/**
 * The token's identity, read from the authority block's facts. Only the root key holder (capvault) can write the
 * authority block, and its bytes were verified, so reading them directly is as trustworthy as querying them. A token
 * without exactly one tenant and one subject is not a capvault capability: CAPABILITY_MALFORMED.
 */
export function identityOf(blocks: readonly DecodedBlock[]): TokenIdentity {
  const facts = blocks[0]?.facts ?? [];
  const strings = (name: string, arity: number) =>
    facts
      .filter((f) => f.name === name && f.terms.length === arity && f.terms.every((x) => "string" in x))
      .map((f) => f.terms.map((x) => (x as { string: string }).string));
  const tenants = strings("tenant", 1);
  const subjects = strings("subject", 1);
  if (tenants.length !== 1 || subjects.length !== 1) {
    throw new CapvaultError("CAPABILITY_MALFORMED", "not a capvault capability (tenant and subject)");
  }
  return {
    tenant: tenants[0][0],
    subject: subjects[0][0],
    operator: facts.some((f) => f.name === "operator" && f.terms.length === 1 && "boolean" in f.terms[0] && f.terms[0].boolean),
    grants: strings("right", 3).map(([connection, method, pathPrefix]) => ({ connection, method, pathPrefix })),
  };
}
