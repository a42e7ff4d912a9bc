import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { CapvaultError } from "../errors/capvault-error.js";
import { KEY_BYTES, gcmOpen, gcmSeal, packGcm, unpackGcm } from "./aes-gcm.js";
import { wrapAssociatedData } from "./associated-data.js";
import {
  decodeKekMaterial,
  generateKek,
  keyringFingerprint,
  KEK_ID_PATTERN,
  readKeyringFile,
  sameFingerprint,
  type KeyringEntry,
  type KeyringFingerprint,
} from "./keyring-file.js";
import type { KekDescription, Kms, WrapContext, WrappedDataKey } from "./kms.js";

/** Version byte in front of every wrapped data key. */
const WRAP_FORMAT = 1;

/**
 * Where the local keyring's KEKs come from:
 * - `file`: a keyring file (mode 0600), reloaded when it changes, so brokers pick up `capvault keys rotate|retire`;
 * - `env`: one KEK given as the base64 of 32 bytes (e.g. `CAPVAULT_KEK`), with id `id` (default "env-1");
 * - `dev`: a fresh random KEK in memory, gone with the process (dev mode only).
 */
export type KeyringConfig =
  | { source: "file"; path: string }
  | { source: "env"; key: string; id?: string; variable?: string }
  | { source: "dev" };

/** A loggable description of a keyring configuration (never the key). */
export function describeKeyringConfig(config: KeyringConfig): string {
  switch (config.source) {
    case "file":
      return `keyring file ${config.path}`;
    case "env":
      return `KEK ${config.id ?? "env-1"} from ${config.variable ?? "the environment"}`;
    case "dev":
      return "dev keyring (random in-memory KEK)";
  }
}

/**
 * The local keyring: a Kms whose KEKs are held by this process (from a file, the environment, or generated for dev).
 * Wrapping is AES-256-GCM under the KEK with associated data binding the KEK id, the data key id and its record.
 * Key material is kept in private fields and never appears in logs, errors, JSON or `inspect`.
 */
export class LocalKeyring implements Kms {
  #keys = new Map<string, KeyringEntry>();
  #active = "";
  readonly #path: string | undefined;
  readonly #description: string;
  #fingerprint: KeyringFingerprint | undefined;
  #reloading: Promise<void> | undefined;

  private constructor(description: string, path?: string) {
    this.#description = description;
    this.#path = path;
  }

  /** Open the keyring a configuration names. Throws CONFIG_INVALID (naming the file or variable) if unusable. */
  static async open(config: KeyringConfig): Promise<LocalKeyring> {
    const ring = new LocalKeyring(describeKeyringConfig(config), config.source === "file" ? config.path : undefined);
    if (config.source === "file") {
      await ring.#reload();
    } else if (config.source === "env") {
      const id = config.id ?? "env-1";
      const name = config.variable ?? "the environment KEK";
      if (!KEK_ID_PATTERN.test(id)) throw new CapvaultError("CONFIG_INVALID", `the id of ${name} must match ${KEK_ID_PATTERN}`);
      const key = decodeKekMaterial(config.key.trim());
      if (!key) throw new CapvaultError("CONFIG_INVALID", `${name} must be the base64 of 32 random bytes`);
      ring.#set([{ id, key, state: "active", createdAt: new Date(0) }]);
    } else {
      ring.#set([generateKek(new Date(), `dev-${randomBytes(4).toString("hex")}`)]);
    }
    return ring;
  }

  async activeKekId(): Promise<string> {
    await this.#refresh();
    return this.#active;
  }

  async wrap(dek: Buffer, context: WrapContext, kekId?: string): Promise<WrappedDataKey> {
    if (dek.length !== KEY_BYTES) throw new CapvaultError("INTERNAL", "a data key must be 32 bytes");
    await this.#refresh();
    const entry = await this.#usable(kekId ?? this.#active);
    if (entry.state !== "active") {
      throw new CapvaultError("KEK_NOT_ACTIVE", `KEK ${entry.id} is ${entry.state}: only the active KEK wraps`, {
        metadata: { kekId: entry.id },
      });
    }
    const sealed = gcmSeal(entry.key, dek, wrapAssociatedData(entry.id, context.dekId, context.tenant, context.record));
    return { kekId: entry.id, wrapped: packGcm(WRAP_FORMAT, sealed) };
  }

  async unwrap(kekId: string, wrapped: Buffer, context: WrapContext): Promise<Buffer> {
    await this.#refresh();
    const entry = await this.#usable(kekId);
    const sealed = unpackGcm(WRAP_FORMAT, wrapped);
    const aad = wrapAssociatedData(entry.id, context.dekId, context.tenant, context.record);
    const dek = sealed && gcmOpen(entry.key, sealed, aad);
    if (!dek || dek.length !== KEY_BYTES) {
      throw new CapvaultError(
        "SECRET_UNDECRYPTABLE",
        `data key ${context.dekId} does not unwrap under KEK ${kekId} (tampered, or bound to another key or record)`,
        { metadata: { kekId, dekId: context.dekId } },
      );
    }
    return dek;
  }

  async listKeks(): Promise<KekDescription[]> {
    await this.#refresh();
    return [...this.#keys.values()].map(({ id, state, createdAt }) => ({ id, state, createdAt }));
  }

  /** The KEK `id` if it may be used at all: reloads the file once if the id is unknown; refuses retired KEKs. */
  async #usable(id: string): Promise<KeyringEntry> {
    let entry = this.#keys.get(id);
    if (!entry && this.#path) {
      await this.#refresh(true);
      entry = this.#keys.get(id);
    }
    if (!entry) {
      throw new CapvaultError("KEK_UNKNOWN", `KEK ${id} is not in the ${this.#description}`, { metadata: { kekId: id } });
    }
    if (entry.state === "retired") {
      throw new CapvaultError("KEK_RETIRED", `KEK ${id} is retired and may not be used`, { metadata: { kekId: id } });
    }
    return entry;
  }

  /** Reload the file if it changed since last read (or always, with `force`). Fails closed if it became invalid. */
  async #refresh(force = false): Promise<void> {
    if (!this.#path) return;
    if (!force && this.#fingerprint && sameFingerprint(this.#fingerprint, await keyringFingerprint(this.#path))) return;
    await this.#reload();
  }

  #reload(): Promise<void> {
    this.#reloading ??= (async () => {
      try {
        const { keys, fingerprint } = await readKeyringFile(this.#path!);
        this.#set(keys);
        this.#fingerprint = fingerprint;
      } finally {
        this.#reloading = undefined;
      }
    })();
    return this.#reloading;
  }

  #set(keys: KeyringEntry[]): void {
    this.#keys = new Map(keys.map((k) => [k.id, k]));
    this.#active = keys.find((k) => k.state === "active")!.id;
  }

  /** Redacted: KEK ids and states only. */
  toJSON(): object {
    return { keyring: this.#description, keks: [...this.#keys.values()].map((k) => `${k.id} (${k.state})`) };
  }

  [inspect.custom](): string {
    return `LocalKeyring ${JSON.stringify(this.toJSON())}`;
  }
}

/** Open the local keyring a configuration names. */
export function openLocalKeyring(config: KeyringConfig): Promise<LocalKeyring> {
  return LocalKeyring.open(config);
}
