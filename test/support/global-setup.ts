import type { TestProject } from "vitest/node";
import { startTestDatabase, type TestDatabaseServer } from "./test-database-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    mongodbUri: string;
    mongodbServer: string;
  }
}

let server: TestDatabaseServer | undefined;

/** Provide one real MongoDB-compatible server to every test file (MONGODB_URI, or a FerretDB built and started here). */
export async function setup(project: TestProject): Promise<void> {
  server = await startTestDatabase();
  project.provide("mongodbUri", server.uri);
  project.provide("mongodbServer", server.description);
  console.log(`[capvault tests] MongoDB contract suites run against: ${server.description} at ${server.redactedUri}`);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
