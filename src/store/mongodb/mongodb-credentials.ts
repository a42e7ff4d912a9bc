import type { Collection, Db } from "mongodb";
import type { CredentialRecord, CredentialRepository } from "../credential-repository.js";
import { COLLECTIONS, insertOnce } from "./collections.js";

type CredentialDoc = CredentialRecord & { _id: string };

/** `_id` of a generation: two writers of the same generation collide on it, and the second insert fails. */
export const credentialDocumentId = (connection: string, generation: number) =>
  `${connection}:${String(generation).padStart(10, "0")}`;

function fromDoc(doc: CredentialDoc | null): CredentialRecord | undefined {
  if (!doc) return undefined;
  const { _id, ...rest } = doc;
  for (const k of Object.keys(rest) as (keyof CredentialRecord)[]) if (rest[k] === null) delete rest[k];
  return rest;
}

/** A hint of a connection's newest generation: only ever behind the truth, never ahead of it. */
type HeadDoc = { _id: string; generation: number };

/**
 * Credential generations on MongoDB/FerretDB: insert-once documents, never updated. The newest generation is found
 * by `_id` point lookups (the only query FerretDB serves from an index): start at the connection's head hint and
 * step up while the next generation exists. Generations are inserted once each, in order, so the hint can only be
 * behind, and stepping up from it always ends at the newest.
 */
export class MongoCredentials implements CredentialRepository {
  private readonly c: Collection<CredentialDoc>;
  private readonly heads: Collection<HeadDoc>;

  constructor(db: Db) {
    this.c = db.collection<CredentialDoc>(COLLECTIONS.credentials);
    this.heads = db.collection<HeadDoc>(COLLECTIONS.credentialHeads);
  }

  async insert(credential: CredentialRecord) {
    const inserted = await insertOnce(this.c, { _id: credentialDocumentId(credential.connection, credential.generation), ...credential });
    if (inserted) await this.advanceHead(credential.connection, credential.generation);
    return inserted;
  }
  async latest(tenant: string, connection: string) {
    const hint = (await this.heads.findOne({ _id: connection }))?.generation ?? 0;
    let generation = hint;
    let newest = hint > 0 ? await this.c.findOne({ _id: credentialDocumentId(connection, hint) }) : null;
    for (;;) {
      const next = await this.c.findOne({ _id: credentialDocumentId(connection, generation + 1) });
      if (!next) break;
      newest = next;
      generation++;
    }
    if (generation > hint) await this.advanceHead(connection, generation);
    return newest && newest.tenant === tenant ? fromDoc(newest) : undefined;
  }
  private async advanceHead(connection: string, generation: number) {
    // Not atomic on FerretDB (updates are read-modify-write): a lost race leaves the hint behind, which is safe.
    await this.heads.updateOne({ _id: connection }, { $max: { generation } }, { upsert: true });
  }
  async listExpiringBefore(before: Date, limit: number) {
    const docs = await this.c.find({ kind: "tokens", expiresAt: { $lt: before } }).sort({ expiresAt: 1 }).limit(limit).toArray();
    return docs.map((d) => fromDoc(d)!);
  }
  async deleteBelow(tenant: string, connection: string, generation: number) {
    return (await this.c.deleteMany({ tenant, connection, generation: { $lt: generation } })).deletedCount;
  }
  async deleteAll(tenant: string, connection: string) {
    const deleted = (await this.c.deleteMany({ tenant, connection })).deletedCount;
    await this.heads.deleteOne({ _id: connection });
    return deleted;
  }

  static async ensureIndexes(db: Db): Promise<void> {
    await db.collection(COLLECTIONS.credentials).createIndex({ tenant: 1, connection: 1, generation: -1 });
    await db.collection(COLLECTIONS.credentials).createIndex({ expiresAt: 1 });
    // Credentials stored before head hints existed: give each connection its hint once (a scan, at start-up only).
    const heads = db.collection<HeadDoc>(COLLECTIONS.credentialHeads);
    if ((await heads.estimatedDocumentCount()) === 0) {
      const newest = new Map<string, number>();
      for await (const d of db.collection<CredentialDoc>(COLLECTIONS.credentials).find({}, { projection: { connection: 1, generation: 1 } })) {
        newest.set(d.connection, Math.max(newest.get(d.connection) ?? 0, d.generation));
      }
      for (const [connection, generation] of newest) await heads.updateOne({ _id: connection }, { $max: { generation } }, { upsert: true });
    }
  }
}
