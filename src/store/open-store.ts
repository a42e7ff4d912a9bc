import type { Config } from "../config/schema.js";
import { openMemoryStore } from "./memory/memory-store.js";
import { openMongoStore } from "./mongodb/mongodb-store.js";
import type { Store } from "./store.js";

/** MongoDB when a URI is configured; the in-memory store otherwise (dev mode only, enforced by loadConfig). */
export async function openStore(config: Config): Promise<Store> {
  const store = config.mongodb.uri
    ? await openMongoStore(config.mongodb.uri, config.mongodb.database)
    : openMemoryStore({ maxAuditEvents: config.audit.devMaxEvents });
  await store.ensureIndexes();
  return store;
}
