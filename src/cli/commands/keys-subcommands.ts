import { CapvaultError } from "../../errors/capvault-error.js";
import type { DataKeyRepository } from "../../store/data-key-repository.js";
import { keyStatus, retireKek, rewrapDataKeys, rotateKeyring } from "../../vault/key-admin.js";
import { describeKeyringConfig, openLocalKeyring, type KeyringConfig } from "../../vault/local-keyring.js";

/** What `capvault keys` needs from the CLI around it. */
export interface KeysCommandDeps {
  /** The configured keyring (rotate and retire need a keyring file). */
  keyring: KeyringConfig;
  /** Open the store; only rewrap, status and retire call it, and the command closes it. */
  openStore: () => Promise<{ dataKeys: DataKeyRepository; close(): Promise<void> }>;
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
}

/** Exit codes of `capvault keys`. */
export const KEYS_EXIT = { ok: 0, failed: 1, usage: 2, incomplete: 3 } as const;

export const KEYS_HELP = `Usage: capvault keys <command> [options]

Manage the key-encryption keys (KEKs) that wrap the vault's data keys. Secrets are
sealed under per-record data keys; only the data keys are wrapped by a KEK.

Commands:
  rotate [--id ID]        Add a new random KEK to the keyring file and make it active
                          for new wraps; the previous one becomes decrypt-only.
                          Creates the keyring file (mode 0600) if it does not exist.
  rewrap [--batch-size N] [--max-batches N]
                          Re-wrap every data key under the active KEK. Touches no
                          secret; resumable (stop it and run it again); safe while
                          brokers serve.
  status [--json]         How many data keys (records) each KEK still protects.
  retire ID               Mark KEK ID retired: every broker refuses it from then on.
                          Only when it protects 0 data keys, and never the active KEK.

A rotation: rotate; give every broker host the new keyring file; rewrap; status;
retire OLD_ID. Brokers reading the same file pick up changes without a restart.

The keyring is capvault's configured one: CAPVAULT_KEYRING_FILE (rotate and retire
need it), or CAPVAULT_KEK (a single key).

Exit codes: 0 done; 1 failed; 2 usage error; 3 rewrap stopped early (run it again).
`;

class UsageError extends Error {}

/** Parse `--name value` options (no positional arguments except those `positionals` allows). */
function parseOptions(args: string[], names: string[], flags: string[], positionals = 0) {
  const values: Record<string, string> = {};
  const set = new Set<string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (flags.includes(a)) set.add(a);
    else if (names.includes(a)) {
      if (i + 1 >= args.length) throw new UsageError(`${a} needs a value`);
      values[a] = args[++i];
    } else if (a.startsWith("--")) throw new UsageError(`unknown option ${a}`);
    else rest.push(a);
  }
  if (rest.length !== positionals) throw new UsageError(positionals ? "expected one argument" : `unexpected argument ${rest[0]}`);
  return { values, set, rest };
}

function positiveInt(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer`);
  return n;
}

function keyringFile(keyring: KeyringConfig, command: string): string {
  if (keyring.source !== "file") {
    throw new CapvaultError(
      "CONFIG_INVALID",
      `'keys ${command}' changes a keyring file, but the configured keyring is the ${describeKeyringConfig(keyring)}: set CAPVAULT_KEYRING_FILE`,
    );
  }
  return keyring.path;
}

/**
 * `capvault keys rotate|rewrap|status|retire` (args are what follows `keys`). Returns the exit code (KEYS_EXIT).
 */
export async function keysCommand(args: string[], deps: KeysCommandDeps): Promise<number> {
  const out = deps.stdout ?? ((line: string) => process.stdout.write(line + "\n"));
  const err = deps.stderr ?? ((line: string) => process.stderr.write(line + "\n"));
  const [command, ...rest] = args;
  if (command === undefined || command === "help" || command === "--help" || command === "-h" || rest.includes("--help")) {
    out(KEYS_HELP);
    return command === undefined ? KEYS_EXIT.usage : KEYS_EXIT.ok;
  }
  try {
    switch (command) {
      case "rotate":
        return await rotate(rest, deps, out);
      case "rewrap":
        return await withStore(deps, (dataKeys) => rewrap(rest, deps, dataKeys, out, err));
      case "status":
        return await withStore(deps, (dataKeys) => status(rest, deps, dataKeys, out));
      case "retire":
        return await retire(rest, deps, out);
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`capvault keys: ${e.message} (see 'capvault keys --help')`);
      return KEYS_EXIT.usage;
    }
    const reason = e instanceof CapvaultError ? ` [${e.reason}]` : "";
    err(`capvault keys ${command}: ${e instanceof Error ? e.message : String(e)}${reason}`);
    return KEYS_EXIT.failed;
  }
}

async function withStore<T>(deps: KeysCommandDeps, run: (dataKeys: DataKeyRepository) => Promise<T>): Promise<T> {
  const store = await deps.openStore();
  try {
    return await run(store.dataKeys);
  } finally {
    await store.close();
  }
}

async function rotate(args: string[], deps: KeysCommandDeps, out: (l: string) => void): Promise<number> {
  const { values } = parseOptions(args, ["--id"], []);
  const path = keyringFile(deps.keyring, "rotate");
  const r = await rotateKeyring(path, { id: values["--id"] });
  if (r.created) out(`created keyring file ${path} (mode 0600) with active KEK ${r.kekId}`);
  else {
    out(`KEK ${r.kekId} is now active for new wraps${r.previousKekId ? `; ${r.previousKekId} is decrypt-only` : ""}`);
    out("next: give every broker host the new keyring file, then run 'capvault keys rewrap'");
  }
  return KEYS_EXIT.ok;
}

async function rewrap(
  args: string[],
  deps: KeysCommandDeps,
  dataKeys: DataKeyRepository,
  out: (l: string) => void,
  err: (l: string) => void,
): Promise<number> {
  const { values } = parseOptions(args, ["--batch-size", "--max-batches"], []);
  const batchSize = positiveInt(values["--batch-size"], "--batch-size");
  const maxBatches = positiveInt(values["--max-batches"], "--max-batches");
  const kms = await openLocalKeyring(deps.keyring);
  const r = await rewrapDataKeys({
    dataKeys,
    kms,
    batchSize,
    maxBatches,
    onBatch: (p) => out(`batch ${p.batches}: ${p.rewrapped} re-wrapped, ${p.skipped} already changed, ${p.failed.length} failed`),
  });
  for (const f of r.failed) err(`data key ${f.dekId} (KEK ${f.kekId}) could not be re-wrapped: ${f.reason}`);
  if (r.complete) {
    out(`done: every data key is wrapped by ${r.activeKekId} (${r.rewrapped} re-wrapped)`);
    return KEYS_EXIT.ok;
  }
  if (r.failed.length) {
    err(`${r.failed.length} data key(s) could not be re-wrapped`);
    return KEYS_EXIT.failed;
  }
  out(`stopped after ${r.batches} batch(es), ${r.rewrapped} re-wrapped: run 'capvault keys rewrap' again to finish`);
  return KEYS_EXIT.incomplete;
}

async function status(
  args: string[],
  deps: KeysCommandDeps,
  dataKeys: DataKeyRepository,
  out: (l: string) => void,
): Promise<number> {
  const { set } = parseOptions(args, [], ["--json"]);
  const kms = await openLocalKeyring(deps.keyring);
  const rows = await keyStatus({ dataKeys, kms });
  if (set.has("--json")) {
    out(JSON.stringify(rows.map((r) => ({ ...r, createdAt: r.createdAt?.toISOString() }))));
    return KEYS_EXIT.ok;
  }
  const width = Math.max(3, ...rows.map((r) => r.id.length));
  out(`${"KEK".padEnd(width)}  ${"STATE".padEnd(12)}  ${"DATA KEYS".padStart(9)}  CREATED`);
  for (const r of rows) {
    const created = r.createdAt ? r.createdAt.toISOString().slice(0, 10) : "-";
    out(`${r.id.padEnd(width)}  ${r.state.padEnd(12)}  ${String(r.dataKeys).padStart(9)}  ${created}`);
  }
  return KEYS_EXIT.ok;
}

async function retire(args: string[], deps: KeysCommandDeps, out: (l: string) => void): Promise<number> {
  const { rest } = parseOptions(args, [], [], 1);
  const path = keyringFile(deps.keyring, "retire");
  const r = await withStore(deps, (dataKeys) => retireKek(path, rest[0], { dataKeys }));
  out(r.alreadyRetired ? `KEK ${r.kekId} was already retired` : `KEK ${r.kekId} is retired: brokers refuse it from now on`);
  return KEYS_EXIT.ok;
}
