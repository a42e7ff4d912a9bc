import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import { keysCommand, KEYS_EXIT, type KeysCommandDeps } from "../../src/cli/commands/keys-subcommands.js";
import { openLocalKeyring } from "../../src/vault/local-keyring.js";
import { openVault } from "../../src/vault/open-vault.js";
import { BACKENDS, type OpenedBackend } from "../vault/backends.js";

describe("capvault keys (on FerretDB)", () => {
  let backend: OpenedBackend;
  let store: Store;
  let dir: string;
  let path: string;
  let stdout: string[];
  let stderr: string[];
  let closes: number;

  const deps = (over: Partial<KeysCommandDeps> = {}): KeysCommandDeps => ({
    keyring: { source: "file", path },
    openStore: async () => {
      const s = await backend.second();
      return { dataKeys: s.dataKeys, close: async () => void closes++ };
    },
    stdout: (l) => stdout.push(l),
    stderr: (l) => stderr.push(l),
    ...over,
  });
  const run = async (...args: string[]) => {
    stdout = [];
    stderr = [];
    return keysCommand(args, deps());
  };

  beforeEach(async () => {
    backend = await BACKENDS[1][1]();
    store = backend.store;
    dir = await mkdtemp(join(tmpdir(), "capvault-keys-cmd-"));
    path = join(dir, "keyring.json");
    closes = 0;
  });
  afterEach(async () => {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("prints help (exit 0), and usage errors exit 2", async () => {
    expect(await run("--help")).toBe(KEYS_EXIT.ok);
    expect(stdout.join("\n")).toMatch(/rotate[\s\S]*rewrap[\s\S]*status[\s\S]*retire ID[\s\S]*Exit codes/);
    expect(await run("rewrap", "--help")).toBe(KEYS_EXIT.ok);
    expect(await run()).toBe(KEYS_EXIT.usage);
    expect(await run("explode")).toBe(KEYS_EXIT.usage);
    expect(stderr.join()).toContain("unknown command explode");
    expect(await run("retire")).toBe(KEYS_EXIT.usage);
    expect(await run("rewrap", "--batch-size", "0")).toBe(KEYS_EXIT.usage);
    expect(await run("rewrap", "--max-batches")).toBe(KEYS_EXIT.usage);
    expect(await run("status", "--colour")).toBe(KEYS_EXIT.usage);
  });

  it("runs a whole rotation", async () => {
    expect(await run("rotate", "--id", "kek-1")).toBe(KEYS_EXIT.ok);
    expect(stdout.join()).toContain(`created keyring file ${path} (mode 0600) with active KEK kek-1`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const vault = await openVault({ dataKeys: store.dataKeys, keyring: { source: "file", path } });
    const secrets = [];
    for (let i = 0; i < 7; i++) {
      const context = { tenant: "acme", record: `conn_${i}`, provider: "github", field: "access_token" };
      secrets.push({ context, sealed: await vault.seal(`token-${i}`, context) });
    }

    expect(await run("rotate", "--id", "kek-2")).toBe(KEYS_EXIT.ok);
    expect(stdout.join("\n")).toContain("KEK kek-2 is now active for new wraps; kek-1 is decrypt-only");

    expect(await run("status", "--json")).toBe(KEYS_EXIT.ok);
    expect(JSON.parse(stdout[0]).map((s: { id: string; state: string; dataKeys: number }) => [s.id, s.state, s.dataKeys])).toEqual([
      ["kek-1", "decrypt-only", 7],
      ["kek-2", "active", 0],
    ]);

    expect(await run("retire", "kek-1")).toBe(KEYS_EXIT.failed);
    expect(stderr.join()).toMatch(/KEK kek-1 still wraps 7 data key\(s\): run rewrap first \[KEK_IN_USE\]/);

    expect(await run("rewrap", "--batch-size", "2", "--max-batches", "2")).toBe(KEYS_EXIT.incomplete);
    expect(stdout.join("\n")).toMatch(/stopped after 2 batch\(es\), 4 re-wrapped: run 'capvault keys rewrap' again/);
    expect(await run("rewrap", "--batch-size", "2")).toBe(KEYS_EXIT.ok);
    expect(stdout.at(-1)).toBe("done: every data key is wrapped by kek-2 (3 re-wrapped)");

    expect(await run("status")).toBe(KEYS_EXIT.ok);
    expect(stdout[0]).toMatch(/^KEK\s+STATE\s+DATA KEYS\s+CREATED$/);
    expect(stdout[1]).toMatch(/^kek-1\s+decrypt-only\s+0\s+\d{4}-\d\d-\d\d$/);
    expect(stdout[2]).toMatch(/^kek-2\s+active\s+7\s+/);

    expect(await run("retire", "kek-1")).toBe(KEYS_EXIT.ok);
    expect(stdout.join()).toContain("KEK kek-1 is retired");
    expect(await run("retire", "kek-2")).toBe(KEYS_EXIT.failed);
    expect(stderr.join()).toContain("[KEK_IN_USE]");
    expect(await run("retire", "kek-7")).toBe(KEYS_EXIT.failed);
    expect(stderr.join()).toContain("[KEK_UNKNOWN]");

    const kms = await openLocalKeyring({ source: "file", path });
    expect((await kms.listKeks()).map((k) => `${k.id}:${k.state}`)).toEqual(["kek-1:retired", "kek-2:active"]);
    const cold = await openVault({ dataKeys: store.dataKeys, keyring: kms });
    for (const [i, s] of secrets.entries()) expect((await cold.open(s.sealed, s.context)).toString()).toBe(`token-${i}`);
    expect(closes).toBeGreaterThan(0);
  });

  it("rotate and retire need a keyring file; status works with an environment KEK", async () => {
    stdout = [];
    stderr = [];
    const env = deps({ keyring: { source: "env", key: Buffer.alloc(32, 1).toString("base64"), variable: "CAPVAULT_KEK" } });
    expect(await keysCommand(["rotate"], env)).toBe(KEYS_EXIT.failed);
    expect(stderr.join()).toMatch(/changes a keyring file.*CAPVAULT_KEYRING_FILE \[CONFIG_INVALID\]/);
    expect(stderr.join()).not.toContain(Buffer.alloc(32, 1).toString("base64"));
    expect(await keysCommand(["status"], env)).toBe(KEYS_EXIT.ok);
    expect(stdout[1]).toMatch(/^env-1\s+active\s+0/);
  });
});
