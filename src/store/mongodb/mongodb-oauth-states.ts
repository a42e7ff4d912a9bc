import type { Collection, Db } from "mongodb";
import type { OAuthStateRecord, OAuthStateRepository } from "../oauth-state-repository.js";
import { COLLECTIONS, insertOnce } from "./collections.js";

type StateDoc = Omit<OAuthStateRecord, "id"> & { _id: string };
type ConsumptionDoc = { _id: string; consumedAt: Date; expiresAt: Date };

/**
 * One-time OAuth states on MongoDB/FerretDB. `consume` inserts a marker whose `_id` is the state hash: the only write
 * that is atomic on FerretDB, so a replayed state fails even across broker processes.
 */
export class MongoOAuthStates implements OAuthStateRepository {
  private readonly states: Collection<StateDoc>;
  private readonly consumptions: Collection<ConsumptionDoc>;

  constructor(db: Db) {
    this.states = db.collection<StateDoc>(COLLECTIONS.oauthStates);
    this.consumptions = db.collection<ConsumptionDoc>(COLLECTIONS.oauthStateConsumptions);
  }

  insert({ id, ...rest }: OAuthStateRecord) {
    return insertOnce(this.states, { _id: id, ...rest });
  }
  async get(id: string) {
    const doc = await this.states.findOne({ _id: id });
    if (!doc) return undefined;
    const { _id, ...rest } = doc;
    return { id: _id, ...rest } as OAuthStateRecord;
  }
  consume(id: string, consumedAt: Date, expiresAt: Date) {
    return insertOnce(this.consumptions, { _id: id, consumedAt, expiresAt });
  }
  async deleteExpired(before: Date) {
    const a = await this.states.deleteMany({ expiresAt: { $lt: before } });
    const b = await this.consumptions.deleteMany({ expiresAt: { $lt: before } });
    return a.deletedCount + b.deletedCount;
  }

  /** Indexes for the purge job (plain indexes: FerretDB has no TTL indexes). */
  static async ensureIndexes(db: Db): Promise<void> {
    await db.collection(COLLECTIONS.oauthStates).createIndex({ expiresAt: 1 });
    await db.collection(COLLECTIONS.oauthStateConsumptions).createIndex({ expiresAt: 1 });
  }
}
