import type { Collection } from "mongodb";
import type { DataKeyRecord, DataKeyRepository, DataKeyWrapping } from "../data-key-repository.js";
import { insertOnce } from "./collections.js";

/** A data key as stored: `_id` is the data key's own id (random, never reused). */
export type DataKeyDocument = Omit<DataKeyRecord, "id"> & { _id: string };

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

  constructor(private readonly c: Collection<DataKeyDocument>) {}

  async insert({ id, ...rest }: DataKeyRecord) {
    // The unique index is what makes "one data key per record" hold, so make sure it exists even if the caller
    // never ran ensureIndexes.
    this.indexes ??= ensureDataKeyIndexes(this.c).catch((err) => {
      this.indexes = undefined;
      throw err;
    });
    await this.indexes;
    return insertOnce(this.c, { _id: id, ...rest });
  }

  async get(id: string) {
    return fromDoc(await this.c.findOne({ _id: id }));
  }

  async findByRecord(tenant: string, record: string) {
    // Sorted, so that even without the unique index every reader picks the same (oldest) key.
    const doc = await this.c.find({ tenant, record }).sort({ createdAt: 1, _id: 1 }).limit(1).next();
    return fromDoc(doc);
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
    return (await this.c.deleteMany({ tenant, record })).deletedCount;
  }
}
