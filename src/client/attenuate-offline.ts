import { DEFAULT_LIMITS } from "../capabilities/limits.js";
import { compileRestriction } from "../capabilities/restriction-block.js";
import { TokenFormatError } from "../capabilities/token-format.js";
import type { Restriction } from "../capabilities/vocabulary.js";
import { isWasmPanic, mapBindingError } from "../capabilities/binding/binding-errors.js";
import { loadBiscuit, type BiscuitBinding } from "../capabilities/binding/wasm-loader.js";
import { CapvaultError } from "../errors/capvault-error.js";
import type { Reason } from "../errors/reasons.js";
import { appendSignedBlock, blockTables, readTokenParts, writeTokenParts, type TokenParts } from "./biscuit-wire.js";
import { CapvaultClientError } from "./client-error.js";

/** A broker root public key, as ListPublicKeys returns it (`cv.publicKeys()`). */
export interface RootPublicKeyInfo {
  keyId: number;
  /** Ed25519 public key, hex. */
  publicKey: string;
}

/** Options of {@link attenuateOffline}. */
export interface OfflineAttenuateOptions {
  /**
   * Optional: the broker's root public keys (`cv.publicKeys()`, ListPublicKeys, which needs no capability) or one
   * public key in hex. Not needed to attenuate (appending is signed with the token's own proof key); when given, the
   * token is verified first, so a forged or damaged token is reported here rather than by the broker.
   */
  publicKeys?: readonly RootPublicKeyInfo[] | string;
  /** The time a `ttl` counts from (default: now). */
  now?: Date;
}

/** What one offline attenuation produced. */
export interface OfflineAttenuation {
  /** The narrower token (base64url, as the broker prints tokens). */
  token: string;
  /** Revocation id of every block, authority first; the last is the new block's. */
  revocationIds: string[];
}

let binding: Promise<BiscuitBinding> | undefined;

/** The Biscuit library, loaded once per thread in this process (no broker, no worker). */
function biscuit(): Promise<BiscuitBinding> {
  binding ??= loadBiscuit().then((loaded) => loaded.binding);
  return binding;
}

/**
 * Narrow a capability without the broker: append one block of checks compiled from `restriction` with the same
 * vocabulary the broker's Attenuate uses (connections, methods, pathPrefix, ttl/expiresAt, query and body field
 * constraints, raw checks with parameters; see docs/capabilities.md). Every value enters Datalog as a parameter.
 * The result can only do less than `token`, and the broker enforces it like any attenuated token.
 *
 * ```ts
 * const forSubAgent = await attenuateOffline(myToken, { methods: ["GET"], pathPrefix: "/repos/acme/widgets/", ttlSeconds: 600 });
 * ```
 *
 * How, with no broker and no key: the Biscuit library (WebAssembly, in this thread) serializes the block against a
 * throwaway token that has the capability's symbol table, and the block is signed with the capability's own proof
 * key (which is how Biscuit attenuation works); that signing is checked against the library on every call.
 *
 * Errors are CapvaultClientError with the broker's reasons: INVALID_REQUEST, PATH_INVALID, METHOD_INVALID or
 * DATALOG_INVALID for a bad restriction; CAPABILITY_MALFORMED, CAPABILITY_SIGNATURE_INVALID or
 * CAPABILITY_UNKNOWN_ROOT_KEY for a bad token or key; CAPABILITY_TOO_DEEP / CAPABILITY_TOO_LARGE past the broker's caps.
 */
export async function attenuateOffline(token: string, restriction: Restriction, options: OfflineAttenuateOptions = {}): Promise<string> {
  return (await attenuateOfflineDetailed(token, restriction, options)).token;
}

/** {@link attenuateOffline}, also returning the revocation ids (the last one revokes exactly the new block). */
export async function attenuateOfflineDetailed(token: string, restriction: Restriction, options: OfflineAttenuateOptions = {}): Promise<OfflineAttenuation> {
  try {
    return await append(token, restriction, options);
  } catch (err) {
    if (isWasmPanic(err)) binding = undefined; // a Rust panic poisons the instance: load a fresh one next time
    throw toClientError(err);
  }
}

async function append(token: string, restriction: Restriction, options: OfflineAttenuateOptions): Promise<OfflineAttenuation> {
  const limits = DEFAULT_LIMITS;
  if (typeof token !== "string" || token.length === 0) throw new CapvaultError("CAPABILITY_MISSING");
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(token)) throw new CapvaultError("CAPABILITY_MALFORMED");
  const bytes = new Uint8Array(Buffer.from(token, "base64url"));
  if (bytes.length > limits.maxTokenBytes) throw new CapvaultError("CAPABILITY_TOO_LARGE");
  let parts: TokenParts;
  let symbols: string[];
  try {
    parts = readTokenParts(bytes);
    const tables = parts.blocks.map((b) => blockTables(b.block));
    if (parts.blocks.some((b) => b.externalSignature) || tables.some((t) => t.publicKeys > 0)) {
      throw new CapvaultError("INVALID_REQUEST", "a capability with third-party blocks cannot be attenuated offline here; use Attenuate");
    }
    symbols = tables.flatMap((t) => t.symbols);
  } catch (err) {
    if (err instanceof TokenFormatError) throw new CapvaultError("CAPABILITY_MALFORMED", undefined, { cause: err });
    throw err;
  }
  if (parts.sealed) throw new CapvaultError("INVALID_REQUEST", "the capability is sealed and cannot be attenuated");
  if (parts.blocks.length + 1 > limits.maxBlocks) throw new CapvaultError("CAPABILITY_TOO_DEEP", "the capability cannot take another block");
  const compiled = compileRestriction(restriction, options.now ?? new Date(), limits);

  const B = await biscuit();
  const owned: Array<{ free(): void }> = [];
  const keep = <T extends { free(): void }>(o: T): T => (owned.push(o), o);
  try {
    if (options.publicKeys !== undefined) {
      // Optional early check: the broker verifies the token anyway, but this reports a bad token here and now.
      const pk = keep(binding_(() => B.PublicKey.fromString(pickKey(options.publicKeys!, parts.rootKeyId), B.SignatureAlgorithm.Ed25519), "key"));
      keep(binding_(() => B.Biscuit.fromBytes(bytes, pk), "token"));
    }

    // 1. A throwaway token (our own root key) whose symbol table is exactly the capability's: blocks refer to
    //    strings by their index in that table, so a block serialized against it is the block for the capability.
    const throwawayRoot = keep(new B.KeyPair(B.SignatureAlgorithm.Ed25519));
    const builder = keep(B.Biscuit.builder());
    if (symbols.length) {
      builder.addCodeWithParameters(
        symbols.map((_, i) => `read({s${i}});`).join("\n"), // "read" is a default symbol: it adds nothing to the table
        Object.fromEntries(symbols.map((v, i) => [`s${i}`, v])),
        {},
      );
    }
    const throwaway = keep(binding_(() => builder.build(throwawayRoot.getPrivateKey()), "token"));
    const throwawayParts = readTokenParts(throwaway.toBytes());
    if (blockTables(throwawayParts.blocks[0].block).symbols.join("\u0000") !== symbols.join("\u0000")) {
      throw new CapvaultError("INTERNAL", undefined, { cause: new Error("could not rebuild the capability's symbol table") });
    }

    // 2. The new block, compiled from the restriction and serialized by the Biscuit library against that table.
    const block = keep(B.Biscuit.block_builder());
    if (compiled.block.code) binding_(() => block.addCodeWithParameters(compiled.block.code, compiled.block.params, {}), "datalog");
    compiled.rawChecks.forEach((raw, index) => {
      const check = binding_(() => B.Check.fromString(raw.code), "datalog");
      const unbound = (check.unboundParameters() as string[]).sort();
      if (unbound.join(",") !== Object.keys(raw.params).sort().join(",")) {
        check.free();
        throw new CapvaultError("DATALOG_INVALID", `check ${index}: parameters must match its placeholders exactly`, { metadata: { check: String(index) } });
      }
      for (const name of unbound) binding_(() => check.set(name, raw.params[name]), "datalog");
      binding_(() => block.addCheck(check), "datalog"); // consumes the check
    });
    const appended = keep(binding_(() => throwaway.appendBlock(block), "token"));
    const made = readTokenParts(appended.toBytes()).blocks.at(-1)!;
    const signatureVersion = made.version ?? 0;

    // 3. Sign it for the capability with the capability's own proof key (no root key involved). The signing is
    //    checked first on the throwaway token, where the library can verify it: a format drift fails here, loudly.
    const probe = keep(
      binding_(() => B.Biscuit.fromBytes(writeTokenParts(appendSignedBlock(throwawayParts, made.block, signatureVersion)), throwawayRoot.getPublicKey()), "token"),
    );
    void probe;
    const result = appendSignedBlock(parts, made.block, signatureVersion);
    const out = writeTokenParts(result);
    if (out.length > limits.maxTokenBytes) throw new CapvaultError("CAPABILITY_TOO_LARGE", "the attenuated capability would exceed the token size limit");
    const encoded = Buffer.from(out).toString("base64url");
    return {
      token: encoded + "=".repeat((4 - (encoded.length % 4)) % 4),
      // A block's revocation id is its signature.
      revocationIds: result.blocks.map((b) => Buffer.from(b.signature).toString("hex")),
    };
  } finally {
    for (const o of owned.reverse()) {
      try {
        o.free();
      } catch {
        // already consumed or freed
      }
    }
  }
}

function pickKey(keys: OfflineAttenuateOptions["publicKeys"], rootKeyId: number | undefined): string {
  if (typeof keys === "string") return keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new CapvaultError("INVALID_REQUEST", "publicKeys: give the broker's root public keys (cv.publicKeys())");
  const key = rootKeyId === undefined ? (keys.length === 1 ? keys[0] : undefined) : keys.find((k) => k.keyId === rootKeyId);
  if (!key) throw new CapvaultError("CAPABILITY_UNKNOWN_ROOT_KEY", undefined, { metadata: { rootKeyId: String(rootKeyId ?? "") } });
  return key.publicKey;
}

/** Run a binding call, turning its errors into capvault reasons (the same mapping the broker's workers use). */
function binding_<T>(f: () => T, context: "token" | "datalog" | "key"): T {
  try {
    return f();
  } catch (err) {
    if (isWasmPanic(err) || err instanceof CapvaultError) throw err;
    const wire = mapBindingError(err, context);
    throw new CapvaultError(wire.reason, wire.message, { metadata: wire.metadata });
  }
}

function toClientError(err: unknown): CapvaultClientError {
  if (err instanceof CapvaultClientError) return err;
  const e = err instanceof CapvaultError ? err : new CapvaultError("INTERNAL", undefined, { cause: err });
  return new CapvaultClientError(e.code, e.reason satisfies Reason, e.message, e.metadata);
}
