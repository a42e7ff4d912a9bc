import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { MongoClient } from "mongodb";
import { freePort } from "./free-port.js";

const run = promisify(execFile);
const WRAPPER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "ferretdb");
const BINARY = join(WRAPPER_DIR, "bin", "ferretdb");

export interface TestDatabaseServer {
  uri: string;
  redactedUri: string;
  /** e.g. "FerretDB v1.24.2 (MongoDB 7.0.42 wire, sqlite backend)". */
  description: string;
  stop(): Promise<void>;
}

const HOW_TO =
  "capvault's tests need a real MongoDB-compatible server. Either set MONGODB_URI to a MongoDB you run, " +
  "or install Go >= 1.24 so the tests can build FerretDB from test/ferretdb (bash .ci/run does both).";

/** Use MONGODB_URI when set; otherwise build FerretDB (cached by Go) and start it on a free loopback port. */
export async function startTestDatabase(): Promise<TestDatabaseServer> {
  const fromEnv = process.env.MONGODB_URI;
  if (fromEnv) {
    return { uri: fromEnv, redactedUri: redact(fromEnv), description: await describe(fromEnv), stop: async () => {} };
  }
  return startPrivateFerretDB();
}

/** A FerretDB of one test's own (whatever MONGODB_URI says): its process can be stalled (SIGSTOP) without harm to others. */
export interface PrivateFerretDB extends TestDatabaseServer {
  process: ChildProcess;
}

/** Build FerretDB (cached) and start a private instance on a free loopback port with its own SQLite directory. */
export async function startPrivateFerretDB(): Promise<PrivateFerretDB> {
  await buildFerretDB();
  const dataDir = await mkdtemp(join(tmpdir(), "capvault-ferretdb-"));
  const port = await freePort();
  const child = spawn(BINARY, [`--listen-addr=127.0.0.1:${port}`, `--sqlite-url=file:${dataDir}/`], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const uri = `mongodb://127.0.0.1:${port}/`;
  try {
    await waitUntilReady(uri, child, () => stderr);
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    uri,
    redactedUri: uri,
    description: await describe(uri),
    process: child,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGCONT");
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function buildFerretDB(): Promise<void> {
  try {
    await run("go", ["version"]);
  } catch {
    throw new Error(`Go was not found on PATH. ${HOW_TO}`);
  }
  try {
    // build.sh applies the one fix capvault needs (FerretDB's SQLite backend never used its `_id` index).
    await run("bash", [join(WRAPPER_DIR, "build.sh"), BINARY], { cwd: WRAPPER_DIR, timeout: 15 * 60_000 });
  } catch (err) {
    throw new Error(`Building FerretDB failed: ${(err as Error).message}\n${HOW_TO}`);
  }
}

async function describe(uri: string): Promise<string> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    const info = await client.db("admin").command({ buildInfo: 1 });
    return info.ferretdbVersion
      ? `FerretDB ${info.ferretdbVersion} (MongoDB ${info.version} wire, sqlite backend)`
      : `MongoDB ${info.version}`;
  } finally {
    await client.close();
  }
}

async function waitUntilReady(uri: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with ${child.exitCode}: ${log()}`);
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 500 });
    try {
      await client.db("admin").command({ ping: 1 });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await client.close().catch(() => {});
    }
  }
  throw new Error(`FerretDB did not accept connections within 30 s: ${log()}`);
}

function redact(uri: string): string {
  return uri.replace(/\/\/([^@/]*)@/, "//***@");
}
