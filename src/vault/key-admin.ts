import { CapvaultError, type Reason } from "../errors/capvault-error.js";
import type { DataKeyRepository } from "../store/data-key-repository.js";
import { generateKek, updateKeyringFile } from "./keyring-file.js";
import type { KekState, Kms } from "./kms.js";

/**
 * Key administration (`capvault keys rotate|rewrap|status|retire`). The order of a rotation:
 * 1. `rotateKeyring`: a new KEK becomes active for new wraps; the previous one stays, decrypt-only.
 *    (If brokers run on several hosts, give them all the new file before step 2.)
 * 2. `rewrapDataKeys`: every data key is re-wrapped under the active KEK. Secrets are not touched.
 * 3. `keyStatus`: the old KEK protects 0 data keys.
 * 4. `retireKek`: the old KEK is refused from then on.
 */

/** What `rotateKeyring` did. */
export interface RotateResult {
  /** The new, active KEK. */
  kekId: string;
  /** The KEK that was active before (now decrypt-only), if any. */
  previousKekId?: string;
  /** Whether the keyring file was created (it did not exist). */
  created: boolean;
}

/**
 * Add a fresh random KEK to the keyring file and make it the active one; the previously active KEK becomes
 * decrypt-only. Creates the file (mode 0600) if missing. Atomic: brokers read the old file or the new one.
 */
export async function rotateKeyring(path: string, options: { id?: string; now?: Date } = {}): Promise<RotateResult> {
  const fresh = generateKek(options.now ?? new Date(), options.id);
  let previousKekId: string | undefined;
  let created = false;
  await updateKeyringFile(
    path,
    (keys) => {
      created = keys.length === 0;
      if (keys.some((k) => k.id === fresh.id)) {
        throw new CapvaultError("CONFIG_INVALID", `keyring file ${path} already has a KEK ${fresh.id}`);
      }
      previousKekId = keys.find((k) => k.state === "active")?.id;
      return [...keys.map((k) => (k.state === "active" ? { ...k, state: "decrypt-only" as const } : k)), fresh];
    },
    { create: true },
  );
  return { kekId: fresh.id, previousKekId, created };
}

/** What to re-wrap, and how much at a time. */
export interface RewrapOptions {
  dataKeys: DataKeyRepository;
  kms: Kms;
  /** Data keys per batch; default 100. */
  batchSize?: number;
  /** Stop after this many batches (the rest is done by the next run). Default: no limit. */
  maxBatches?: number;
  /** Stop between data keys when aborted. */
  signal?: AbortSignal;
  /** Called after each batch. */
  onBatch?: (progress: RewrapProgress) => void;
  now?: () => Date;
}

/** Progress so far. */
export interface RewrapProgress {
  activeKekId: string;
  batches: number;
  /** Data keys this run re-wrapped. */
  rewrapped: number;
  /** Data keys that changed under us (re-wrapped by a concurrent run, or destroyed): nothing to do. */
  skipped: number;
  failed: RewrapFailure[];
}

/** A data key that could not be re-wrapped, and why (e.g. KEK_UNKNOWN: its KEK is not in the keyring). */
export interface RewrapFailure {
  dekId: string;
  kekId: string;
  reason: Reason;
}

/** The outcome of a run. `complete`: no data key is left on another KEK and none failed. */
export interface RewrapResult extends RewrapProgress {
  complete: boolean;
}

/** Failures that concern one data key: reported, and the run goes on. */
const PER_KEY_FAILURES: readonly Reason[] = ["KEK_UNKNOWN", "KEK_RETIRED", "SECRET_UNDECRYPTABLE"];

/**
 * Re-wrap every data key that is not wrapped by the active KEK, in batches, without touching any secret: a data
 * key's material never changes, only the KEK wrapping it. Resumable: each run picks up the data keys still on another
 * KEK, so it is safe to stop (maxBatches, signal, a crash) and run again.
 *
 * Safe while brokers serve, and on FerretDB: each data key is changed by one single-document conditional update
 * (same id AND same old wrapping). FerretDB performs it as read, change, write back by `_id`, so two rewrappers racing
 * may both "win"; each writes a wrapping of the SAME key material under the active KEK (verified before writing), so
 * either result is correct. A data key destroyed meanwhile is not resurrected (the write-back matches no row), and
 * since data key ids are never reused the write-back can never land on a newer data key. A broker reading the
 * document sees the old or the new wrapping; both unwrap (the old KEK stays decrypt-only until retired) to the same key.
 */
export async function rewrapDataKeys(options: RewrapOptions): Promise<RewrapResult> {
  const { dataKeys, kms } = options;
  const batchSize = Math.max(1, options.batchSize ?? 100);
  const now = options.now ?? (() => new Date());
  const activeKekId = await kms.activeKekId();
  const progress: RewrapProgress = { activeKekId, batches: 0, rewrapped: 0, skipped: 0, failed: [] };
  let after: string | undefined;
  for (;;) {
    if (options.maxBatches !== undefined && progress.batches >= options.maxBatches) break;
    if (options.signal?.aborted) break;
    const batch = await dataKeys.listNotWrappedBy(activeKekId, batchSize, after);
    if (batch.length === 0) return { ...progress, complete: progress.failed.length === 0 };
    for (const doc of batch) {
      if (options.signal?.aborted) break;
      after = doc.id;
      const context = { dekId: doc.id, tenant: doc.tenant, record: doc.record };
      try {
        const key = await kms.unwrap(doc.kekId, Buffer.from(doc.wrapped, "base64"), context);
        const next = await kms.wrap(key, context); // the active KEK (a newer one if rotated again meanwhile)
        const check = await kms.unwrap(next.kekId, next.wrapped, context);
        if (!check.equals(key)) throw new CapvaultError("INTERNAL", `re-wrapping data key ${doc.id} did not round-trip`);
        const changed = await dataKeys.rewrap(
          doc.id,
          { kekId: doc.kekId, wrapped: doc.wrapped },
          { kekId: next.kekId, wrapped: next.wrapped.toString("base64"), rewrappedAt: now() },
        );
        if (changed) progress.rewrapped++;
        else progress.skipped++;
      } catch (err) {
        // A data key that cannot be unwrapped is reported and skipped; anything else (the database) stops the run.
        if (!PER_KEY_FAILURES.some((reason) => CapvaultError.is(err, reason))) throw err;
        progress.failed.push({ dekId: doc.id, kekId: doc.kekId, reason: (err as CapvaultError).reason });
      }
    }
    progress.batches++;
    options.onBatch?.({ ...progress, failed: [...progress.failed] });
  }
  return { ...progress, complete: false };
}

/** How many data keys one KEK protects. `missing`: data keys name it but the keyring does not have it. */
export interface KekStatus {
  id: string;
  state: KekState | "missing";
  dataKeys: number;
  createdAt?: Date;
}

/** Every KEK of the keyring, and every KEK id data keys name, with how many data keys (records) each protects. */
export async function keyStatus(options: { dataKeys: DataKeyRepository; kms: Kms }): Promise<KekStatus[]> {
  const [keks, counts] = await Promise.all([options.kms.listKeks(), options.dataKeys.countByKek()]);
  const status: KekStatus[] = keks.map((k) => ({ ...k, dataKeys: counts.get(k.id) ?? 0 }));
  for (const [id, n] of counts) if (!keks.some((k) => k.id === id)) status.push({ id, state: "missing", dataKeys: n });
  return status;
}

/**
 * Mark a KEK retired in the keyring file, so every broker refuses it (KEK_RETIRED) even though its material stays in
 * the file (restore a backup of a data key wrapped by it, and you can still un-retire it by editing the file).
 * Only when no data key is wrapped by it (else KEK_IN_USE), and never the active KEK (rotate first).
 */
export async function retireKek(
  path: string,
  kekId: string,
  options: { dataKeys: DataKeyRepository },
): Promise<{ kekId: string; alreadyRetired: boolean }> {
  let alreadyRetired = false;
  await updateKeyringFile(path, async (keys) => {
    const kek = keys.find((k) => k.id === kekId);
    if (!kek) {
      throw new CapvaultError("KEK_UNKNOWN", `KEK ${kekId} is not in keyring file ${path}`, { metadata: { kekId } });
    }
    if (kek.state === "active") {
      throw new CapvaultError("KEK_IN_USE", `KEK ${kekId} is the active KEK: rotate first, then rewrap`, {
        metadata: { kekId },
      });
    }
    alreadyRetired = kek.state === "retired";
    const inUse = (await options.dataKeys.countByKek()).get(kekId) ?? 0;
    if (inUse > 0) {
      throw new CapvaultError("KEK_IN_USE", `KEK ${kekId} still wraps ${inUse} data key(s): run rewrap first`, {
        metadata: { kekId, dataKeys: String(inUse) },
      });
    }
    return keys.map((k) => (k.id === kekId ? { ...k, state: "retired" as const } : k));
  });
  return { kekId, alreadyRetired };
}
