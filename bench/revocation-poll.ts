/**
 * Revocation poll benchmark (not a test): what one revocation poll costs with 10k and with 100k revocations stored,
 * against FerretDB built from test/ferretdb (or MONGODB_URI). Prints the median of the current poll (the revocation
 * log read by `_id`: idle, and with 10 new entries) and, for comparison, of the former poll's query
 * (`find({revokedAt: {$gte: now - 60 s}})`, which FerretDB's SQLite backend answers with a full scan), and the
 * 100k / 10k ratio of each. The current poll's ratio should be about 1.
 *
 *   node --import tsx bench/revocation-poll.ts [--small 10000] [--large 100000]
 */
import { loadavg } from "node:os";
import { MongoClient } from "mongodb";
import { RevocationPoller } from "../src/capabilities/revocation-poller.js";
import { COLLECTIONS } from "../src/store/mongodb/collections.js";
import { mongoStoreOn, revocationDocumentId } from "../src/store/mongodb/mongodb-store.js";
import { revocationLogId } from "../src/store/revocation-log.js";
import { startTestDatabase } from "../test/support/test-database-server.js";

const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const SMALL = arg("--small", 10_000);
const LARGE = arg("--large", 100_000);
const ROUNDS = 30;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const server = await startTestDatabase();
  const client = new MongoClient(server.uri);
  await client.connect();
  const db = client.db(`bench_revpoll_${process.pid}`);
  const store = mongoStoreOn(client, db);
  await store.ensureIndexes();
  console.log(`revocation poll bench: ${server.description}, load average ${loadavg()[0].toFixed(2)}`);
  let stored = 0;

  /** Seed straight into both collections (the same documents `insert` writes, in bulk; old ones, an hour ago). */
  async function seedTo(total: number) {
    const old = new Date(Date.now() - 3600_000);
    for (let from = stored; from < total; from += 5000) {
      const n = Math.min(5000, total - from);
      const ids = Array.from({ length: n }, (_, i) => `${(from + i).toString(16).padStart(16, "0")}`);
      await db.collection(COLLECTIONS.revocations).insertMany(
        ids.map((id) => ({ _id: revocationDocumentId("acme", id), revocationId: id, tenant: "acme", reason: "", revokedAt: old })) as never,
      );
      await db.collection(COLLECTIONS.revocationLog).insertMany(
        ids.map((id, i) => ({ _id: revocationLogId(from + i), at: old, kind: "revocation", tenant: "acme", revocationId: id })) as never,
      );
    }
    stored = total;
  }

  async function measure(): Promise<{ idle: number; busy: number; former: number }> {
    const poller = new RevocationPoller(store.revocations);
    await poller.start();
    poller.stop();
    const idle: number[] = [];
    const busy: number[] = [];
    const former: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let t = performance.now();
      await poller.poll();
      idle.push(performance.now() - t);
      for (let i = 0; i < 10; i++) await store.revocations.insert({ id: `new${stored}`, tenant: "acme", reason: "", revokedAt: new Date() }), stored++;
      t = performance.now();
      await poller.poll();
      busy.push(performance.now() - t);
      if (r < 5) {
        t = performance.now();
        await db.collection(COLLECTIONS.revocations).find({ revokedAt: { $gte: new Date(Date.now() - 60_000) } }).sort({ revokedAt: 1, _id: 1 }).toArray();
        former.push(performance.now() - t);
      }
    }
    return { idle: median(idle), busy: median(busy), former: median(former) };
  }

  const results: Array<{ size: number; idle: number; busy: number; former: number }> = [];
  for (const size of [SMALL, LARGE]) {
    const t = performance.now();
    await seedTo(size);
    console.log(`seeded ${stored} revocations (${Math.round(performance.now() - t)} ms)`);
    const m = await measure();
    results.push({ size, ...m });
    console.log(
      `${String(size).padStart(7)} stored: poll idle ${m.idle.toFixed(2)} ms, poll with 10 new ${m.busy.toFixed(2)} ms, former poll query ${m.former.toFixed(1)} ms (medians)`,
    );
  }
  const [a, b] = results;
  console.log(
    `ratio ${LARGE}/${SMALL}: poll idle ${(b.idle / a.idle).toFixed(2)}, poll with 10 new ${(b.busy / a.busy).toFixed(2)}, former poll query ${(b.former / a.former).toFixed(2)}`,
  );
  await db.dropDatabase();
  await client.close();
  await server.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
