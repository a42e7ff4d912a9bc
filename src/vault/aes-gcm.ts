import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/** AES-256 key length in bytes. */
export const KEY_BYTES = 32;
/** GCM IV length: 96 bits (NIST SP 800-38D's recommended length). */
export const IV_BYTES = 12;
/** GCM tag length: 128 bits, always; shorter tags are refused. */
export const TAG_BYTES = 16;

/** The three parts of an AES-256-GCM encryption. */
export interface GcmSealed {
  iv: Buffer;
  ct: Buffer;
  tag: Buffer;
}

/** Encrypt with AES-256-GCM under a fresh random 96-bit IV. */
export function gcmSeal(key: Buffer, plaintext: Buffer, associatedData: Buffer): GcmSealed {
  if (key.length !== KEY_BYTES) throw new RangeError("AES-256-GCM needs a 32-byte key");
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData);
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, ct, tag: cipher.getAuthTag() };
}

/**
 * Decrypt and verify AES-256-GCM. Returns undefined when anything is wrong (IV or tag length, tag mismatch, wrong
 * key or associated data): the caller turns that into the right CapvaultError.
 */
export function gcmOpen(key: Buffer, sealed: GcmSealed, associatedData: Buffer): Buffer | undefined {
  if (key.length !== KEY_BYTES || sealed.iv.length !== IV_BYTES || sealed.tag.length !== TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, sealed.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData);
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ct), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** One buffer: version byte, IV, ciphertext, tag (for wrapped data keys). */
export function packGcm(version: number, sealed: GcmSealed): Buffer {
  return Buffer.concat([Buffer.from([version]), sealed.iv, sealed.ct, sealed.tag]);
}

/** Split a packed buffer; undefined if its version byte differs or it is too short. */
export function unpackGcm(version: number, packed: Buffer): GcmSealed | undefined {
  if (packed.length < 1 + IV_BYTES + TAG_BYTES || packed[0] !== version) return undefined;
  return {
    iv: packed.subarray(1, 1 + IV_BYTES),
    ct: packed.subarray(1 + IV_BYTES, packed.length - TAG_BYTES),
    tag: packed.subarray(packed.length - TAG_BYTES),
  };
}
