/**
 * Data keys (DEKs) of the vault, stored WRAPPED by a key-encryption key (KEK) that never enters the database.
 * One data key per tenant + record. See src/vault and docs/vault.md.
 */

/** One record's data key, as stored. Holds no usable key material: `wrapped` opens only with the KEK `kekId`. */
export interface DataKeyRecord {
  /** The data key's own id (random, never reused); every SealedSecret names it in `dek`. */
  id: string;
  tenant: string;
  /** The record whose secrets this key seals (a connection id, provider id, root key id...). */
  record: string;
  /** The key-encryption key that wraps it. */
  kekId: string;
  /** Base64 of the wrapped data key; opaque to the store. */
  wrapped: string;
  createdAt: Date;
  /** When the wrapping last changed (by a rewrap); absent if never. The key material itself never changes. */
  rewrappedAt?: Date;
}

/** The wrapping of a data key: which KEK, and the wrapped bytes (base64). */
export interface DataKeyWrapping {
  kekId: string;
  wrapped: string;
}

/**
 * Every write is a single-document operation. Creating a data key is an insert-once (unique tenant + record, and
 * unique id), the one write that is atomic on MongoDB and FerretDB alike. The only update is `rewrap`, which changes
 * the wrapping of one data key (addressed by its never-reused id) and never its material.
 */
export interface DataKeyRepository {
  /** Insert a data key; false if that tenant + record already has one (or the id exists): re-read it instead. */
  insert(key: DataKeyRecord): Promise<boolean>;
  get(id: string): Promise<DataKeyRecord | undefined>;
  /** The data key of a record. */
  findByRecord(tenant: string, record: string): Promise<DataKeyRecord | undefined>;
  /**
   * Replace the wrapping of data key `id` if it is still wrapped as `expected`; false if it is not (destroyed, or
   * already re-wrapped by someone else).
   */
  rewrap(id: string, expected: DataKeyWrapping, next: DataKeyWrapping & { rewrappedAt: Date }): Promise<boolean>;
  /** Up to `limit` data keys NOT wrapped by `kekId`, by id ascending, only ids greater than `after` if given. */
  listNotWrappedBy(kekId: string, limit: number, after?: string): Promise<DataKeyRecord[]>;
  /** How many data keys each KEK wraps (KEKs wrapping none are absent). */
  countByKek(): Promise<Map<string, number>>;
  /** Delete a record's data key; the number deleted (0 if none). */
  deleteByRecord(tenant: string, record: string): Promise<number>;
}
