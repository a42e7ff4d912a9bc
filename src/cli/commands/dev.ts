import { EXIT, wantsHelp, type CliCommand } from "../cli-command.js";
import { CONFIG_HELP } from "./config-help.js";
import { runBroker } from "./run-broker.js";

export const devCommand: CliCommand = {
  name: "dev",
  summary: "Run the broker on embedded dev defaults (in-memory store, generated key)",
  help: `Usage: capvault dev [flags]

Runs the broker with nothing to set up: an in-memory store (data is lost on exit), a freshly generated
key-encryption key, loopback addresses only. Give a MongoDB URI (CAPVAULT_MONGODB_URI) to keep data. In memory, the
audit trail keeps only the last audit.devMaxEvents events (CAPVAULT_AUDIT_DEV_MAX_EVENTS, default 10,000), so a dev
broker runs for days in bounded memory.

${CONFIG_HELP}`,
  async run(argv) {
    if (wantsHelp(argv)) {
      process.stdout.write(this.help);
      return EXIT.ok;
    }
    return runBroker(argv, "dev", (broker, config) => {
      const address = broker.grpcAddress;
      process.stdout.write(
        [
          "",
          `capvault dev broker is running on ${address} (gRPC, plaintext, loopback only).`,
          `OAuth callbacks are served at ${broker.httpUrl}/oauth/callback.`,
          ...(broker.store.kind === "memory"
            ? [
                "Storage is in memory and the key-encryption key was generated for this run: nothing survives a restart.",
                `The audit trail keeps the last ${config.audit.devMaxEvents.toLocaleString("en-US")} events (audit.devMaxEvents, CAPVAULT_AUDIT_DEV_MAX_EVENTS);`,
                "older ones are dropped, and `capvault audit verify` checks each chain from its oldest kept event.",
              ]
            : ["Storage is MongoDB (mongodb.uri): the audit trail is kept in full."]),
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
