import type { Config } from "../config/schema.js";
import type { KeyringConfig } from "./local-keyring.js";

/**
 * Which keyring the broker uses, from the validated configuration: the keyring file, else the single key from
 * CAPVAULT_KEK, else (dev mode only; loadConfig enforces it) a key generated in memory for this run.
 */
export function keyringConfigOf(config: Config): KeyringConfig {
  if (config.kek.keyringFile) return { source: "file", path: config.kek.keyringFile };
  if (config.kek.key) return { source: "env", key: config.kek.key, id: config.kek.keyId, variable: "CAPVAULT_KEK" };
  return { source: "dev" };
}
