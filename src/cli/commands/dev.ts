import { EXIT, wantsHelp, type CliCommand } from "../cli-command.js";
import { CONFIG_HELP } from "./config-help.js";
import { runBroker } from "./run-broker.js";

export const devCommand: CliCommand = {
  name: "dev",
  summary: "Run the broker on embedded dev defaults (in-memory store, generated key)",
  help: `Usage: capvault dev [flags]

Runs the broker with nothing to set up: an in-memory store (data is lost on exit), a freshly generated
key-encryption key, loopback addresses only. Give a MongoDB URI (CAPVAULT_MONGODB_URI) to keep data.

${CONFIG_HELP}`,
  async run(argv) {
    if (wantsHelp(argv)) {
      process.stdout.write(this.help);
      return EXIT.ok;
    }
    return runBroker(argv, "dev", (broker) => {
      const address = broker.grpcAddress;
      process.stdout.write(
        [
          "",
          `capvault dev broker is running on ${address} (gRPC, plaintext, loopback only).`,
          `OAuth callbacks are served at ${broker.httpUrl}/oauth/callback.`,
          "Storage is in memory and the key-encryption key was generated for this run: nothing survives a restart.",
          "",
          "A dev operator capability (tenant \"dev\", 24 h) — treat it like a password:",
          `  export CAPVAULT_TOKEN=${broker.devOperatorToken}`,
          "",
          "Next:",
          `  check it:        npx capvault health --grpc-addr ${address}`,
          `  mint an agent:   npx capvault token mint --tenant dev --subject agent-1 --grant <connection>:GET:/ --ttl 1h`,
          `  list services:   grpcurl -plaintext ${address} list`,
          "  see it work:     npm run demo",
          "  stop it:         Ctrl-C",
          "",
        ].join("\n"),
      );
    });
  },
};
