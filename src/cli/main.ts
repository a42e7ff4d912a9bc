#!/usr/bin/env node
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT, type CliCommand } from "./cli-command.js";
import { auditCommand } from "./commands/audit.js";
import { callCommand } from "./commands/call.js";
import { connectionsCommand } from "./commands/connections.js";
import { approvalsCommand } from "./commands/approvals.js";
import { devCommand } from "./commands/dev.js";
import { healthCommand } from "./commands/health.js";
import { keysCommand } from "./commands/keys.js";
import { mcpCommand } from "./commands/mcp.js";
import { policyCommand } from "./commands/policy.js";
import { serveCommand } from "./commands/serve.js";
import { tokenCommand } from "./commands/token.js";

const COMMANDS: CliCommand[] = [serveCommand, devCommand, healthCommand, keysCommand, tokenCommand, policyCommand, connectionsCommand, approvalsCommand, callCommand, auditCommand, mcpCommand];

function usage(): string {
  return `Usage: capvault <command> [options]

capvault keeps users' OAuth tokens and lets agents use them only through capability-checked gRPC calls.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(12)} ${c.summary}`).join("\n")}

Run 'capvault <command> --help' for a command's options; 'capvault --version' for the version.
`;
}

/** This package's version, from its package.json (found from src/ or dist/). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V") {
    process.stdout.write(`capvault ${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage());
    return name ? EXIT.ok : EXIT.usage;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`capvault: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return EXIT.usage;
  }
  return command.run(rest);
}

/** Exit once stdout has taken everything written to it (a pipe is written asynchronously: exiting at once truncates). */
function exitAfterOutput(code: number): void {
  process.stdout.write("", () => process.exit(code));
}

main(process.argv.slice(2)).then(
  (code) => exitAfterOutput(code),
  (err) => {
    process.stderr.write(`capvault: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.failure);
  },
);
