/**
 * The vault's contract: how every secret capvault keeps (OAuth access and refresh tokens, provider client secrets,
 * capability root private keys) is sealed at rest. Implemented by envelope encryption in this folder: build one with
 * `openVault` (open-vault.ts); the design is in docs/vault.md.
 */

/** Which record and field a secret belongs to. Bound into the ciphertext as associated data, so a ciphertext
 * copied to another tenant, record, provider or field does not open. */
export interface SecretContext {
  tenant: string;
  /** The owning record, e.g. a connection id, a provider id, or a root key id. */
  record: string;
  /** The provider the secret belongs to ("" where none, e.g. root keys). */
  provider: string;
  /** The field, e.g. "access_token", "refresh_token", "client_secret", "root_private_key". */
  field: string;
}

/** A sealed secret as stored. Holds no plaintext; safe to store and to log (though we don't log it). */
export interface SealedSecret {
  /** Format version. */
  v: 1;
  /** The data key (DEK) that sealed it; the DEK itself is stored wrapped by a key-encryption key. */
  dek: string;
  /** Base64 of the 96-bit random IV, the ciphertext and the 128-bit GCM tag. */
  iv: string;
  ct: string;
  tag: string;
}

export interface Vault {
  /** Seal a secret for a record. All secrets of one record (same tenant + record) share that record's data key. */
  seal(plaintext: string | Buffer, context: SecretContext): Promise<SealedSecret>;
  /** Open a sealed secret; throws CapvaultError SECRET_UNDECRYPTABLE if the context or ciphertext is wrong. */
  open(sealed: SealedSecret, context: SecretContext): Promise<Buffer>;
  /** Forget the data key of a record once nothing uses it (e.g. after Disconnect). */
  destroyRecordKey(tenant: string, record: string): Promise<void>;
}
