import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const VENV = join(ROOT, ".cache", "python-clients");
const REQUIREMENTS = join(ROOT, "test", "clients", "python", "requirements.txt");

/**
 * A Python interpreter with grpcio installed (a venv under .cache/, created once from the pinned requirements),
 * so tests can call the broker with a gRPC implementation nobody on the team wrote.
 */
export async function pythonWithGrpc(): Promise<string> {
  const python = join(VENV, "bin", "python");
  if (!existsSync(join(VENV, ".installed"))) {
    await run("python3", ["-m", "venv", VENV]);
    await run(join(VENV, "bin", "pip"), ["install", "--quiet", "-r", REQUIREMENTS], { timeout: 10 * 60_000 });
    await run("touch", [join(VENV, ".installed")]);
  }
  return python;
}

/** Run one of the Python probe scripts under test/clients/python and parse its JSON output. */
export async function runPythonClient(script: string, args: string[]): Promise<any> {
  const python = await pythonWithGrpc();
  const { stdout } = await run(python, [join(ROOT, "test", "clients", "python", script), ...args], { timeout: 60_000 });
  return JSON.parse(stdout);
}
