import type { Collection } from "mongodb";
import type { RootKeyRecord, RootKeyRepository } from "../root-key-repository.js";
import { insertOnce } from "./collections.js";

type RootKeyDoc = Omit<RootKeyRecord, "id"> & { _id: number };

export class MongoRootKeys implements RootKeyRepository {
  constructor(private readonly c: Collection<RootKeyDoc>) {}
  insert({ id, ...rest }: RootKeyRecord) {
    return insertOnce(this.c, { _id: id, ...rest });
  }
  async list() {
    const docs = await this.c.find({}).sort({ _id: 1 }).toArray();
    return docs.map(({ _id, ...rest }) => ({ id: _id, ...rest }) as RootKeyRecord);
  }
  async retire(id: number, at: Date) {
    // Retiring only ever sets a date once; a concurrent second retire writing a later date is harmless.
    return (await this.c.updateOne({ _id: id, retiredAt: { $exists: false } }, { $set: { retiredAt: at } })).matchedCount === 1 ||
      (await this.c.countDocuments({ _id: id })) === 1;
  }
}
