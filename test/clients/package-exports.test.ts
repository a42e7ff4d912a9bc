import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/broker-process.js";

const run = promisify(execFile);
let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the package's exports", () => {
  it("`import { connect } from \"capvault/client\"` works, typed, from a project that depends on capvault by path", async () => {
    dir = await mkdtemp(join(tmpdir(), "capvault-consumer-"));
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module", dependencies: { capvault: `file:${REPO_ROOT}` } }));
    await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: dir, timeout: 120_000 });
    await writeFile(
      join(dir, "agent.ts"),
      [
        'import { connect, CapvaultClientError } from "capvault/client";',
        'const cv = connect("127.0.0.1:1", "token");',
        "const n: number = 1;",
        "console.log(JSON.stringify({ fetch: typeof cv.fetch, attenuate: typeof cv.attenuate, error: typeof CapvaultClientError, n }));",
        "cv.close();",
      ].join("\n"),
    );
    await writeFile(
      join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, skipLibCheck: true, types: [] } }),
    );
    // Types resolve through `exports` (tsc fails on an untyped import under strict).
    await run(process.execPath, [join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", dir], { cwd: dir, timeout: 120_000 });
    // And it runs: the compiled client, from the consumer's point of view.
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", 'import { connect, CapvaultClientError } from "capvault/client"; const cv = connect("127.0.0.1:1", "t"); console.log(JSON.stringify({ fetch: typeof cv.fetch, error: typeof CapvaultClientError })); cv.close();'], { cwd: dir, timeout: 30_000 });
    expect(JSON.parse(stdout.trim().split("\n").pop()!)).toEqual({ fetch: "function", error: "function" });
  });
});
