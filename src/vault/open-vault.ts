import type { DataKeyRepository } from "../store/data-key-repository.js";
import type { DataKeyCacheOptions } from "./data-key-cache.js";
import { EnvelopeVault } from "./envelope-vault.js";
import type { Kms } from "./kms.js";
import { openLocalKeyring, type KeyringConfig } from "./local-keyring.js";

/** What a Vault is built from. */
export interface OpenVaultOptions {
  /** Where the wrapped data keys live: `store.dataKeys`. */
  dataKeys: DataKeyRepository;
  /** A keyring configuration (file, env or dev), or any Kms (e.g. a cloud KMS adapter). */
  keyring: KeyringConfig | Kms;
  cache?: DataKeyCacheOptions;
}

/**
 * Build the Vault. For example:
 * ```ts
 * const vault = await openVault({ dataKeys: store.dataKeys, keyring: keyringConfigOf(config) });
 * ```
 * Throws CONFIG_INVALID if the keyring is unusable (e.g. a keyring file readable by group or others).
 */
export async function openVault(options: OpenVaultOptions): Promise<EnvelopeVault> {
  const kms = "source" in options.keyring ? await openLocalKeyring(options.keyring) : options.keyring;
  return new EnvelopeVault({ dataKeys: options.dataKeys, kms, cache: options.cache });
}
