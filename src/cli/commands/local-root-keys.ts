import { RootKeyRing } from "../../capabilities/root-key-ring.js";
import { ConfigError, loadConfig, parseFlags } from "../../config/load-config.js";
import { openStore } from "../../store/open-store.js";
import type { Store } from "../../store/store.js";
import { keyringConfigOf } from "../../vault/keyring-config.js";
import { openLocalKeyring } from "../../vault/local-keyring.js";
import { openVault } from "../../vault/open-vault.js";
import { CliUsageError } from "../broker-client.js";

/** What the local key commands work with: the broker's own store and root key ring, opened with its configuration. */
export interface LocalRootKeys {
  store: Store;
  keys: RootKeyRing;
}

/**
 * For the commands that act with the broker's keys instead of calling a broker (bootstrap-operator, rotate-root-key,
 * retire-root-key): split argv into the broker's configuration flags and the command's own arguments (parsed first,
 * by `parseArgs`), open the broker's MongoDB and key-encryption key exactly as `capvault serve` would, run `fn`, and
 * close. Usage errors (CliUsageError) when the database or key is not configured.
 */
export async function withLocalRootKeys<A, T>(
  argv: string[],
  env: NodeJS.ProcessEnv | undefined,
  parseArgs: (rest: string[]) => A,
  fn: (args: A, local: LocalRootKeys) => Promise<T>,
): Promise<T> {
  const { flags, config: file, rest, problems } = parseFlags(argv);
  if (problems.length) throw new CliUsageError(problems.join("; "));
  const args = parseArgs(rest); // the command's own usage errors come before any connection
  let config;
  try {
    config = loadConfig({ flags, file, ...(env ? { env } : {}), overrides: { dev: false } });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliUsageError(err.message);
    throw err;
  }
  const keyring = keyringConfigOf(config);
  if (!config.mongodb.uri || keyring.source === "dev") {
    throw new CliUsageError("needs the broker's MongoDB and key-encryption key (CAPVAULT_MONGODB_URI and CAPVAULT_KEYRING_FILE or CAPVAULT_KEK)");
  }
  const store = await openStore(config);
  try {
    const vault = await openVault({ dataKeys: store.dataKeys, keyring: await openLocalKeyring(keyring) });
    return await fn(args, { store, keys: await RootKeyRing.open(store, vault) });
  } finally {
    await store.close();
  }
}
