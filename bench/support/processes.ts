import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { CLI, REPO_ROOT } from "./paths.js";

/** A child process of the bench, stopped with SIGTERM (then SIGKILL after a grace period). */
export interface Child {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  stop(graceMs?: number): Promise<number | null>;
}

function wrap(child: ChildProcess): Child {
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    exited,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Start a TypeScript helper (through tsx) with an IPC channel and wait for its first message. */
export async function startHelper<T>(script: string, args: string[], nodeArgs: string[] = []): Promise<Child & { ready: T }> {
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", script, ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const c = wrap(child);
  const ready = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start in 30 s`)), 30_000);
    child.once("message", (m) => {
      clearTimeout(timer);
      resolve(m as T);
    });
    c.exited.then((code) => reject(new Error(`${script} exited with ${code} before starting`)));
  });
  // The IPC channel must not keep the bench alive, nor be read again.
  child.channel?.unref();
  return Object.assign(c, { ready });
}

/** A `capvault dev` broker process: its gRPC address and the dev operator capability it printed. */
export interface BrokerProcess extends Child {
  address: string;
  operatorToken: string;
  stderr(): string;
}

/** Start `node dist/cli/main.js dev <args>` (the built CLI, or `cli`) and wait for its banner. */
export async function startBrokerProcess(args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = [], cli = CLI): Promise<BrokerProcess> {
  try {
    readFileSync(cli);
  } catch {
    throw new Error(`${cli} is missing: run \`npm run build\` first (or \`npm run bench:proxy\`)`);
  }
  const child = spawn(process.execPath, [...nodeArgs, cli, "dev", "--no-sandbox", ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const c = wrap(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const started = await new Promise<{ address: string; operatorToken: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start in 30 s:\n${out}\n${err}`)), 30_000);
    const check = () => {
      const address = /running on (\S+) /.exec(out)?.[1];
      const operatorToken = /export CAPVAULT_TOKEN=(\S+)/.exec(out)?.[1];
      if (address && operatorToken) {
        clearTimeout(timer);
        resolve({ address, operatorToken });
      }
    };
    child.stdout!.on("data", check);
    c.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before starting:\n${out}\n${err}`));
    });
  });
  return Object.assign(c, { ...started, stderr: () => err });
}

/** Resident set size of a process in bytes (VmRSS in /proc/<pid>/status). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** The ids of a process's threads now (/proc/<pid>/task). */
export function threadIdsOf(pid: number): Set<string> {
  return new Set(readdirSync(`/proc/${pid}/task`));
}

/** CPU time (user + system) a process (all its threads), or one of its threads, has used so far, in seconds. */
export function cpuSecondsOf(pid: number, thread?: number): number {
  const path = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
  const fields = readFileSync(path, "utf8").split(") ")[1].split(" ");
  // After "pid (comm) ": state is field 0; utime and stime are fields 11 and 12 (stat fields 14 and 15).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
