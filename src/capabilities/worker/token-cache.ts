import { createHash } from "node:crypto";
import type { Biscuit, PublicKey } from "@biscuit-auth/biscuit-wasm";
import type { TokenIdentity, VerifyKey } from "../protocol.js";
import { TokenFormatError, type DecodedBlock } from "../token-format.js";
import { identityOf, tokenFactsOf } from "../token-facts.js";
import { CapvaultError } from "../../errors/capvault-error.js";
import { isWasmPanic, mapBindingError } from "../binding/binding-errors.js";
import { JobFailure } from "./context.js";
import type { BiscuitBinding } from "../binding/wasm-loader.js";

/** A verified token, as cached inside one worker. */
export interface VerifiedToken {
  biscuit: Biscuit;
  revocationIds: string[];
  blocks: DecodedBlock[];
  /** `block:check` ids of the structural expiry checks. */
  expiryChecks: ReadonlySet<string>;
  /** Filled on first use by {@link TokenCache.identity}. */
  identity?: TokenIdentity;
}

/**
 * Parses and verifies tokens with the binding, and keeps the results in a bounded LRU keyed by a hash of the token
 * bytes and the verifying key, so repeated authorizations of the same token skip parse + signature verification.
 * Evicted entries are freed. The whole cache dies with its worker (which is how wasm memory is reclaimed).
 */
export class TokenCache {
  private readonly entries = new Map<string, VerifiedToken>();
  private readonly keys = new Map<string, PublicKey>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly binding: BiscuitBinding,
    private readonly capacity: number,
  ) {}

  /** Parse and verify `token` with `key` (cached). Throws JobFailure with a capvault reason. */
  verify(token: Uint8Array, key: VerifyKey, maxBlocks: number): VerifiedToken {
    const cacheKey = `${createHash("sha256").update(token).digest("hex")}:${key.id}:${key.publicKeyHex}`;
    const hit = this.entries.get(cacheKey);
    if (hit) {
      this.entries.delete(cacheKey);
      this.entries.set(cacheKey, hit);
      this.hits++;
      return hit;
    }
    this.misses++;
    const entry = this.parse(token, key, maxBlocks);
    if (this.capacity > 0) {
      this.entries.set(cacheKey, entry);
      while (this.entries.size > this.capacity) {
        const [oldest, evicted] = this.entries.entries().next().value as [string, VerifiedToken];
        this.entries.delete(oldest);
        evicted.biscuit.free();
      }
    }
    return entry;
  }

  private publicKey(key: VerifyKey): PublicKey {
    let pk = this.keys.get(key.publicKeyHex);
    if (!pk) {
      try {
        pk = this.binding.PublicKey.fromString(key.publicKeyHex, this.binding.SignatureAlgorithm.Ed25519);
      } catch (err) {
        if (isWasmPanic(err)) throw err;
        throw new JobFailure({ ...mapBindingError(err, "key"), message: "a root public key is invalid" });
      }
      if (this.keys.size > 32) this.keys.clear();
      this.keys.set(key.publicKeyHex, pk);
    }
    return pk;
  }

  private parse(token: Uint8Array, key: VerifyKey, maxBlocks: number): VerifiedToken {
    let biscuit: Biscuit;
    try {
      biscuit = this.binding.Biscuit.fromBytes(token, this.publicKey(key));
    } catch (err) {
      if (isWasmPanic(err)) throw err;
      throw new JobFailure(mapBindingError(err, "token"));
    }
    try {
      if (biscuit.countBlocks() > maxBlocks) throw new JobFailure({ reason: "CAPABILITY_TOO_DEEP" });
      const { blocks, expiryChecks } = tokenFactsOf(token, { identity: false });
      return { biscuit, revocationIds: biscuit.getRevocationIdentifiers() as string[], blocks, expiryChecks };
    } catch (err) {
      biscuit.free();
      if (err instanceof TokenFormatError) throw new JobFailure({ reason: "CAPABILITY_MALFORMED", detail: err.message });
      throw err;
    }
  }

  /** The token's identity, read from the verified authority block (see token-facts.ts). */
  identity(t: VerifiedToken): TokenIdentity {
    if (t.identity) return t.identity;
    try {
      t.identity = identityOf(t.blocks);
    } catch (err) {
      if (err instanceof CapvaultError) throw new JobFailure({ reason: err.reason, message: err.message });
      throw err;
    }
    return t.identity;
  }

  /** Number of cached tokens. */
  get size(): number {
    return this.entries.size;
  }
}
