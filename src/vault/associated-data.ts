import { CapvaultError } from "../errors/capvault-error.js";
import type { SecretContext } from "./vault.js";

/** The format version bound into every associated data, so a future format can never be confused with this one. */
export const FORMAT_VERSION = 1;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Encode strings unambiguously: each part as its UTF-8 byte length (4 bytes, big-endian) then its bytes. Distinct
 * lists always give distinct encodings (["ab", "c"] and ["a", "bc"] differ). Strings that are not well-formed UTF-16
 * are refused, since UTF-8 would encode two different ones alike.
 */
export function encodeAssociatedData(parts: readonly string[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if (typeof part !== "string" || LONE_SURROGATE.test(part)) {
      throw new CapvaultError("INVALID_REQUEST", "associated data must be well-formed strings");
    }
    const bytes = Buffer.from(part, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    chunks.push(length, bytes);
  }
  return Buffer.concat(chunks);
}

/** Check a SecretContext: tenant, record and field non-empty, provider a string (may be empty). */
export function checkSecretContext(context: SecretContext): SecretContext {
  const { tenant, record, provider, field } = context ?? ({} as SecretContext);
  for (const [name, value] of [["tenant", tenant], ["record", record], ["field", field]] as const) {
    if (typeof value !== "string" || value === "") {
      throw new CapvaultError("INVALID_REQUEST", `secret context: ${name} must be a non-empty string`);
    }
  }
  if (typeof provider !== "string") {
    throw new CapvaultError("INVALID_REQUEST", "secret context: provider must be a string");
  }
  return { tenant, record, provider, field };
}

/**
 * Associated data of a sealed secret: binds the format version, the data key id, tenant, record, provider and field,
 * so a ciphertext moved to any other context fails its GCM tag.
 */
export function secretAssociatedData(dekId: string, context: SecretContext): Buffer {
  const { tenant, record, provider, field } = context;
  return encodeAssociatedData(["capvault/secret", String(FORMAT_VERSION), dekId, tenant, record, provider, field]);
}

/** Associated data of a wrapped data key: binds the KEK id, the data key id and the record it belongs to. */
export function wrapAssociatedData(kekId: string, dekId: string, tenant: string, record: string): Buffer {
  return encodeAssociatedData(["capvault/dek-wrap", String(FORMAT_VERSION), kekId, dekId, tenant, record]);
}
