import { inject } from "vitest";
import { openMemoryStore } from "../../src/store/memory/memory-store.js";
import { mongoStoreOn } from "../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../src/store/store.js";
import { openTestDatabase } from "../support/mongo.js";

/** A store under test plus how to dispose of it. */
export interface StoreUnderTest {
  store: Store;
  dispose(): Promise<void>;
}

/** The two backends every contract suite runs against: the in-memory store and the real MongoDB-compatible server. */
export const STORE_BACKENDS: { name: string; open(): Promise<StoreUnderTest> }[] = [
  {
    name: "memory",
    async open() {
      const store = openMemoryStore();
      return { store, dispose: () => store.close() };
    },
  },
  {
    name: `mongodb (${safeInject()})`,
    async open() {
      const tdb = await openTestDatabase("store");
      const store = mongoStoreOn(tdb.client, tdb.db);
      await store.ensureIndexes();
      return { store, dispose: () => tdb.drop() };
    },
  },
];

function safeInject(): string {
  try {
    return inject("mongodbServer");
  } catch {
    return "server";
  }
}
