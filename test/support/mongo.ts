import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { MongoClient, type Db } from "mongodb";
import { beforeAll, inject } from "vitest";

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
  const uri = await testDatabaseUri();
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

let uriOnce: Promise<string> | undefined;

// Every test file that can open a test database (it imports this module) waits for the server in a hook of its own,
// with room for a first build of FerretDB, so that no test's own timeout is spent starting it.
beforeAll(() => testDatabaseUri(), 20 * 60_000);

/**
 * The shared test server's URI. The global setup (test/support/global-setup.ts) starts the server on the first ask
 * from any test file, so files that never open a database run without it.
 */
export function testDatabaseUri(): Promise<string> {
  uriOnce ??= new Promise<string>((resolve, reject) => {
    // No timeout: the first ask may wait for FerretDB to build (minutes on a fresh machine); hooks time out instead.
    const req = request(inject("testDatabaseUrl"), { method: "POST" }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        try {
          const body = JSON.parse(text) as { uri?: string; error?: string };
          if (res.statusCode === 200 && body.uri) resolve(body.uri);
          else reject(new Error(body.error ?? `the test database could not be started (HTTP ${res.statusCode})`));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on("error", reject);
    req.end();
  });
  return uriOnce;
}
