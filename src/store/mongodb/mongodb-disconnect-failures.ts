import type { Collection, Db } from "mongodb";
import type { DisconnectFailureRecord, DisconnectFailureRepository } from "../disconnect-failure-repository.js";
import { COLLECTIONS, insertOnce } from "./collections.js";

type FailureDoc = Omit<DisconnectFailureRecord, "id"> & { _id: string };

/** Disconnect failures on MongoDB/FerretDB (insert-only). */
export class MongoDisconnectFailures implements DisconnectFailureRepository {
  private readonly c: Collection<FailureDoc>;

  constructor(db: Db) {
    this.c = db.collection<FailureDoc>(COLLECTIONS.disconnectFailures);
  }

  insert({ id, ...rest }: DisconnectFailureRecord) {
    return insertOnce(this.c, { _id: id, ...rest });
  }
  async list(tenant: string) {
    const docs = await this.c.find({ tenant }).sort({ occurredAt: 1, _id: 1 }).toArray();
    return docs.map(({ _id, ...rest }) => ({ id: _id, ...rest }));
  }

  static async ensureIndexes(db: Db): Promise<void> {
    await db.collection(COLLECTIONS.disconnectFailures).createIndex({ tenant: 1, occurredAt: 1 });
  }
}
