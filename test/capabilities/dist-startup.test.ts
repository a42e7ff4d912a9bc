import { execFile } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

/**
 * Production shape: the capability module compiled to JS and run by plain `node`, without any flag: the loader compiles
 * the wasm itself, workers start from the compiled entry, and nothing reaches stdout but the program's own output.
 */
const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
// Inside the repository so that the compiled files resolve node_modules as in dist/.
const OUT = join(REPO, "node_modules", ".cache", `capvault-capabilities-dist-${process.pid}`);
afterAll(() => rm(OUT, { recursive: true, force: true }));

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

describe("compiled JS under plain node", () => {
  it("loads the wasm, starts workers and keeps stdout clean, with no node flags", async () => {
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
    await writeFile(join(OUT, "program.mjs"), PROGRAM);
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const { stdout } = await run(process.execPath, [join(OUT, "program.mjs")], { cwd: OUT, env, timeout: 60_000 });
    expect(stdout).toBe('RESULT [true,false,"NO_MATCHING_GRANT"]\n');
  }, 120_000);
});
