import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CapvaultError, type Reason } from "../../src/errors/capvault-error.js";
import { rotateKeyring } from "../../src/vault/key-admin.js";
import { serializeKeyring, updateKeyringFile, type KeyringEntry } from "../../src/vault/keyring-file.js";
import { describeKeyringConfig, openLocalKeyring } from "../../src/vault/local-keyring.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { keyringConfigOf } from "../../src/vault/keyring-config.js";

/** The keyring the broker would use with this environment (dev mode where asked), through the one config loader. */
function keyringFromEnv(env: Record<string, string>, options: { dev?: boolean; keyringFile?: string } = {}) {
  const flags: Record<string, string> = options.keyringFile ? { "--keyring-file": options.keyringFile } : {};
  return keyringConfigOf(loadConfig({ env: { CAPVAULT_MONGODB_URI: "mongodb://127.0.0.1:1/", ...env }, flags, overrides: options.dev ? { dev: true } : {} }));
}

async function rejects(p: Promise<unknown>, reason: Reason): Promise<CapvaultError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${reason}`).toBeInstanceOf(CapvaultError);
  expect((err as CapvaultError).reason).toBe(reason);
  return err as CapvaultError;
}

const ctx = { dekId: "dek_1", tenant: "acme", record: "conn_1" };
const entry = (id: string, state: KeyringEntry["state"], key = randomBytes(32)): KeyringEntry => ({
  id,
  key,
  state,
  createdAt: new Date("2026-11-01T00:00:00.000Z"),
});

describe("local keyring", () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "capvault-keyring-"));
    path = join(dir, "keyring.json");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeKeyring(keys: KeyringEntry[], mode = 0o600) {
    await writeFile(path, serializeKeyring(keys), { mode });
    await chmod(path, mode);
  }

  describe("keyring file", () => {
    it("opens a 0600 (or 0400) file and wraps / unwraps with its active KEK", async () => {
      await writeKeyring([entry("kek-old", "decrypt-only"), entry("kek-new", "active")]);
      const ring = await openLocalKeyring({ source: "file", path });
      expect(await ring.activeKekId()).toBe("kek-new");
      const dek = randomBytes(32);
      const w = await ring.wrap(dek, ctx);
      expect(w.kekId).toBe("kek-new");
      expect(w.wrapped).toHaveLength(1 + 12 + 32 + 16);
      expect(await ring.unwrap("kek-new", w.wrapped, ctx)).toEqual(dek);
      await chmod(path, 0o400);
      expect(await (await openLocalKeyring({ source: "file", path })).unwrap("kek-new", w.wrapped, ctx)).toEqual(dek);
    });

    it.each([0o644, 0o640, 0o604, 0o660, 0o606])("refuses a keyring file with mode %o, naming the file", async (mode) => {
      await writeKeyring([entry("kek-1", "active")], mode);
      const err = await rejects(openLocalKeyring({ source: "file", path }), "CONFIG_INVALID");
      expect(err.message).toContain(path);
      expect(err.message).toContain(`mode 0${mode.toString(8)}`);
      expect(err.message).toContain("chmod 600");
    });

    it("refuses once the file becomes readable by others while running (fails closed)", async () => {
      await writeKeyring([entry("kek-1", "active")]);
      const ring = await openLocalKeyring({ source: "file", path });
      const w = await ring.wrap(randomBytes(32), ctx);
      await chmod(path, 0o644); // a chmod alone (same content, same mtime) is noticed
      await rejects(ring.unwrap("kek-1", w.wrapped, ctx), "CONFIG_INVALID");
      await rejects(ring.activeKekId(), "CONFIG_INVALID");
      await chmod(path, 0o600);
      expect(await ring.activeKekId()).toBe("kek-1");
    });

    it("refuses invalid content without ever quoting key material", async () => {
      const secret = randomBytes(32).toString("base64");
      const cases: [string, RegExp][] = [
        [`{"version":1,"keys":[{"id":"k","key":"${secret}",`, /is not valid JSON/],
        [JSON.stringify({ version: 2, keys: [] }), /"version" must be 1/],
        [JSON.stringify({ version: 1, keys: [] }), /exactly one key must be "active" \(found 0\)/],
        [
          serializeKeyring([entry("a", "active"), entry("b", "active")]),
          /exactly one key must be "active" \(found 2\)/,
        ],
        [serializeKeyring([entry("a", "active"), entry("a", "retired")]), /key id a appears twice/],
        [
          JSON.stringify({ version: 1, keys: [{ id: "a", state: "active", createdAt: "2026-01-01", key: secret.slice(4) }] }),
          /key a: "key" must be the base64 of 32 bytes/,
        ],
        [
          JSON.stringify({ version: 1, keys: [{ id: "a b", state: "active", createdAt: "2026-01-01", key: secret }] }),
          /keys\[0\]\.id must match/,
        ],
        [
          JSON.stringify({ version: 1, keys: [{ id: "a", state: "on", createdAt: "2026-01-01", key: secret }] }),
          /key a: state must be one of/,
        ],
      ];
      for (const [text, message] of cases) {
        await writeFile(path, text, { mode: 0o600 });
        const err = await rejects(openLocalKeyring({ source: "file", path }), "CONFIG_INVALID");
        expect(err.message).toMatch(message);
        expect(err.message).toContain(path);
        expect(err.message).not.toContain(secret);
        expect(err.message).not.toContain(secret.slice(4));
        expect(err.cause).toBeUndefined();
      }
    });

    it("refuses a missing file, naming it", async () => {
      const err = await rejects(openLocalKeyring({ source: "file", path }), "CONFIG_INVALID");
      expect(err.message).toContain(path);
    });

    it("picks up a rotation and a retirement without reopening (reload on change)", async () => {
      await writeKeyring([entry("kek-1", "active")]);
      const ring = await openLocalKeyring({ source: "file", path });
      const w1 = await ring.wrap(randomBytes(32), ctx);
      const rotated = await rotateKeyring(path, { id: "kek-2" });
      expect(rotated).toEqual({ kekId: "kek-2", previousKekId: "kek-1", created: false });
      expect(await ring.activeKekId()).toBe("kek-2");
      expect((await ring.wrap(randomBytes(32), ctx)).kekId).toBe("kek-2");
      await ring.unwrap("kek-1", w1.wrapped, ctx); // decrypt-only still unwraps
      await rejects(ring.wrap(randomBytes(32), ctx, "kek-1"), "KEK_NOT_ACTIVE");
      await updateKeyringFile(path, (keys) => keys.map((k) => (k.id === "kek-1" ? { ...k, state: "retired" } : k)));
      await rejects(ring.unwrap("kek-1", w1.wrapped, ctx), "KEK_RETIRED");
      await rejects(ring.wrap(randomBytes(32), ctx, "kek-1"), "KEK_RETIRED");
      expect((await ring.listKeks()).map((k) => `${k.id}:${k.state}`)).toEqual(["kek-1:retired", "kek-2:active"]);
    });

    it("writes atomically with mode 0600, and refuses to run two changes at once", async () => {
      const created = await rotateKeyring(path, { id: "kek-first" });
      expect(created).toEqual({ kekId: "kek-first", previousKekId: undefined, created: true });
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      await writeFile(`${path}.tmp`, "");
      const err = await rejects(rotateKeyring(path), "CONFIG_INVALID");
      expect(err.message).toContain(`${path}.tmp exists`);
      await rm(`${path}.tmp`);
      await rotateKeyring(path);
      const doc = JSON.parse(await readFile(path, "utf8"));
      expect(doc.keys.map((k: { state: string }) => k.state)).toEqual(["decrypt-only", "active"]);
      await rejects(rotateKeyring(path, { id: "kek-first" }), "CONFIG_INVALID");
      await rejects(rotateKeyring(path, { id: "no spaces" }), "CONFIG_INVALID");
    });
  });

  describe("unwrap", () => {
    it("refuses an unknown KEK id (KEK_UNKNOWN), a wrong context and a tampered wrapping", async () => {
      await writeKeyring([entry("kek-1", "active")]);
      const ring = await openLocalKeyring({ source: "file", path });
      const dek = randomBytes(32);
      const w = await ring.wrap(dek, ctx);
      const err = await rejects(ring.unwrap("kek-nope", w.wrapped, ctx), "KEK_UNKNOWN");
      expect(err.message).toContain(path);
      await rejects(ring.wrap(dek, ctx, "kek-nope"), "KEK_UNKNOWN");
      await rejects(ring.unwrap("kek-1", w.wrapped, { ...ctx, dekId: "dek_2" }), "SECRET_UNDECRYPTABLE");
      await rejects(ring.unwrap("kek-1", w.wrapped, { ...ctx, record: "conn_2" }), "SECRET_UNDECRYPTABLE");
      await rejects(ring.unwrap("kek-1", w.wrapped, { ...ctx, tenant: "globex" }), "SECRET_UNDECRYPTABLE");
      for (const at of [0, 1, 13, 45, w.wrapped.length - 1]) {
        const bad = Buffer.from(w.wrapped);
        bad[at] ^= 1;
        await rejects(ring.unwrap("kek-1", bad, ctx), "SECRET_UNDECRYPTABLE");
      }
      await rejects(ring.unwrap("kek-1", w.wrapped.subarray(0, 20), ctx), "SECRET_UNDECRYPTABLE");
    });

    it("binds the KEK id: the same material under another id does not unwrap", async () => {
      const material = randomBytes(32);
      const a = await openLocalKeyring({ source: "env", key: material.toString("base64"), id: "kek-a" });
      const b = await openLocalKeyring({ source: "env", key: material.toString("base64"), id: "kek-b" });
      const w = await a.wrap(randomBytes(32), ctx);
      await rejects(b.unwrap("kek-b", w.wrapped, ctx), "SECRET_UNDECRYPTABLE");
    });
  });

  describe("environment and dev keyrings", () => {
    it("takes one KEK from the environment, id env-1 by default", async () => {
      const material = randomBytes(32).toString("base64");
      const ring = await openLocalKeyring(keyringFromEnv({ CAPVAULT_KEK: material }));
      expect(await ring.activeKekId()).toBe("env-1");
      const custom = await openLocalKeyring(keyringFromEnv({ CAPVAULT_KEK: material, CAPVAULT_KEK_ID: "prod-7" }));
      expect(await custom.activeKekId()).toBe("prod-7");
      const dek = randomBytes(32);
      expect(await ring.unwrap("env-1", (await ring.wrap(dek, ctx)).wrapped, ctx)).toEqual(dek);
    });

    it("refuses a malformed environment KEK without echoing it", async () => {
      for (const bad of [randomBytes(16).toString("base64"), randomBytes(33).toString("base64"), "not-base64-at-all"]) {
        const err = await rejects(openLocalKeyring(keyringFromEnv({ CAPVAULT_KEK: bad })), "CONFIG_INVALID");
        expect(err.message).toContain("CAPVAULT_KEK must be the base64 of 32 random bytes");
        expect(err.message).not.toContain(bad);
      }
    });

    it("chooses file, env or dev, and refuses none or both", async () => {
      expect(keyringFromEnv({ CAPVAULT_KEYRING_FILE: "/k.json" })).toEqual({ source: "file", path: "/k.json" });
      expect(keyringFromEnv({}, { keyringFile: "/flag.json" })).toEqual({ source: "file", path: "/flag.json" });
      expect(keyringFromEnv({}, { dev: true })).toEqual({ source: "dev" });
      expect(keyringFromEnv({ CAPVAULT_KEK: "x" }).source).toBe("env");
      expect(() => keyringFromEnv({})).toThrow(ConfigError);
      expect(() => keyringFromEnv({})).toThrow(/a key-encryption key is required/);
      expect(() => keyringFromEnv({ CAPVAULT_KEK: "x", CAPVAULT_KEYRING_FILE: "/k" })).toThrow(/not both/);
      expect(describeKeyringConfig({ source: "env", key: "SECRETVALUE", variable: "CAPVAULT_KEK" })).not.toContain(
        "SECRETVALUE",
      );
    });

    it("dev mode generates a fresh KEK per process", async () => {
      const a = await openLocalKeyring({ source: "dev" });
      const b = await openLocalKeyring({ source: "dev" });
      expect(await a.activeKekId()).toMatch(/^dev-[0-9a-f]{8}$/);
      expect(await a.activeKekId()).not.toBe(await b.activeKekId());
      const dek = randomBytes(32);
      expect(await a.unwrap(await a.activeKekId(), (await a.wrap(dek, ctx)).wrapped, ctx)).toEqual(dek);
    });

    it("never shows key material in JSON or inspect", async () => {
      const material = randomBytes(32);
      const ring = await openLocalKeyring({ source: "env", key: material.toString("base64"), variable: "CAPVAULT_KEK" });
      for (const text of [JSON.stringify(ring), inspect(ring, { showHidden: true, depth: 10 }), String(ring)]) {
        expect(text).not.toContain(material.toString("base64"));
        expect(text).not.toContain(material.toString("hex"));
      }
      expect(JSON.stringify(ring)).toContain("env-1 (active)");
    });
  });
});
