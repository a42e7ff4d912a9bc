import { MongoClient, type CommandStartedEvent } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationPoller } from "../../src/capabilities/revocation-poller.js";
import { COLLECTIONS } from "../../src/store/mongodb/collections.js";
import { mongoStoreOn } from "../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../src/store/store.js";
import { openTestDatabase, type TestDatabase } from "../support/mongo.js";

/**
 * The revocation poll's cost does not depend on how many revocations are stored: every command a poll sends is a
 * `find` on the revocation log with a single `{_id: <string>}` equality filter (the one filter FerretDB 1.24's SQLite
 * backend serves from an index) and limit 1 — one per new entry, plus one that finds nothing. Watched with the
 * driver's command monitor against the real test database. (Timings: bench/revocation-poll.ts.)
 */

let db: TestDatabase;
let monitored: MongoClient;
let store: Store;
const commands: CommandStartedEvent[] = [];

beforeAll(async () => {
  db = await openTestDatabase("revpoll");
  monitored = new MongoClient(db.uri, { monitorCommands: true });
  monitored.on("commandStarted", (e) => commands.push(e));
  await monitored.connect();
  store = mongoStoreOn(monitored, monitored.db(db.name));
  await store.ensureIndexes();
});

afterAll(async () => {
  await monitored?.close();
  await db?.drop();
});

/** Revoke `n` ids one after the other (as the Revoke RPC does). */
async function revoke(writer: Store, n: number, from = 0) {
  for (let i = from; i < from + n; i++) await writer.revocations.insert({ id: `ab${i}`, tenant: "acme", reason: "", revokedAt: new Date() });
}

/** The commands one poll sends, as {command name, collection, filter, limit}. */
async function commandsOfPoll(poller: RevocationPoller) {
  commands.length = 0;
  await poller.poll();
  return commands
    .filter((c) => c.commandName !== "endSessions")
    .map((c) => ({ name: c.commandName, collection: c.command[c.commandName], filter: c.command.filter, limit: c.command.limit }));
}

describe("the revocation poll reads only new log entries, by _id", () => {
  it("costs one _id lookup per new entry plus one, whatever the number of revocations stored", async () => {
    // A second writer (another broker) on its own connection.
    const writer = mongoStoreOn(db.client, db.db);
    const shapes: number[] = [];
    let stored = 0;
    for (const size of [20, 200]) {
      await revoke(writer, size - stored, stored);
      stored = size;
      const poller = new RevocationPoller(store.revocations);
      await poller.start(); // start-up loads everything once (not a poll)
      poller.stop();
      expect(poller.set.size).toBe(stored);

      const idle = await commandsOfPoll(poller);
      expect(idle).toEqual([{ name: "find", collection: COLLECTIONS.revocationLog, filter: { _id: `revlog:${stored}` }, limit: 1 }]);

      await revoke(writer, 3, stored);
      stored += 3;
      const busy = await commandsOfPoll(poller);
      expect(busy).toEqual([stored - 3, stored - 2, stored - 1, stored].map((n) => ({ name: "find", collection: COLLECTIONS.revocationLog, filter: { _id: `revlog:${n}` }, limit: 1 })));
      expect(poller.set.isRevoked("acme", [`ab${stored - 1}`])).toBe(true);
      shapes.push(idle.length, busy.length);
    }
    // The same commands at 20 and at 200 stored revocations.
    expect(shapes).toEqual([1, 4, 1, 4]);
  });
});
