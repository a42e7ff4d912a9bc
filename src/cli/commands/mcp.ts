import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { attenuateOffline } from "../../client/attenuate-offline.js";
import { connect } from "../../client/capvault-client.js";
import { CapvaultClientError } from "../../client/client-error.js";
import type { Restriction } from "../../capabilities/vocabulary.js";
import { capabilityMcpServer } from "../../mcp/capability-tools.js";
import { BROKER_OPTIONS, BROKER_OPTIONS_HELP, CliUsageError, brokerAddress, callerToken, parseDuration, parseOptions } from "../broker-client.js";
import { EXIT, wantsHelp, type CliCommand } from "../cli-command.js";

const MCP_HELP = `Usage: capvault mcp [--connection ID]... [--method M]... [--path-prefix P] [--ttl DURATION] [options]

Serves the Model Context Protocol on stdin/stdout for an agent framework, acting with one capability: a tool that
describes what the capability allows (describe_capability) and one that makes an HTTP request through the broker's
Proxy (http_request). The process holds only the capability, never an OAuth token: the broker makes every request
itself, with its checks, policies and audit. Logs go to stderr; stdout is the protocol.

The capability comes from CAPVAULT_TOKEN or --token-file FILE. The flags below narrow it before serving (an offline
attenuation: a block of checks appended locally, no broker call), so one orchestrator capability can become a tighter
tool set per agent:
  --connection ID        only this connection (repeatable)
  --method M             only this HTTP method (repeatable)
  --path-prefix P        only paths under P (segment-aligned)
  --ttl DURATION         expire this long from now (e.g. 15m, 1h)
${BROKER_OPTIONS_HELP}

Example (an MCP client configuration's command line):
  CAPVAULT_TOKEN=... capvault mcp --grpc-addr 127.0.0.1:50051 --method GET --path-prefix /repos/acme/
`;

const OPTIONS = { ...BROKER_OPTIONS, "--connection": "list", "--method": "list", "--path-prefix": "value", "--ttl": "value" } as const;

/** The package version, for the MCP server's implementation info. */
const VERSION = "0.1.0";

/** `capvault mcp`: an MCP server over stdio backed by a capability. */
export const mcpCommand: CliCommand = {
  name: "mcp",
  summary: "serve the Model Context Protocol (stdio) for an agent, acting with a capability",
  help: MCP_HELP,
  async run(argv) {
    if (wantsHelp(argv)) {
      process.stdout.write(MCP_HELP);
      return EXIT.ok;
    }
    let address: string;
    let token: string;
    let restriction: Restriction | undefined;
    try {
      const options = parseOptions(argv, OPTIONS);
      if (options.positionals.length) throw new CliUsageError(`unexpected argument ${JSON.stringify(options.positionals[0])}`);
      if (options.values["--token-file"] === "-") throw new CliUsageError("--token-file -: stdin is the MCP channel; give a file or CAPVAULT_TOKEN");
      address = brokerAddress(options);
      const given = await callerToken(options);
      if (!given) throw new CliUsageError("no capability: set CAPVAULT_TOKEN or use --token-file FILE");
      token = given;
      restriction = restrictionOf(options.lists, options.values);
    } catch (err) {
      if (!(err instanceof CliUsageError)) throw err;
      process.stderr.write(`capvault mcp: ${err.message} (see 'capvault mcp --help')\n`);
      return EXIT.usage;
    }

    let client = connect(address, token);
    if (restriction) {
      try {
        const narrowed = await attenuateOffline(token, restriction, { publicKeys: await client.publicKeys() });
        client = client.withToken(narrowed);
      } catch (err) {
        process.stderr.write(`capvault mcp: cannot narrow the capability: ${err instanceof CapvaultClientError ? `${err.reason}: ${err.message}` : String(err)}\n`);
        client.close();
        return EXIT.failure;
      }
    }
    // stdout carries only MCP messages: a stray console.log from any library would corrupt the stream.
    console.log = console.info = console.debug = console.error;
    const server = capabilityMcpServer(client, VERSION);
    const closed = new Promise<void>((resolve) => {
      server.server.onclose = () => resolve();
    });
    await server.connect(new StdioServerTransport());
    process.stderr.write(`capvault mcp: serving on stdio for the broker at ${address}${restriction ? " (capability narrowed)" : ""}\n`);
    // The client ends the session by closing our stdin.
    process.stdin.once("end", () => void server.close());
    await closed;
    client.close();
    return EXIT.ok;
  },
};

function restrictionOf(lists: Record<string, string[]>, values: Record<string, string>): Restriction | undefined {
  const restriction: Restriction = {};
  if (lists["--connection"]?.length) restriction.connections = lists["--connection"];
  if (lists["--method"]?.length) restriction.methods = lists["--method"];
  if (values["--path-prefix"] !== undefined) restriction.pathPrefix = values["--path-prefix"];
  if (values["--ttl"] !== undefined) restriction.ttlSeconds = parseDuration(values["--ttl"], "--ttl");
  return Object.keys(restriction).length ? restriction : undefined;
}
