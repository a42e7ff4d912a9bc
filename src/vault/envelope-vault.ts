import { randomBytes } from "node:crypto";
import { CapvaultError } from "../errors/capvault-error.js";
import type { DataKeyRecord, DataKeyRepository } from "../store/data-key-repository.js";
import { IV_BYTES, KEY_BYTES, TAG_BYTES, gcmOpen, gcmSeal, type GcmSealed } from "./aes-gcm.js";
import { FORMAT_VERSION, checkSecretContext, secretAssociatedData } from "./associated-data.js";
import { DataKeyCache, type CachedDataKey, type DataKeyCacheOptions } from "./data-key-cache.js";
import type { Kms } from "./kms.js";
import type { SealedSecret, SecretContext, Vault } from "./vault.js";

/** What an EnvelopeVault needs. */
export interface EnvelopeVaultOptions {
  /** Where wrapped data keys live (`store.dataKeys`). */
  dataKeys: DataKeyRepository;
  /** Who wraps and unwraps them (e.g. the local keyring). */
  kms: Kms;
  /** How long and how many unwrapped data keys stay in memory. */
  cache?: DataKeyCacheOptions;
  now?: () => Date;
}

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(text: unknown): Buffer | undefined {
  return typeof text === "string" && STRICT_BASE64.test(text) ? Buffer.from(text, "base64") : undefined;
}

/** The parts of a sealed secret, or undefined if it is not a well-formed format-1 sealed secret. */
function parseSealed(sealed: SealedSecret): (GcmSealed & { dek: string }) | undefined {
  if (typeof sealed !== "object" || sealed === null || sealed.v !== FORMAT_VERSION) return undefined;
  if (typeof sealed.dek !== "string" || sealed.dek === "") return undefined;
  const iv = decodeBase64(sealed.iv);
  const ct = decodeBase64(sealed.ct);
  const tag = decodeBase64(sealed.tag);
  if (!iv || !ct || !tag || iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return undefined;
  return { dek: sealed.dek, iv, ct, tag };
}

function undecryptable(context: SecretContext, why: string): CapvaultError {
  return new CapvaultError(
    "SECRET_UNDECRYPTABLE",
    `the sealed ${context.field} of record ${context.record} does not open: ${why}`,
    { metadata: { field: context.field } },
  );
}

/**
 * The Vault, by envelope encryption: each record (tenant + record) has one random 256-bit data key, created on the
 * record's first seal with an insert-once document (two processes racing both end up using the one that was stored)
 * and stored wrapped by the KMS. Each secret is AES-256-GCM under its record's data key with a fresh 96-bit IV and
 * associated data binding format version, data key id, tenant, record, provider and field.
 */
export class EnvelopeVault implements Vault {
  readonly #dataKeys: DataKeyRepository;
  readonly #kms: Kms;
  readonly #cache: DataKeyCache;
  readonly #now: () => Date;
  readonly #inflight = new Map<string, Promise<CachedDataKey | undefined>>();

  constructor(options: EnvelopeVaultOptions) {
    this.#dataKeys = options.dataKeys;
    this.#kms = options.kms;
    this.#cache = new DataKeyCache(options.cache);
    this.#now = options.now ?? (() => new Date());
  }

  async seal(plaintext: string | Buffer, context: SecretContext): Promise<SealedSecret> {
    const ctx = checkSecretContext(context);
    if (typeof plaintext !== "string" && !Buffer.isBuffer(plaintext)) {
      throw new CapvaultError("INVALID_REQUEST", "a secret must be a string or a Buffer");
    }
    const data = typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext;
    const dek = await this.#recordKey(ctx.tenant, ctx.record);
    const { iv, ct, tag } = gcmSeal(dek.key, data, secretAssociatedData(dek.id, ctx));
    return {
      v: FORMAT_VERSION,
      dek: dek.id,
      iv: iv.toString("base64"),
      ct: ct.toString("base64"),
      tag: tag.toString("base64"),
    };
  }

  async open(sealed: SealedSecret, context: SecretContext): Promise<Buffer> {
    const ctx = checkSecretContext(context);
    const parts = parseSealed(sealed);
    if (!parts) throw undecryptable(ctx, "it is not a well-formed sealed secret of format 1");
    const dek = await this.#keyById(parts.dek, ctx);
    const plaintext = gcmOpen(dek.key, parts, secretAssociatedData(dek.id, ctx));
    if (!plaintext) {
      throw undecryptable(ctx, "wrong tenant, record, provider or field, or the ciphertext was altered");
    }
    return plaintext;
  }

  async destroyRecordKey(tenant: string, record: string): Promise<void> {
    this.#cache.evictRecord(tenant, record);
    await this.#dataKeys.deleteByRecord(tenant, record);
    this.#cache.evictRecord(tenant, record);
  }

  /** The record's data key: cached, else read and unwrapped, else created (insert-once; the loser re-reads). */
  async #recordKey(tenant: string, record: string): Promise<CachedDataKey> {
    const cached = this.#cache.byRecord(tenant, record);
    if (cached) return cached;
    return this.#once(`record:${JSON.stringify([tenant, record])}`, async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const existing = await this.#dataKeys.findByRecord(tenant, record);
        if (existing) return this.#unwrap(existing);
        const created = await this.#create(tenant, record);
        if (created) return created;
        // Another process inserted this record's data key first: use theirs.
      }
      throw new CapvaultError("INTERNAL", `the data key of record ${record} could not be created nor read`);
    });
  }

  async #create(tenant: string, record: string): Promise<CachedDataKey | undefined> {
    const id = `dek_${randomBytes(16).toString("base64url")}`;
    const key = randomBytes(KEY_BYTES);
    const { kekId, wrapped } = await this.#kms.wrap(key, { dekId: id, tenant, record });
    const inserted = await this.#dataKeys.insert({
      id,
      tenant,
      record,
      kekId,
      wrapped: wrapped.toString("base64"),
      createdAt: this.#now(),
    });
    if (!inserted) return undefined;
    const entry = { id, tenant, record, key };
    this.#cache.put(entry);
    return entry;
  }

  /** The data key a sealed secret names, checked to belong to the context's tenant and record. */
  async #keyById(id: string, ctx: SecretContext): Promise<CachedDataKey> {
    const entry =
      this.#cache.byId(id) ??
      (await this.#once(`dek:${id}`, async () => {
        const doc = await this.#dataKeys.get(id);
        return doc && this.#unwrap(doc);
      }));
    if (!entry) throw undecryptable(ctx, "its data key no longer exists (the record key was destroyed)");
    if (entry.tenant !== ctx.tenant || entry.record !== ctx.record) {
      throw undecryptable(ctx, "it was sealed for another tenant or record");
    }
    return entry;
  }

  async #unwrap(doc: DataKeyRecord): Promise<CachedDataKey> {
    const wrapped = Buffer.from(doc.wrapped, "base64");
    const key = await this.#kms.unwrap(doc.kekId, wrapped, { dekId: doc.id, tenant: doc.tenant, record: doc.record });
    const entry = { id: doc.id, tenant: doc.tenant, record: doc.record, key };
    this.#cache.put(entry);
    return entry;
  }

  /** Run `work` once per key at a time: concurrent callers share the same promise (no unwrap stampede). */
  #once<T extends CachedDataKey | undefined>(key: string, work: () => Promise<T>): Promise<T> {
    let p = this.#inflight.get(key) as Promise<T> | undefined;
    if (!p) {
      p = work().finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    return p;
  }

  toJSON(): object {
    return { vault: "envelope", ...this.#cache.toJSON() };
  }
}
