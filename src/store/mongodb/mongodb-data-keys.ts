import type { Collection } from "mongodb";
import type { DataKeyRecord, DataKeyRepository, DataKeyWrapping } from "../data-key-repository.js";
import { insertOnce } from "./collections.js";

/** A data key as stored: `_id` is the data key's own id (random, never reused). */
export type DataKeyDocument = Omit<DataKeyRecord, "id"> & { _id: string };

/**
 * Which data key a record uses: `_id` is the tenant and record, so finding a record's key is two `_id` lookups (which
 * FerretDB serves from its index; a query on tenant + record scans the whole collection there, and every new record
 * would cost a scan of every data key). Written right after the key; a key without one (written by a version before
 * these, or by a writer that lost a race) is found by the scan, once, when inserting a second key for its record fails.
 */
export interface DataKeyPointerDocument {
  _id: string;
  dek: string;
}

const pointerId = (tenant: string, record: string) => JSON.stringify([tenant, record]);

/**
 * The unique index on tenant + record makes creating a record's data key an insert-once (FerretDB enforces unique
 * indexes on insert, with code 11000). Safe to call repeatedly.
 */
export async function ensureDataKeyIndexes(c: Collection<DataKeyDocument>): Promise<void> {
  await c.createIndex({ tenant: 1, record: 1 }, { unique: true, name: "tenant_record_unique" });
  await c.createIndex({ kekId: 1, _id: 1 }, { name: "kek_id" });
}

function fromDoc(doc: DataKeyDocument | null): DataKeyRecord | undefined {
  if (!doc) return undefined;
  const { _id, ...rest } = doc;
  return { id: _id, ...rest };
}

/**
 * Data keys in MongoDB / FerretDB. Ids are never reused, so the one update (`rewrap`, which FerretDB performs as
 * read, change, write back by `_id`) can only ever touch the same data key it read, never a newer one.
 */
export class MongoDataKeys implements DataKeyRepository {
  private indexes: Promise<void> | undefined;

  constructor(
    private readonly c: Collection<DataKeyDocument>,
    private readonly pointers: Collection<DataKeyPointerDocument>,
  ) {}

  async insert({ id, ...rest }: DataKeyRecord) {
    // The unique index is what makes "one data key per record" hold, so make sure it exists even if the caller
    // never ran ensureIndexes.
    this.indexes ??= ensureDataKeyIndexes(this.c).catch((err) => {
      this.indexes = undefined;
      throw err;
    });
    await this.indexes;
    if (!(await insertOnce(this.c, { _id: id, ...rest }))) {
      // The record has a key already (the unique index): make sure it can be found by `_id` from now on.
      const existing = await this.scanByRecord(rest.tenant, rest.record);
      if (existing) await insertOnce(this.pointers, { _id: pointerId(rest.tenant, rest.record), dek: existing.id });
      return false;
    }
    const pointer = { _id: pointerId(rest.tenant, rest.record), dek: id };
    if (await insertOnce(this.pointers, pointer)) return true;
    // A writer that lost the race on the unique index may have written the pointer to our key first: still ours.
    if ((await this.pointers.findOne({ _id: pointer._id }))?.dek === id) return true;
    // Another writer's key for this record was pointed to first (a server without the unique index): ours goes.
    await this.c.deleteOne({ _id: id });
    return false;
  }

  async get(id: string) {
    return fromDoc(await this.c.findOne({ _id: id }));
  }

  async findByRecord(tenant: string, record: string) {
    const pointer = await this.pointers.findOne({ _id: pointerId(tenant, record) });
    if (!pointer) return undefined;
    const doc = await this.c.findOne({ _id: pointer.dek });
    if (doc && doc.tenant === tenant && doc.record === record) return fromDoc(doc);
    // A pointer left by a delete that stopped half-way: the record has no key (a new one may be created).
    await this.pointers.deleteOne({ _id: pointer._id, dek: pointer.dek });
    return undefined;
  }

  /** The record's key by a query (a scan on FerretDB): only when a key exists without its pointer. */
  private async scanByRecord(tenant: string, record: string) {
    // Sorted, so that even without the unique index every reader picks the same (oldest) key.
    return fromDoc(await this.c.find({ tenant, record }).sort({ createdAt: 1, _id: 1 }).limit(1).next());
  }

  async rewrap(id: string, expected: DataKeyWrapping, next: DataKeyWrapping & { rewrappedAt: Date }) {
    const res = await this.c.updateOne(
      { _id: id, kekId: expected.kekId, wrapped: expected.wrapped },
      { $set: { kekId: next.kekId, wrapped: next.wrapped, rewrappedAt: next.rewrappedAt } },
    );
    return res.matchedCount === 1;
  }

  async listNotWrappedBy(kekId: string, limit: number, after?: string) {
    const filter = after === undefined ? { kekId: { $ne: kekId } } : { kekId: { $ne: kekId }, _id: { $gt: after } };
    const docs = await this.c.find(filter).sort({ _id: 1 }).limit(limit).toArray();
    return docs.map((d) => fromDoc(d)!);
  }

  async countByKek() {
    const counts = new Map<string, number>();
    for (const kekId of await this.c.distinct("kekId")) {
      counts.set(kekId, await this.c.countDocuments({ kekId }));
    }
    return counts;
  }

  async deleteByRecord(tenant: string, record: string) {
    await this.pointers.deleteOne({ _id: pointerId(tenant, record) });
    return (await this.c.deleteMany({ tenant, record })).deletedCount;
  }
}
