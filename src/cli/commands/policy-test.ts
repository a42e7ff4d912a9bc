import { CapvaultError } from "../../errors/capvault-error.js";
import { runPolicyTests } from "../../capabilities/policy-tests.js";

/** Where the command writes. */
export interface CommandOutput {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

const USAGE = "usage: capvault policy test DIR [--json]\n";

/**
 * `capvault policy test DIR [--json]`: run DIR/tests.json against DIR/*.datalog. Returns the exit code: 0 when every
 * case passes, 1 on a mismatch, 2 on a usage or loading error (e.g. a policy file that is not valid).
 */
export async function policyTestCommand(argv: readonly string[], out: CommandOutput = process): Promise<number> {
  const json = argv.includes("--json");
  const positional = argv.filter((a) => !a.startsWith("--"));
  if (positional.length !== 1 || argv.some((a) => a.startsWith("--") && a !== "--json")) {
    out.stderr.write(USAGE);
    return 2;
  }
  const [dir] = positional;
  try {
    const report = await runPolicyTests(dir);
    if (json) {
      out.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      for (const r of report.results) {
        out.stdout.write(r.passed ? `PASS ${r.name}\n` : `FAIL ${r.name}: ${r.message}\n`);
      }
      out.stdout.write(`${report.passed} passed, ${report.failed} failed (${report.files.length} policy files)\n`);
    }
    return report.failed === 0 ? 0 : 1;
  } catch (err) {
    const e = CapvaultError.from(err);
    out.stderr.write(`policy test: ${e.reason}: ${e.message}\n`);
    return 2;
  }
}
