import { randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { inject } from "vitest";

export interface TestDatabase {
  client: MongoClient;
  db: Db;
  uri: string;
  name: string;
  /** Drop the database and close the client. */
  drop(): Promise<void>;
}

/** A fresh, uniquely named database on the shared test server, so every test sets up its own data. */
export async function openTestDatabase(prefix = "t"): Promise<TestDatabase> {
  const uri = inject("mongodbUri");
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const client = new MongoClient(uri);
  await client.connect();
  const db = client.db(name);
  return {
    client,
    db,
    uri,
    name,
    async drop() {
      await db.dropDatabase().catch(() => {});
      await client.close();
    },
  };
}
