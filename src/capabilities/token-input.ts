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
  /** Routing hint so the same token goes to the same worker (parse cache). */
  affinity: number;
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/**
 * Everything that can be refused without wasm, in order: missing, too large (before decoding), not base64url,
 * not a Biscuit envelope, too many blocks, unknown or retired root key id. Token strings are base64url as Biscuit
 * prints them (padding optional).
 */
export function prepareToken(token: unknown, publicKeys: readonly RootPublicKey[], limits: CapabilityLimits): PreparedToken {
  if (typeof token !== "string" || token.length === 0) throw new CapvaultError("CAPABILITY_MISSING");
  if (token.length > Math.ceil(limits.maxTokenBytes / 3) * 4 + 2) throw new CapvaultError("CAPABILITY_TOO_LARGE");
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
  if (envelope.blocks.length > limits.maxBlocks) throw new CapvaultError("CAPABILITY_TOO_DEEP");
  const key = verificationKey(publicKeys, envelope.rootKeyId);
  const affinity = createHash("sha256").update(bytes).digest().readUInt32BE(0);
  return { bytes, key: { id: key.id, publicKeyHex: key.publicKeyHex.toLowerCase() }, blocks: envelope.blocks.length, affinity };
}

/** Serialize token bytes as Biscuit does: base64url with padding. */
export function encodeToken(bytes: Uint8Array): string {
  const unpadded = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
  return unpadded + "=".repeat((4 - (unpadded.length % 4)) % 4);
}
