/** An unwrapped data key, with the record it belongs to. */
export interface CachedDataKey {
  id: string;
  tenant: string;
  record: string;
  key: Buffer;
}

/** How long and how many unwrapped data keys stay in memory. */
export interface DataKeyCacheOptions {
  /** Default 1,000. */
  maxEntries?: number;
  /** Default 5 minutes. */
  ttlMs?: number;
  /** For tests. */
  now?: () => number;
}

const recordKey = (tenant: string, record: string) => JSON.stringify([tenant, record]);

/**
 * A small, bounded, expiring cache of unwrapped data keys, so the Proxy does not unwrap on every call. Least recently
 * used entries go first once full. Never logged: `inspect` and JSON show only the count.
 */
export class DataKeyCache {
  readonly #byId = new Map<string, { entry: CachedDataKey; expires: number }>();
  readonly #byRecord = new Map<string, string>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #now: () => number;

  constructor(options: DataKeyCacheOptions = {}) {
    this.#max = Math.max(1, options.maxEntries ?? 1000);
    this.#ttl = options.ttlMs ?? 5 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** The data key with this id, if cached and fresh. */
  byId(id: string): CachedDataKey | undefined {
    const hit = this.#byId.get(id);
    if (!hit) return undefined;
    if (hit.expires <= this.#now()) {
      this.#delete(hit.entry);
      return undefined;
    }
    this.#byId.delete(id); // move to the most recently used end
    this.#byId.set(id, hit);
    return hit.entry;
  }

  /** The data key of a record, if cached and fresh. */
  byRecord(tenant: string, record: string): CachedDataKey | undefined {
    const id = this.#byRecord.get(recordKey(tenant, record));
    return id === undefined ? undefined : this.byId(id);
  }

  put(entry: CachedDataKey): void {
    this.#byId.delete(entry.id);
    this.#byId.set(entry.id, { entry, expires: this.#now() + this.#ttl });
    this.#byRecord.set(recordKey(entry.tenant, entry.record), entry.id);
    while (this.#byId.size > this.#max) this.#delete(this.#byId.values().next().value!.entry);
  }

  /** Forget every data key of a record. */
  evictRecord(tenant: string, record: string): void {
    for (const { entry } of [...this.#byId.values()]) {
      if (entry.tenant === tenant && entry.record === record) this.#delete(entry);
    }
    this.#byRecord.delete(recordKey(tenant, record));
  }

  get size(): number {
    return this.#byId.size;
  }

  #delete(entry: CachedDataKey): void {
    this.#byId.delete(entry.id);
    const rk = recordKey(entry.tenant, entry.record);
    if (this.#byRecord.get(rk) === entry.id) this.#byRecord.delete(rk);
  }

  toJSON(): object {
    return { cachedDataKeys: this.#byId.size };
  }
}
