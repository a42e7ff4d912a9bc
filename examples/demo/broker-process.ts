import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** `capvault dev` running as a child process, and what its start-up banner said. */
export interface BrokerProcess {
  pid: number;
  /** gRPC address, e.g. 127.0.0.1:40123. */
  grpcAddress: string;
  /** Base URL of the OAuth callback listener, e.g. http://127.0.0.1:40124. */
  httpUrl: string;
  /** The dev operator capability the broker printed (tenant "dev"). */
  operatorToken: string;
  /** Everything the broker wrote so far (stdout: banner; stderr: JSON log lines). */
  output(): string;
  /** Stop it with SIGTERM (then SIGKILL after `graceMs`); resolves with how it exited. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Synchronous last resort (process exit): SIGKILL if still running. */
  killNow(): void;
}

/**
 * Start the real CLI, `node dist/cli/main.js dev`, with loopback ports chosen by the OS. The broker gets a clean
 * environment: the caller's CAPVAULT_* variables (a MongoDB URI, a config file...) must not change the demo.
 */
export async function startBrokerProcess(options: {
  repoRoot: string;
  providersDir: string;
  env: Record<string, string>;
  startTimeoutMs?: number;
  /** Called as soon as the process exists (before it is ready), so an interrupted start-up can still stop it. */
  onSpawn?: (handle: Pick<BrokerProcess, "pid" | "stop" | "killNow">) => void;
}): Promise<BrokerProcess> {
  const cli = join(options.repoRoot, "dist", "cli", "main.js");
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CAPVAULT_")) env[k] = v;
  Object.assign(env, {
    CAPVAULT_LOG_LEVEL: "info",
    CAPVAULT_SHUTDOWN_GRACE_MS: "2000",
    // The demo provider speaks http:// on 127.0.0.1; allowed for loopback only, never in production.
    CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: "true",
    ...options.env,
  });
  const child: ChildProcess = spawn(
    process.execPath,
    [cli, "dev", "--no-sandbox", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--providers-dir", options.providersDir],
    // Its own process group: Ctrl-C reaches the demo, which then stops the broker once, gracefully.
    { cwd: options.repoRoot, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  child.once("error", (err) => (out += `\nspawn failed: ${err.message}\n`));
  const running = () => child.exitCode === null && child.signalCode === null;
  let stopping: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  const handle: Pick<BrokerProcess, "pid" | "stop" | "killNow"> = {
    pid: child.pid ?? -1,
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        if (!running()) return exited;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      })();
      return stopping;
    },
    killNow() {
      if (running()) child.kill("SIGKILL");
    },
  };
  options.onSpawn?.(handle);

  const banner = await new Promise<{ grpcAddress: string; httpUrl: string; operatorToken: string }>((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 20_000;
    const timer = setTimeout(() => reject(new Error(`the broker did not start within ${timeoutMs / 1000} s`)), timeoutMs);
    const check = () => {
      const grpc = /running on (\S+) \(gRPC/.exec(out)?.[1];
      const http = /OAuth callbacks are served at (http:\/\/\S+?)\/oauth\/callback/.exec(out)?.[1];
      const token = /export CAPVAULT_TOKEN=(\S+)/.exec(out)?.[1];
      if (grpc && http && token) {
        clearTimeout(timer);
        resolve({ grpcAddress: grpc, httpUrl: http, operatorToken: token });
      }
    };
    child.stdout!.on("data", check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the broker exited (${signal ?? `code ${code}`}) before it was ready`));
    });
  }).catch(async (err: Error) => {
    await handle.stop(1000);
    throw Object.assign(err, { brokerOutput: out });
  });

  return { ...handle, ...banner, output: () => out };
}

/**
 * Why `dist/` must be (re)built before the demo can run the CLI, or undefined if it is current: every .ts file under
 * src/ needs its .js under dist/, written after the source last changed (per file, so an interrupted build is caught).
 */
export function buildNeeded(repoRoot: string): string | undefined {
  if (!existsSync(join(repoRoot, "dist", "cli", "main.js"))) return "there is no build yet";
  return staleOutput(join(repoRoot, "src"), join(repoRoot, "dist"), repoRoot);
}

function staleOutput(srcDir: string, distDir: string, repoRoot: string): string | undefined {
  for (const entry of readdirSync(srcDir, { withFileTypes: true })) {
    const source = join(srcDir, entry.name);
    if (entry.isDirectory()) {
      const found = staleOutput(source, join(distDir, entry.name), repoRoot);
      if (found) return found;
    } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
      const output = join(distDir, entry.name.replace(/\.ts$/, ".js"));
      if (!existsSync(output) || statSync(output).mtimeMs < statSync(source).mtimeMs) {
        return `${source.slice(repoRoot.length + 1)} changed since the last build`;
      }
    }
  }
  return undefined;
}

/** Run `tsc -p tsconfig.build.json` (what `npm run build` runs); rejects with the compiler's output. */
export function build(repoRoot: string, onSpawn?: (child: ChildProcess) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
    const child = spawn(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    onSpawn?.(child);
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`the build failed (tsc exited ${code}):\n${out.trim()}`))));
  });
}
