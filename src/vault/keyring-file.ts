import { randomBytes } from "node:crypto";
import { open, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { CapvaultError } from "../errors/capvault-error.js";
import { KEY_BYTES } from "./aes-gcm.js";
import type { KekState } from "./kms.js";

/**
 * The local keyring file: a JSON document, mode 0600, holding the KEKs.
 *
 * ```json
 * { "version": 1,
 *   "keys": [{ "id": "kek-20261128-1a2b3c", "state": "active", "createdAt": "2026-11-28T10:00:00.000Z",
 *              "key": "<base64 of 32 random bytes>" }] }
 * ```
 * Exactly one key is `active` (new wraps); older ones are `decrypt-only` until re-wrapped away, then `retired`.
 * Messages about the file name the file and the offending key id, never key material.
 */

/** One KEK of the keyring. */
export interface KeyringEntry {
  id: string;
  key: Buffer;
  state: KekState;
  createdAt: Date;
}

/**
 * Identifies one version of the file: a rename (our atomic write) changes the inode, an edit the mtime or size, a
 * chmod the mode and ctime.
 */
export interface KeyringFingerprint {
  ino: number;
  size: number;
  mode: number;
  mtimeMs: number;
  ctimeMs: number;
}

const fingerprintOf = (s: { ino: number; size: number; mode: number; mtimeMs: number; ctimeMs: number }) => ({
  ino: s.ino,
  size: s.size,
  mode: s.mode,
  mtimeMs: s.mtimeMs,
  ctimeMs: s.ctimeMs,
});

/** KEK ids: short, printable, safe in file names, logs and associated data. */
export const KEK_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const STATES: readonly KekState[] = ["active", "decrypt-only", "retired"];
const BASE64_32_BYTES = /^[A-Za-z0-9+/]{43}=$/;

/** Decode the base64 of exactly 32 bytes, or undefined. */
export function decodeKekMaterial(text: string): Buffer | undefined {
  if (!BASE64_32_BYTES.test(text)) return undefined;
  const key = Buffer.from(text, "base64");
  return key.length === KEY_BYTES ? key : undefined;
}

/** A fresh random KEK, active. */
export function generateKek(now: Date, id?: string): KeyringEntry {
  const kekId = id ?? `kek-${now.toISOString().slice(0, 10).replaceAll("-", "")}-${randomBytes(3).toString("hex")}`;
  if (!KEK_ID_PATTERN.test(kekId)) {
    throw new CapvaultError("CONFIG_INVALID", "a KEK id is 1-64 characters of A-Z a-z 0-9 . _ -");
  }
  return { id: kekId, key: randomBytes(KEY_BYTES), state: "active", createdAt: now };
}

/** The file's current fingerprint (stat); throws CONFIG_INVALID if it cannot be read. */
export async function keyringFingerprint(path: string): Promise<KeyringFingerprint> {
  try {
    return fingerprintOf(await stat(path));
  } catch (err) {
    throw new CapvaultError("CONFIG_INVALID", `keyring file ${path} cannot be read (${(err as { code?: string }).code})`);
  }
}

/** Whether two fingerprints name the same version of the file. */
export function sameFingerprint(a: KeyringFingerprint, b: KeyringFingerprint): boolean {
  return (
    a.ino === b.ino && a.size === b.size && a.mode === b.mode && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs
  );
}

/**
 * Read and validate the keyring file. Refused (CONFIG_INVALID naming the file) if group or others have any access to
 * it, if it is not a regular file, or if its content is invalid. The mode is checked on the opened file itself.
 */
export async function readKeyringFile(path: string): Promise<{ keys: KeyringEntry[]; fingerprint: KeyringFingerprint }> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (err) {
    throw new CapvaultError("CONFIG_INVALID", `keyring file ${path} cannot be read (${(err as { code?: string }).code})`);
  }
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw new CapvaultError("CONFIG_INVALID", `keyring file ${path} is not a regular file`);
    if ((s.mode & 0o077) !== 0) {
      const mode = (s.mode & 0o777).toString(8).padStart(4, "0");
      throw new CapvaultError(
        "CONFIG_INVALID",
        `keyring file ${path} has mode ${mode}: group or others can access it, so it is refused (run: chmod 600 ${path})`,
      );
    }
    const text = await fh.readFile("utf8");
    return { keys: parseKeyring(text, path), fingerprint: fingerprintOf(s) };
  } finally {
    await fh.close();
  }
}

/** Parse and validate the file's text. Errors name the file and key id, never the material. */
export function parseKeyring(text: string, path: string): KeyringEntry[] {
  const bad = (what: string) => new CapvaultError("CONFIG_INVALID", `keyring file ${path}: ${what}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the text, which may hold key material: never pass it on.
    throw bad("is not valid JSON");
  }
  const { version, keys } = (doc ?? {}) as { version?: unknown; keys?: unknown };
  if (version !== 1) throw bad('"version" must be 1');
  if (!Array.isArray(keys)) throw bad('"keys" must be an array');
  const entries = keys.map((k: Record<string, unknown>, i): KeyringEntry => {
    const id = k?.id;
    if (typeof id !== "string" || !KEK_ID_PATTERN.test(id)) throw bad(`keys[${i}].id must match ${KEK_ID_PATTERN}`);
    if (!STATES.includes(k.state as KekState)) throw bad(`key ${id}: state must be one of ${STATES.join(", ")}`);
    const key = typeof k.key === "string" ? decodeKekMaterial(k.key) : undefined;
    if (!key) throw bad(`key ${id}: "key" must be the base64 of 32 bytes`);
    const createdAt = new Date(typeof k.createdAt === "string" ? k.createdAt : NaN);
    if (Number.isNaN(createdAt.getTime())) throw bad(`key ${id}: "createdAt" must be an ISO date`);
    return { id, key, state: k.state as KekState, createdAt };
  });
  checkKeyring(entries, bad);
  return entries;
}

function checkKeyring(keys: KeyringEntry[], bad: (what: string) => CapvaultError): void {
  const ids = new Set<string>();
  for (const k of keys) {
    if (ids.has(k.id)) throw bad(`key id ${k.id} appears twice`);
    ids.add(k.id);
  }
  const active = keys.filter((k) => k.state === "active").length;
  if (active !== 1) throw bad(`exactly one key must be "active" (found ${active})`);
}

/** The file's text for `keys`. */
export function serializeKeyring(keys: readonly KeyringEntry[]): string {
  const out = keys.map((k) => ({
    id: k.id,
    state: k.state,
    createdAt: k.createdAt.toISOString(),
    key: k.key.toString("base64"),
  }));
  return JSON.stringify({ version: 1, keys: out }, null, 2) + "\n";
}

/**
 * Change the keyring file atomically: `${path}.tmp` is created exclusively (mode 0600; it doubles as a lock, so two
 * `capvault keys` commands cannot lose each other's change), the current file is read, `change` computes the new
 * keys, which are written, fsynced, and renamed over the file. Brokers see either the old or the new file, never a
 * partial one. With `create`, a missing file counts as an empty keyring. Returns the new keys.
 */
export async function updateKeyringFile(
  path: string,
  change: (keys: KeyringEntry[]) => KeyringEntry[] | Promise<KeyringEntry[]>,
  options: { create?: boolean } = {},
): Promise<KeyringEntry[]> {
  const tmp = `${path}.tmp`;
  let fh;
  try {
    fh = await open(tmp, "wx", 0o600);
  } catch (err) {
    if ((err as { code?: string }).code === "EEXIST") {
      throw new CapvaultError(
        "CONFIG_INVALID",
        `keyring file ${path} is being changed by another command (${tmp} exists; remove it if no command is running)`,
      );
    }
    throw new CapvaultError("CONFIG_INVALID", `cannot write next to keyring file ${path} (${(err as { code?: string }).code})`);
  }
  try {
    const exists = await stat(path).then(
      () => true,
      (err) => ((err as { code?: string }).code === "ENOENT" ? false : Promise.reject(err)),
    );
    if (!exists && !options.create) throw new CapvaultError("CONFIG_INVALID", `keyring file ${path} does not exist`);
    const current = exists ? (await readKeyringFile(path)).keys : [];
    const next = await change(current);
    checkKeyring(next, (what) => new CapvaultError("CONFIG_INVALID", `keyring file ${path}: ${what}`));
    await fh.chmod(0o600);
    await fh.writeFile(serializeKeyring(next), "utf8");
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
    await syncDirectory(dirname(path));
    return next;
  } catch (err) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const d = await open(dir, "r").catch(() => undefined);
  if (!d) return;
  await d.sync().catch(() => {});
  await d.close();
}
