import { EXIT, wantsHelp, type CliCommand } from "../cli-command.js";
import { runBroker } from "./run-broker.js";
import { CONFIG_HELP } from "./config-help.js";

export const serveCommand: CliCommand = {
  name: "serve",
  summary: "Run the broker against MongoDB with a key-encryption key",
  help: `Usage: capvault serve [--config FILE] [flags]

Runs the broker for real: MongoDB storage and a key-encryption key outside the database are required.
Stops gracefully on SIGTERM or SIGINT: new calls are refused, in-flight calls finish, then exit 0.

${CONFIG_HELP}`,
  async run(argv) {
    if (wantsHelp(argv)) {
      process.stdout.write(this.help);
      return EXIT.ok;
    }
    return runBroker(argv, "serve");
  },
};
