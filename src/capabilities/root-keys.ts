import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { CapvaultError } from "../errors/capvault-error.js";

/**
 * Root keys sign the authority block of every token. Each has a numeric id carried in the token (Biscuit root key
 * id), so verifiers pick the right public key: the newest key signs, older non-retired keys still verify, retired or
 * unknown ids are refused (CAPABILITY_UNKNOWN_ROOT_KEY). Persistence and sealing of private keys live elsewhere;
 * here keys are plain values.
 */

/** A root key pair. `privateKeyHex` is the 32-byte Ed25519 seed: a secret, never log it. */
export interface RootKey {
  id: number;
  publicKeyHex: string;
  privateKeyHex: string;
  algorithm: "ed25519";
}

/** A root public key as verifiers know it (proto capvault.v1.PublicKey). */
export interface RootPublicKey {
  id: number;
  publicKeyHex: string;
  algorithm?: "ed25519";
  retired?: boolean;
}

/** The signing half of a root key, as mint takes it. */
export interface SigningKey {
  id: number;
  privateKeyHex: string;
}

const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** Validate a root key id (a Biscuit root key id is a uint32). */
export function assertRootKeyId(id: unknown): number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw new CapvaultError("CONFIG_INVALID", "a root key id must be an integer between 0 and 2^32-1");
  }
  return id;
}

/** Generate a new Ed25519 root key (node:crypto; no wasm involved). */
export function generateRootKey(id: number): RootKey {
  assertRootKeyId(id);
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  return {
    id,
    publicKeyHex: Buffer.from(jwk.x!, "base64url").toString("hex"),
    privateKeyHex: Buffer.from(jwk.d!, "base64url").toString("hex"),
    algorithm: "ed25519",
  };
}

/** The public key (hex) of an Ed25519 private key given as a 32-byte hex seed. */
export function publicKeyFromPrivate(privateKeyHex: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(privateKeyHex)) throw new CapvaultError("CONFIG_INVALID", "a root private key must be 32 bytes of hex");
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(privateKeyHex, "hex")]),
    format: "der",
    type: "pkcs8",
  });
  return Buffer.from(createPublicKey(key).export({ format: "jwk" }).x!, "base64url").toString("hex");
}

/** A root key's public half. */
export function toPublicKey(key: RootKey, retired = false): RootPublicKey {
  return { id: key.id, publicKeyHex: key.publicKeyHex, algorithm: "ed25519", ...(retired ? { retired } : {}) };
}

/** The key that should sign new tokens: the non-retired key with the highest id. */
export function selectSigningKey<K extends { id: number; retired?: boolean }>(keys: readonly K[]): K {
  const candidates = keys.filter((k) => !k.retired);
  if (!candidates.length) throw new CapvaultError("CONFIG_INVALID", "no usable root key");
  return candidates.reduce((a, b) => (b.id > a.id ? b : a));
}

/** The verification key for a token's root key id, or CAPABILITY_UNKNOWN_ROOT_KEY (unknown, retired, or no id). */
export function verificationKey(keys: readonly RootPublicKey[], id: number | undefined): RootPublicKey {
  const key = id === undefined ? undefined : keys.find((k) => k.id === id);
  if (!key || key.retired) {
    throw new CapvaultError("CAPABILITY_UNKNOWN_ROOT_KEY", undefined, { metadata: { rootKeyId: String(id ?? "none") } });
  }
  if (!/^[0-9a-fA-F]{64}$/.test(key.publicKeyHex)) throw new CapvaultError("CONFIG_INVALID", "a root public key must be 32 bytes of hex");
  return key;
}
