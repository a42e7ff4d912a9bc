import { execFile } from "node:child_process";
import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Production shape: the capability module compiled to JS and run by plain `node`, without any flag: the loader compiles
 * the wasm itself, workers start from the compiled entry, and nothing reaches stdout but the program's own output.
 */
const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
// Inside the repository so that the compiled files resolve node_modules as in dist/.
const OUT = join(REPO, "node_modules", ".cache", `capvault-capabilities-dist-${process.pid}`);
const ALONE = `${OUT}-without-native`;
afterAll(() => Promise.all([rm(OUT, { recursive: true, force: true }), rm(ALONE, { recursive: true, force: true })]));

const PROGRAM = `
import { Capabilities, generateRootKey, toPublicKey } from "./capabilities/index.js";
const caps = new Capabilities({ workers: 2 });
const rootKey = generateRootKey(1);
const publicKeys = [toPublicKey(rootKey)];
const { token } = await caps.mint({ rootKey, tenant: "acme", subject: "a", grants: [{ connection: "c1", method: "GET", pathPrefix: "/repos/acme/" }], ttlSeconds: 60 });
const request = { tenant: "acme", connection: "c1", provider: "github", host: "api.github.com", method: "GET" };
const ok = await caps.authorize(token, { ...request, path: "/repos/acme/x" }, { publicKeys });
const no = await caps.authorize(token, { ...request, path: "/repos/acme-evil" }, { publicKeys });
await caps.close();
process.stdout.write("RESULT " + JSON.stringify([ok.allowed, no.allowed, no.reason]) + "\\n");
`;

const RUNTIMES = `
import { Capabilities } from "./capabilities/index.js";
const auto = new Capabilities({ workers: 1 });
let native;
try {
  new Capabilities({ workers: 1, runtime: "native" });
  native = "started";
} catch (err) {
  native = err.reason + ": " + err.message;
}
await auto.close();
process.stdout.write("RESULT " + JSON.stringify([auto.runtime, native]) + "\\n");
`;

describe("compiled JS under plain node", () => {
  beforeAll(async () => {
    await mkdir(OUT, { recursive: true });
    await run(
      process.execPath,
      [
        join(REPO, "node_modules", "typescript", "bin", "tsc"),
        "--outDir", OUT, "--rootDir", join(REPO, "src"),
        "--module", "NodeNext", "--moduleResolution", "NodeNext", "--target", "ES2022", "--lib", "ES2023,DOM", // as tsconfig.json
        "--types", "node", "--skipLibCheck", "--esModuleInterop", "--strict",
        join(REPO, "src", "capabilities", "index.ts"),
        join(REPO, "src", "capabilities", "worker", "entry.ts"),
      ],
      { cwd: REPO },
    );
  }, 120_000);

  it("loads the wasm, starts workers and keeps stdout clean, with no node flags", async () => {
    await writeFile(join(OUT, "program.mjs"), PROGRAM);
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const { stdout } = await run(process.execPath, [join(OUT, "program.mjs")], { cwd: OUT, env, timeout: 60_000 });
    expect(stdout).toBe('RESULT [true,false,"NO_MATCHING_GRANT"]\n');
  }, 120_000);

  it("a package without the native build runs on wasm, and runtime native is refused at start-up", async () => {
    // Its own package root (package.json) with no native/ directory: what a checkout without cargo has.
    await cp(OUT, ALONE, { recursive: true });
    await writeFile(join(ALONE, "package.json"), JSON.stringify({ type: "module" }));
    await writeFile(join(ALONE, "runtimes.mjs"), RUNTIMES);
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const { stdout } = await run(process.execPath, [join(ALONE, "runtimes.mjs")], { cwd: ALONE, env, timeout: 60_000 });
    expect(stdout).toMatch(/^RESULT \["wasm","CONFIG_INVALID: capabilities.runtime is native but the native runtime is not built/);
  }, 60_000);
});
