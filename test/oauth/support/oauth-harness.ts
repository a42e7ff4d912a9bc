import { inspect } from "node:util";
import { startCallbackServer, type CallbackServer } from "../../../src/oauth/callback-server.js";
import type { OAuthEvent, OAuthLogger } from "../../../src/oauth/oauth-events.js";
import { createOAuthModule, type OAuthConfig, type OAuthModule } from "../../../src/oauth/oauth-module.js";
import { mongoStoreOn } from "../../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../../src/store/store.js";
import { openVault } from "../../../src/vault/open-vault.js";
import type { Vault } from "../../../src/vault/vault.js";
import { openTestDatabase, type TestDatabase } from "../../support/mongo.js";
import { freePort } from "../../support/free-port.js";

import { TEST_KEK } from "./test-kek.js";

/** A logger that keeps every line (objects rendered with util.inspect, as a real logger would serialise them). */
export function capturingLogger(lines: string[]): OAuthLogger {
  const log = (level: string) => (obj: object, msg?: string) => lines.push(`${level} ${msg ?? ""} ${inspect(obj, { depth: 5 })} ${JSON.stringify(obj)}`);
  return { info: log("info"), warn: log("warn"), error: log("error") };
}

/** A vault over the real envelope implementation, keyed by the shared test KEK. */
export function testVault(store: Store): Promise<Vault> {
  return openVault({ dataKeys: store.dataKeys, keyring: { source: "env", key: TEST_KEK, id: "test-1", variable: "TEST_KEK" } });
}

export interface Broker {
  oauth: OAuthModule;
  callback: CallbackServer;
  redirectUri: string;
  logs: string[];
  events: OAuthEvent[];
  close(): Promise<void>;
}

/** One broker (OAuth module + callback server) on a shared store. */
export async function startBroker(
  store: Store,
  vault: Vault,
  config: OAuthConfig & { port?: number },
  extra: { now?: () => number; holderId?: string } = {},
): Promise<Broker> {
  const port = config.port ?? (await freePort());
  const redirectUri = config.redirectUri ?? `http://127.0.0.1:${port}/oauth/callback`;
  const logs: string[] = [];
  const events: OAuthEvent[] = [];
  const logger = capturingLogger(logs);
  const oauth = await createOAuthModule({
    config: { allowInsecureLoopback: true, ...config, redirectUri },
    store,
    vault,
    logger,
    onEvent: (e) => {
      events.push(e);
    },
    ...extra,
  });
  const callback = await startCallbackServer({ addr: `127.0.0.1:${port}`, oauth, logger });
  return { oauth, callback, redirectUri, logs, events, close: () => callback.close() };
}

/** A fresh database on the FerretDB test server, its Store and a Vault. */
export async function openOAuthStore(): Promise<{ db: TestDatabase; store: Store; vault: Vault; close(): Promise<void> }> {
  const db = await openTestDatabase("oauth");
  const store = mongoStoreOn(db.client, db.db);
  await store.ensureIndexes();
  const vault = await testVault(store);
  return { db, store, vault, close: () => db.drop() };
}
