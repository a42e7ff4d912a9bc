/**
 * A private FerretDB for a benchmark: the test database binary (test/ferretdb/bin/ferretdb, built by
 * test/ferretdb/build.sh when missing), on a free loopback port, with its own temporary SQLite directory. Unlike the
 * test harness's server it exposes the process id, so a bench can read the database's CPU time next to its own.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { MongoClient } from "mongodb";
import { freePort } from "../../test/support/free-port.js";
import { REPO_ROOT } from "./paths.js";

const BINARY = join(REPO_ROOT, "test", "ferretdb", "bin", "ferretdb");

export interface PrivateFerretDB {
  uri: string;
  pid: number;
  /** e.g. "FerretDB v1.24.2 (sqlite backend, test/ferretdb build)". */
  description: string;
  /** Its SQLite directory (removed by stop). */
  dataDir: string;
  stop(): Promise<void>;
}

export async function startPrivateFerretDB(): Promise<PrivateFerretDB> {
  if (!existsSync(BINARY)) {
    await promisify(execFile)("bash", [join(REPO_ROOT, "test", "ferretdb", "build.sh"), BINARY], { timeout: 15 * 60_000 });
  }
  const dataDir = await mkdtemp(join(tmpdir(), "capvault-bench-ferretdb-"));
  const port = await freePort();
  const child = spawn(BINARY, [`--listen-addr=127.0.0.1:${port}`, `--sqlite-url=file:${dataDir}/`], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const uri = `mongodb://127.0.0.1:${port}/`;
  const deadline = Date.now() + 30_000;
  let version = "";
  for (;;) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with ${child.exitCode}: ${log}`);
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 500 });
    try {
      version = String((await client.db("admin").command({ buildInfo: 1 })).ferretdbVersion ?? "?");
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`FerretDB did not accept connections in 30 s: ${(err as Error).message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await client.close().catch(() => undefined);
    }
  }
  return {
    uri,
    pid: child.pid!,
    description: `FerretDB ${version} (sqlite backend, the test/ferretdb build with its _id index fix)`,
    dataDir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
