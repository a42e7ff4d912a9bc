import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/broker-process.js";

/*
 * The newcomer's path: `capvault dev` (what `npm start` runs once built) starts the broker with its sandbox, and the
 * `capvault call` lines its banner prints work exactly as printed, in a shell, from the repository: one returns the
 * sandbox API's 200 body, the other is refused with its reason and the failing check.
 */
const CLI = join(REPO_ROOT, "dist", "cli", "main.js");
const running: ChildProcess[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  }
});

/** Start `capvault dev ARGS` on free loopback ports and wait for its banner's last line. */
async function startDev(args: string[] = []): Promise<{ child: ChildProcess; banner: string; exited: Promise<number | null> }> {
  const env = { ...process.env };
  delete env.CAPVAULT_TOKEN;
  delete env.CAPVAULT_MONGODB_URI;
  for (const name of Object.keys(env)) if (/^CAPVAULT_.*_CLIENT_(ID|SECRET)$/.test(name)) delete env[name];
  const child = spawn(process.execPath, [CLI, "dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", ...args], {
    cwd: REPO_ROOT,
    env: { ...env, CAPVAULT_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const banner = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner in 60 s; stderr:\n${stderr}`)), 60_000);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (/^ {2}stop it: .*$/m.test(stdout)) {
        clearTimeout(timer);
        resolve(stdout);
      }
    });
    child.once("exit", (code) => reject(new Error(`capvault dev exited with ${code}:\n${stderr}`)));
  });
  return { child, banner, exited };
}

/** Run one printed line in a shell, from the repository, as a user would paste it. */
function shell(line: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.CAPVAULT_TOKEN;
    delete env.CAPVAULT_GRPC_ADDR;
    const child = spawn("bash", ["-c", line], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const printed = (banner: string, label: string) => new RegExp(`^ {2}${label}: +(npx capvault call .+)$`, "m").exec(banner)?.[1];

describe("capvault dev's sandbox", () => {
  it("prints call lines that work as printed: the allowed one returns the sandbox API's body, the denied one names its check", async () => {
    const { child, banner, exited } = await startDev();
    expect(banner).toMatch(/^Sandbox \(loopback only; --no-sandbox turns it off\):$/m);
    // What works and what is missing, by name (the shipped providers have no client ids in this environment).
    expect(banner).toMatch(/^Providers \(5 in the catalog\): usable: sandbox; not usable: .*github \(set CAPVAULT_GITHUB_CLIENT_ID and CAPVAULT_GITHUB_CLIENT_SECRET\)/m);
    expect(banner).toMatch(/alice's account is connected through the OAuth flow: connection conn_\S+ \(provider sandbox\)/);
    const allowed = printed(banner, "allowed");
    const denied = printed(banner, "denied");
    expect(allowed, banner).toBeDefined();
    expect(denied, banner).toBeDefined();

    const tokenFile = /--token-file (\S+)$/.exec(allowed!)![1];
    expect(statSync(tokenFile).mode & 0o777, "the agent capability file is private").toBe(0o600);

    const ok = await shell(allowed!);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/^HTTP 200$/m);
    expect(JSON.parse(ok.stdout)).toEqual([
      { number: 42, title: "Widgets squeak when turned clockwise", state: "open", user: { login: "bob" } },
      { number: 41, title: "Add a metric widget size", state: "open", user: { login: "carol" } },
    ]);

    const no = await shell(denied!);
    expect(no.code).toBe(1);
    expect(no.stdout).toBe("");
    expect(no.stderr).toContain("PERMISSION_DENIED CAPABILITY_CHECK_FAILED");
    expect(no.stderr).toContain('failing check: block 1, check 0: check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")');

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(existsSync(tokenFile), "the sandbox's files go with it").toBe(false);
  }, 120_000);

  it("--no-sandbox starts the broker alone", async () => {
    const { banner } = await startDev(["--no-sandbox"]);
    expect(banner).not.toContain("Sandbox");
    expect(banner).not.toContain("npx capvault call");
    expect(banner).toContain("--grant CONNECTION:GET:/");
  }, 60_000);
});
