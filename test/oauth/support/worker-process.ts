import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const WORKER = join(ROOT, "test", "oauth", "fixtures", "refresh-worker.ts");

export interface WorkerResult {
  pid: number;
  ok: number;
  failed: number;
  reasons: string[];
  fingerprints: string[];
  generations: number[];
  ms: number;
}

/** A refresh-worker child process (a separate broker with its own MongoClient). */
export interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<WorkerResult>;
  stderr(): string;
  go(): void;
}

/** Spawn `node --import tsx test/oauth/fixtures/refresh-worker.ts` with the given environment. */
export function spawnWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_NO_WARNINGS: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.includes("ready\n")) onReady();
  });
  const result = new Promise<WorkerResult>((resolve, reject) => {
    child.on("exit", (code, signal) => {
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve(JSON.parse(line) as WorkerResult);
      else reject(new Error(`worker exited (${code ?? signal}) without a result: ${err.slice(-2000)}`));
    });
  });
  result.catch(() => {});
  return { child, ready, result, stderr: () => err, go: () => child.stdin!.write("go\n") };
}
