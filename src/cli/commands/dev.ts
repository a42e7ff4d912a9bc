import { resolve } from "node:path";
import type { Broker } from "../../broker/broker.js";
import type { Config } from "../../config/schema.js";
import { describeReadiness } from "../../oauth/provider-readiness.js";
import { CapvaultError } from "../../errors/capvault-error.js";
import { connectSandbox, prepareSandbox, type PreparedSandbox, type ReadySandbox } from "../../sandbox/dev-sandbox.js";
import { EXIT, wantsHelp, type CliCommand } from "../cli-command.js";
import { CONFIG_HELP } from "./config-help.js";
import { runBroker } from "./run-broker.js";

export const devCommand: CliCommand = {
  name: "dev",
  summary: "Run the broker on embedded dev defaults (in-memory store, generated key)",
  help: `Usage: capvault dev [flags]

Runs the broker with nothing to set up: an in-memory store (data is lost on exit), a freshly generated
key-encryption key, loopback addresses only. Give a MongoDB URI (CAPVAULT_MONGODB_URI) to keep data. In memory, the
audit trail keeps only the last audit.devMaxEvents events (CAPVAULT_AUDIT_DEV_MAX_EVENTS, default 2,000), so a dev
broker runs for days in bounded memory.

It also starts a sandbox on loopback: an OAuth provider and a GitHub-like HTTPS API, with a sample user (alice)
connected through the real authorization-code flow and an agent capability in a file, and prints \`capvault call\`
lines that work as printed (one allowed, one denied). --no-sandbox turns it off.

${CONFIG_HELP}`,
  async run(argv) {
    if (wantsHelp(argv)) {
      process.stdout.write(this.help);
      return EXIT.ok;
    }
    const withSandbox = !argv.includes("--no-sandbox");
    let sandbox: PreparedSandbox | undefined;
    let ready: ReadySandbox | undefined;
    return runBroker(
      argv.filter((a) => a !== "--no-sandbox"),
      "dev",
      {
        async configure(config) {
          assertLoopbackOnly(config);
          if (!withSandbox) return config;
          sandbox = await prepareSandbox(resolve(config.providersDir));
          // The sandbox provider's endpoints are http:// on loopback.
          return { ...config, providersDir: sandbox.providersDir, oauth: { ...config.oauth, allowInsecureLoopback: true } };
        },
        async onStarted(broker, config) {
          if (sandbox) ready = await connectSandbox(sandbox, { ...broker, devOperatorToken: broker.devOperatorToken ?? "" }, config.devTenant);
          process.stdout.write(banner(broker, config, sandbox, ready));
        },
        async onStopped() {
          await sandbox?.close();
        },
      },
    );
  },
};

/**
 * Dev mode prints an operator capability and keeps keys in memory: it listens on loopback only, whatever is asked.
 * (`capvault serve` is for anything else.)
 */
function assertLoopbackOnly(config: Config): void {
  for (const [name, addr] of [["grpc.addr (--grpc-addr)", config.grpc.addr], ["http.addr (--http-addr)", config.http.addr]] as const) {
    const host = addr.slice(0, addr.lastIndexOf(":")).replace(/^\[|\]$/g, "");
    if (!(host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host))) {
      throw new CapvaultError("CONFIG_INVALID", `${name}: capvault dev listens on loopback only (127.0.0.1, ::1 or localhost), not ${addr}; use capvault serve`);
    }
  }
}

function banner(broker: Broker, config: Config, sandbox: PreparedSandbox | undefined, ready: ReadySandbox | undefined): string {
  const address = broker.grpcAddress;
  const call = (path: string) =>
    `npx capvault call ${ready!.connection} GET ${path} --grpc-addr ${address} --token-file ${ready!.tokenFile}`;
  return [
    "",
    `capvault dev broker is running on ${address} (gRPC, plaintext, loopback only).`,
    `OAuth callbacks are served at ${broker.httpUrl}/oauth/callback.`,
    ...(broker.metricsUrl ? [`Prometheus metrics are served at ${broker.metricsUrl} (metrics.addr, CAPVAULT_METRICS_ADDR).`] : []),
    ...(broker.store.kind === "memory"
      ? [
          "Storage is in memory and the key-encryption key was generated for this run: nothing survives a restart.",
          `The audit trail keeps the last ${config.audit.devMaxEvents.toLocaleString("en-US")} events (audit.devMaxEvents, CAPVAULT_AUDIT_DEV_MAX_EVENTS);`,
          "older ones are dropped, and `capvault audit verify` checks each chain from its oldest kept event.",
        ]
      : ["Storage is MongoDB (mongodb.uri): the audit trail is kept in full."]),
    "",
    `Providers (${broker.providers.length} in the catalog): ${describeReadiness(broker.providers)}.`,
    "",
    `A dev operator capability (tenant "${config.devTenant}", 24 h) — treat it like a password:`,
    `  export CAPVAULT_TOKEN=${broker.devOperatorToken}`,
    "",
    ...(sandbox && ready
      ? [
          "Sandbox (loopback only; --no-sandbox turns it off):",
          `  a sandbox OAuth provider at ${sandbox.provider.issuer} and a GitHub-like API at ${sandbox.api.baseUrl}`,
          `  ${ready.user}'s account is connected through the OAuth flow: connection ${ready.connection} (provider sandbox)`,
          `  an agent capability (GET under ${ready.agentPrefix}, 8 h) is in ${ready.tokenFile}`,
          "",
          "Try it (as the agent; the agent never sees the OAuth token):",
          `  allowed: ${call(ready.allowedPath)}`,
          `  denied:  ${call(ready.deniedPath)}`,
          "",
        ]
      : []),
    "Next:",
    `  check it:        npx capvault health --grpc-addr ${address}`,
    `  mint an agent:   npx capvault token mint --tenant ${config.devTenant} --subject agent-1 --grant ${ready ? ready.connection : "CONNECTION"}:GET:/ --ttl 1h`,
    `  list services:   grpcurl -plaintext ${address} list`,
    "  see it work:     npm run demo",
    "  stop it:         Ctrl-C",
    "",
  ].join("\n");
}
