import { createServer, type Server } from "node:http";
import type { TestProject } from "vitest/node";
import { startTestDatabase, type TestDatabaseServer } from "./test-database-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Where a test worker asks for the test database (test/support/mongo.ts); it is started on the first ask. */
    testDatabaseUrl: string;
    /** What the MongoDB suites run against, for their titles (known without starting anything). */
    mongodbServer: string;
  }
}

let database: Promise<TestDatabaseServer> | undefined;
let http: Server | undefined;

/**
 * Provide one real MongoDB-compatible server to every test file that needs one, started lazily: nothing is built or
 * started until a test opens a database (test/support/mongo.ts), so a run of unit files alone never touches Go or
 * FerretDB. MONGODB_URI, when set, is used instead of FerretDB.
 */
export async function setup(project: TestProject): Promise<void> {
  http = createServer((req, res) => {
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    database ??= startTestDatabase().then((server) => {
      console.log(`[capvault tests] MongoDB suites run against: ${server.description} at ${server.redactedUri}`);
      return server;
    });
    database.then(
      (server) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ uri: server.uri })),
      (err: Error) => res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: err.message })),
    );
  });
  const port = await new Promise<number>((resolve, reject) => {
    http!.once("error", reject);
    http!.listen(0, "127.0.0.1", () => resolve((http!.address() as { port: number }).port));
  });
  project.provide("testDatabaseUrl", `http://127.0.0.1:${port}/database`);
  project.provide("mongodbServer", process.env.MONGODB_URI ? "MONGODB_URI" : "FerretDB 1.24.2");
}

export async function teardown(): Promise<void> {
  await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
  http?.closeAllConnections();
  const started = await database?.catch(() => undefined);
  await started?.stop();
}
