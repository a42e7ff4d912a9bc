import { policyTestCommand } from "./policy-test.js";
import { EXIT, type CliCommand } from "../cli-command.js";

const POLICY_HELP = `Usage: capvault policy test DIR [--json]

Organisation policies are a directory of *.datalog files (checks and deny policies) that every Proxy authorization
runs (CAPVAULT_POLICIES_DIR). 'policy test' loads DIR the way the broker does and runs DIR/tests.json: each case mints
a token in memory, authorizes a sample request and compares the decision (allow/deny, reason, policy file) with the
expectation. No broker or database is needed.

  --json   print the whole report as JSON

Exit codes: 0 every case passed; 1 a case did not match; 2 usage error, or the policies or tests could not be loaded.
See policies/example/.
`;

export const policyCommand: CliCommand = {
  name: "policy",
  summary: "Test organisation policies against sample requests (policy test DIR)",
  help: POLICY_HELP,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!sub || sub === "--help" || sub === "-h" || sub === "help" || rest.includes("--help") || rest.includes("-h")) {
      process.stdout.write(POLICY_HELP);
      return sub ? EXIT.ok : EXIT.usage;
    }
    if (sub !== "test") {
      process.stderr.write(`capvault policy: unknown command ${JSON.stringify(sub)}\n\n${POLICY_HELP}`);
      return EXIT.usage;
    }
    return policyTestCommand(rest);
  },
};
