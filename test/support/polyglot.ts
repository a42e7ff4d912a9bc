import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "./broker-process.js";

const run = promisify(execFile);

/** The tools the polyglot tests use, installed (once, cached) by test/clients/setup-polyglot.sh. */
export interface PolyglotTools {
  python: string;
  grpcurl: string;
}

export async function polyglotTools(): Promise<PolyglotTools> {
  const { stdout } = await run("bash", [join(REPO_ROOT, "test", "clients", "setup-polyglot.sh")], {
    cwd: REPO_ROOT,
    timeout: 15 * 60_000,
    maxBuffer: 16 << 20,
  });
  const value = (k: string) => new RegExp(`^${k}=(.+)$`, "m").exec(stdout)?.[1];
  const python = value("python");
  const grpcurl = value("grpcurl");
  if (!python || !grpcurl) throw new Error(`setup-polyglot.sh printed no tools:\n${stdout}`);
  return { python, grpcurl };
}

/** One test of another language's runner. */
export interface ForeignTest {
  name: string;
  passed: boolean;
  output: string;
}

/** What one run of a foreign test runner did: its tests, or why it could not run them. */
export interface ForeignRun {
  tests: ForeignTest[];
  exitCode: number | null;
  output: string;
}

function spawnCollect(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run pytest on clients/python/tests with `env`; one ForeignTest per test case, from its JUnit XML report. */
export async function runPytest(python: string, env: NodeJS.ProcessEnv): Promise<ForeignRun> {
  const dir = await mkdtemp(join(tmpdir(), "capvault-pytest-"));
  try {
    const report = join(dir, "report.xml");
    const r = await spawnCollect(python, ["-m", "pytest", "-p", "no:cacheprovider", "-q", `--junitxml=${report}`, join(REPO_ROOT, "clients", "python", "tests")], {
      // Run from outside clients/python so the installed package (with its generated stubs) is imported.
      cwd: dir,
      env,
      timeoutMs: 5 * 60_000,
    });
    const xml = await readFile(report, "utf8").catch(() => "");
    const tests: ForeignTest[] = [];
    for (const m of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
      const name = /\bname="([^"]+)"/.exec(m[1])?.[1] ?? "?";
      const body = m[3] ?? "";
      const failed = /<(failure|error)\b/.test(body);
      const skipped = /<skipped\b/.test(body);
      tests.push({ name, passed: !failed && !skipped, output: failed || skipped ? body : "" });
    }
    return { tests, exitCode: r.code, output: r.stdout + r.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Run `go test -json` in clients/go with `env`; one ForeignTest per top-level test. */
export async function runGoTest(env: NodeJS.ProcessEnv): Promise<ForeignRun> {
  const r = await spawnCollect("go", ["test", "-json", "-count=1", "./..."], {
    cwd: join(REPO_ROOT, "clients", "go"),
    env,
    timeoutMs: 10 * 60_000,
  });
  const outputs = new Map<string, string>();
  const results = new Map<string, boolean>();
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const e = JSON.parse(line) as { Action: string; Test?: string; Output?: string };
    if (!e.Test || e.Test.includes("/")) continue;
    if (e.Action === "output") outputs.set(e.Test, (outputs.get(e.Test) ?? "") + e.Output);
    if (e.Action === "pass") results.set(e.Test, true);
    if (e.Action === "fail" || e.Action === "skip") results.set(e.Test, false);
  }
  const tests = [...results].map(([name, passed]) => ({ name, passed, output: passed ? "" : outputs.get(name) ?? "" }));
  return { tests, exitCode: r.code, output: r.stdout.split("\n").filter((l) => !l.startsWith("{")).join("\n") + r.stderr };
}
