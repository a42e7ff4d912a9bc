/**
 * The key-encryption-key service: wraps and unwraps data keys under KEKs that live outside MongoDB. The local keyring
 * (local-keyring.ts) implements it; an AWS KMS, GCP KMS or Vault Transit adapter would too (each supports
 * associated data: EncryptionContext, additionalAuthenticatedData, associated_data).
 */

/** What a wrapped data key is bound to (the wrapping fails to open under any other). */
export interface WrapContext {
  dekId: string;
  tenant: string;
  record: string;
}

/** `active` wraps and unwraps; `decrypt-only` only unwraps (a previous key); `retired` does neither. */
export type KekState = "active" | "decrypt-only" | "retired";

/** A KEK as described to operators: never its material. */
export interface KekDescription {
  id: string;
  state: KekState;
  createdAt?: Date;
}

/** A data key wrapped by the KEK `kekId`. */
export interface WrappedDataKey {
  kekId: string;
  wrapped: Buffer;
}

export interface Kms {
  /** The KEK new wraps use. */
  activeKekId(): Promise<string>;
  /**
   * Wrap a data key under `kekId`, or the active KEK if omitted. Throws KEK_UNKNOWN, KEK_RETIRED or KEK_NOT_ACTIVE
   * if that KEK cannot wrap.
   */
  wrap(dek: Buffer, context: WrapContext, kekId?: string): Promise<WrappedDataKey>;
  /**
   * Unwrap a data key. Throws KEK_UNKNOWN (no such KEK, even after reloading), KEK_RETIRED, or SECRET_UNDECRYPTABLE
   * (the wrapping does not open: tampered, or bound to another data key or record).
   */
  unwrap(kekId: string, wrapped: Buffer, context: WrapContext): Promise<Buffer>;
  /** The KEKs this service knows, for `capvault keys status`. */
  listKeks(): Promise<KekDescription[]>;
}
