import { createHash } from "node:crypto";
import { CapvaultError } from "../errors/capvault-error.js";
import type { CapabilityLimits } from "./limits.js";
import type { VerifyKey } from "./protocol.js";
import { verificationKey, type RootPublicKey } from "./root-keys.js";
import { readEnvelope, TokenFormatError } from "./token-format.js";

/** A token checked on the main thread and ready for a worker. */
export interface PreparedToken {
  bytes: Uint8Array;
  key: VerifyKey;
  blocks: number;
  /** SHA-256 of the bytes, hex (identifies the token in caches). */
  digest: string;
  /** Routing hint so the same token goes to the same worker (parse cache). */
  affinity: number;
  /**
   * A short id that stands for these bytes under this key in cache keys (the decision cache): the same while the
   * token's decoding is remembered, never shared by two tokens or two keys.
   */
  cacheId: string;
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** What a token string decodes to, independent of keys and limits. */
interface DecodedInput {
  bytes: Uint8Array;
  rootKeyId: number | undefined;
  blocks: number;
  digest: string;
  affinity: number;
  /** The cache id under the key it was last prepared with. */
  keyed?: { verifyKey: VerifyKey; cacheId: string };
}

/**
 * Recently decoded token strings (agents send the same capability on every call): decoding is a pure function of the
 * string, so the memo only saves the base64, protobuf and SHA-256 work. Keys, revocation and limits are still checked
 * on every call. Bounded; oldest first out.
 */
const decoded = new Map<string, DecodedInput>();
const DECODED_CAPACITY = 256;

/**
 * Everything that can be refused without wasm, in order: missing, too large (before decoding), not base64url,
 * not a Biscuit envelope, too many blocks, unknown or retired root key id. Token strings are base64url as Biscuit
 * prints them (padding optional).
 */
export function prepareToken(token: unknown, publicKeys: readonly RootPublicKey[], limits: CapabilityLimits): PreparedToken {
  if (typeof token !== "string" || token.length === 0) throw new CapvaultError("CAPABILITY_MISSING");
  if (token.length > Math.ceil(limits.maxTokenBytes / 3) * 4 + 2) throw new CapvaultError("CAPABILITY_TOO_LARGE");
  const input = decoded.get(token) ?? decode(token, limits);
  if (input.bytes.length > limits.maxTokenBytes) throw new CapvaultError("CAPABILITY_TOO_LARGE");
  if (input.blocks > limits.maxBlocks) throw new CapvaultError("CAPABILITY_TOO_DEEP");
  const key = verifyKeyOf(verificationKey(publicKeys, input.rootKeyId));
  const keyed = input.keyed;
  if (!keyed || keyed.verifyKey.id !== key.id || keyed.verifyKey.publicKeyHex !== key.publicKeyHex) {
    input.keyed = { verifyKey: key, cacheId: `t${nextCacheId++}` };
  }
  return {
    bytes: input.bytes,
    key,
    blocks: input.blocks,
    digest: input.digest,
    affinity: input.affinity,
    cacheId: input.keyed!.cacheId,
  };
}

let nextCacheId = 1;

/** The verification key a job carries, one frozen object per root key (built once, not on every call). */
const verifyKeys = new WeakMap<RootPublicKey, { id: number; publicKeyHex: string; verifyKey: VerifyKey }>();

function verifyKeyOf(key: RootPublicKey): VerifyKey {
  const known = verifyKeys.get(key);
  // Compared with the key's fields as they are now, in case a key object was edited in place.
  if (known && known.id === key.id && known.publicKeyHex === key.publicKeyHex) return known.verifyKey;
  const verifyKey = Object.freeze({ id: key.id, publicKeyHex: key.publicKeyHex.toLowerCase() });
  verifyKeys.set(key, { id: key.id, publicKeyHex: key.publicKeyHex, verifyKey });
  return verifyKey;
}

function decode(token: string, limits: CapabilityLimits): DecodedInput {
  if (!BASE64URL.test(token)) throw new CapvaultError("CAPABILITY_MALFORMED");
  const bytes = new Uint8Array(Buffer.from(token, "base64url"));
  if (bytes.length > limits.maxTokenBytes) throw new CapvaultError("CAPABILITY_TOO_LARGE");
  let envelope;
  try {
    envelope = readEnvelope(bytes);
  } catch (err) {
    if (err instanceof TokenFormatError) throw new CapvaultError("CAPABILITY_MALFORMED", undefined, { cause: err });
    throw err;
  }
  const digest = createHash("sha256").update(bytes).digest();
  const input = {
    bytes,
    rootKeyId: envelope.rootKeyId,
    blocks: envelope.blocks.length,
    digest: digest.toString("hex"),
    affinity: digest.readUInt32BE(0),
  };
  decoded.set(token, input);
  if (decoded.size > DECODED_CAPACITY) decoded.delete(decoded.keys().next().value!);
  return input;
}

/** Serialize token bytes as Biscuit does: base64url with padding. */
export function encodeToken(bytes: Uint8Array): string {
  const unpadded = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
  return unpadded + "=".repeat((4 - (unpadded.length % 4)) % 4);
}
