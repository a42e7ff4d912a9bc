import { BSON, MongoClient } from "mongodb";
import { openMemoryStore } from "../../src/store/memory/memory-store.js";
import { mongoStoreOn } from "../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../src/store/store.js";
import { openTestDatabase } from "../support/mongo.js";

/** A store to run the vault's cases on, and what the cases need around it. */
export interface OpenedBackend {
  store: Store;
  /** Another store on the same data through an independent connection (a second broker process). */
  second(): Promise<Store>;
  /** Every document of every collection as EJSON text (MongoDB only). */
  dump?(): Promise<string>;
  /** A raw collection to keep sealed secrets in, as other parts of capvault would (MongoDB only). */
  keep?(docs: object[]): Promise<void>;
  close(): Promise<void>;
}

/** The same cases run against the memory store and against the real FerretDB test server. */
export const BACKENDS: [string, () => Promise<OpenedBackend>][] = [
  [
    "memory",
    async () => {
      const store = openMemoryStore();
      return { store, second: async () => store, close: async () => {} };
    },
  ],
  [
    "mongodb (FerretDB)",
    async () => {
      const t = await openTestDatabase("vault");
      const store = mongoStoreOn(t.client, t.db);
      await store.ensureIndexes();
      const others: MongoClient[] = [];
      return {
        store,
        async second() {
          const client = new MongoClient(t.uri);
          await client.connect();
          others.push(client);
          return mongoStoreOn(client, client.db(t.name));
        },
        async dump() {
          const parts: string[] = [];
          for (const c of await t.db.listCollections().toArray()) {
            const docs = await t.db.collection(c.name).find({}).toArray();
            parts.push(`${c.name}: ${BSON.EJSON.stringify(docs, { relaxed: false })}`);
          }
          return parts.join("\n");
        },
        async keep(docs) {
          await t.db.collection("sealed_secrets_under_test").insertMany(docs.map((d) => ({ ...d })));
        },
        async close() {
          for (const c of others) await c.close();
          await t.drop();
        },
      };
    },
  ],
];
