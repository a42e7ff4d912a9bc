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

/** Credential generations on MongoDB/FerretDB: insert-once documents, never updated. */
export class MongoCredentials implements CredentialRepository {
  private readonly c: Collection<CredentialDoc>;

  constructor(db: Db) {
    this.c = db.collection<CredentialDoc>(COLLECTIONS.credentials);
  }

  insert(credential: CredentialRecord) {
    return insertOnce(this.c, { _id: credentialDocumentId(credential.connection, credential.generation), ...credential });
  }
  async latest(tenant: string, connection: string) {
    return fromDoc(await this.c.find({ tenant, connection }).sort({ generation: -1 }).limit(1).next());
  }
  async listExpiringBefore(before: Date, limit: number) {
    const docs = await this.c.find({ kind: "tokens", expiresAt: { $lt: before } }).sort({ expiresAt: 1 }).limit(limit).toArray();
    return docs.map((d) => fromDoc(d)!);
  }
  async deleteBelow(tenant: string, connection: string, generation: number) {
    return (await this.c.deleteMany({ tenant, connection, generation: { $lt: generation } })).deletedCount;
  }
  async deleteAll(tenant: string, connection: string) {
    return (await this.c.deleteMany({ tenant, connection })).deletedCount;
  }

  static async ensureIndexes(db: Db): Promise<void> {
    await db.collection(COLLECTIONS.credentials).createIndex({ tenant: 1, connection: 1, generation: -1 });
    await db.collection(COLLECTIONS.credentials).createIndex({ expiresAt: 1 });
  }
}
