import { CapvaultError } from "../errors/capvault-error.js";
import type { DataKeyRepository } from "../store/data-key-repository.js";
import type { DataKeyCacheOptions } from "./data-key-cache.js";
import { EnvelopeVault } from "./envelope-vault.js";
import type { Kms } from "./kms.js";
import { openLocalKeyring, type KeyringConfig } from "./local-keyring.js";

/** Environment variables the vault reads. */
export const VAULT_ENV = {
  /** Path of the keyring file (mode 0600). */
  keyringFile: "CAPVAULT_KEYRING_FILE",
  /** One KEK: the base64 of 32 random bytes (`openssl rand -base64 32`). */
  kek: "CAPVAULT_KEK",
  /** The id of CAPVAULT_KEK; default "env-1". */
  kekId: "CAPVAULT_KEK_ID",
} as const;

/**
 * Which keyring to use: `options.keyringFile` (e.g. a CLI flag), else CAPVAULT_KEYRING_FILE, else CAPVAULT_KEK
 * (+ CAPVAULT_KEK_ID), else a fresh in-memory KEK if `options.dev`; otherwise CONFIG_INVALID. Setting both a file
 * and CAPVAULT_KEK is refused as ambiguous.
 */
export function keyringConfigFromEnv(
  env: Record<string, string | undefined> = process.env,
  options: { keyringFile?: string; dev?: boolean } = {},
): KeyringConfig {
  const file = options.keyringFile || env[VAULT_ENV.keyringFile];
  const key = env[VAULT_ENV.kek];
  if (file && key) {
    throw new CapvaultError("CONFIG_INVALID", `set a keyring file or ${VAULT_ENV.kek}, not both`);
  }
  if (file) return { source: "file", path: file };
  if (key) return { source: "env", key, id: env[VAULT_ENV.kekId] || undefined, variable: VAULT_ENV.kek };
  if (options.dev) return { source: "dev" };
  throw new CapvaultError(
    "CONFIG_INVALID",
    `no key-encryption key configured: set ${VAULT_ENV.keyringFile} (a keyring file made by 'capvault keys rotate') or ${VAULT_ENV.kek}`,
  );
}

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
 * const vault = await openVault({ dataKeys: store.dataKeys, keyring: keyringConfigFromEnv(process.env, { dev }) });
 * ```
 * Throws CONFIG_INVALID if the keyring is unusable (e.g. a keyring file readable by group or others).
 */
export async function openVault(options: OpenVaultOptions): Promise<EnvelopeVault> {
  const kms = "source" in options.keyring ? await openLocalKeyring(options.keyring) : options.keyring;
  return new EnvelopeVault({ dataKeys: options.dataKeys, kms, cache: options.cache });
}
