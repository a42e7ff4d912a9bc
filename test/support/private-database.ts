import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MongoClient } from "mongodb";
import { freePort } from "./free-port.js";
import { buildFerretDB } from "./test-database-server.js";

/** The FerretDB binary that test/ferretdb/build.sh builds. */
const BINARY = join(dirname(fileURLToPath(import.meta.url)), "..", "ferretdb", "bin", "ferretdb");

/**
 * A FerretDB of one test's own, for faults the shared server must not suffer: killed, restarted on the same port and
 * data, or stalled (SIGSTOP) while brokers use it. (startPrivateFerretDB in test-database-server.ts starts one that
 * can be stalled but not restarted.)
 */
export interface PrivateDatabase {
  uri: string;
  /** SIGKILL: the server is gone at once, mid-request. */
  kill(): Promise<void>;
  /** Start it again on the same port and data directory. */
  restart(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets open and answers nothing. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startPrivateDatabase(): Promise<PrivateDatabase> {
  await buildFerretDB();
  const dataDir = await mkdtemp(join(tmpdir(), "capvault-private-db-"));
  const port = await freePort();
  const uri = `mongodb://127.0.0.1:${port}/`;
  let child: ChildProcess | undefined;
  const start = async () => {
    const c = spawn(BINARY, [`--listen-addr=127.0.0.1:${port}`, `--sqlite-url=file:${dataDir}/`], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    c.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child = c;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`FerretDB exited with ${c.exitCode}: ${stderr}`);
      const client = new MongoClient(uri, { serverSelectionTimeoutMS: 500 });
      try {
        await client.db("admin").command({ ping: 1 });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await client.close();
      }
    }
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGCONT");
    c.kill("SIGKILL");
    await exited;
  };
  await start();
  return {
    uri,
    kill,
    restart: start,
    pause: () => child?.kill("SIGSTOP"),
    resume: () => child?.kill("SIGCONT"),
    async close() {
      await kill();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
