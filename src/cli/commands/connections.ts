import { credentials } from "@grpc/grpc-js";
import {
  ConnectionServiceClient,
  connectionStatusToJSON,
  ConnectionStatus,
  type BeginConnectResponse,
  type Connection,
  type DisconnectResponse,
  type GetConnectionResponse,
  type ListConnectionsResponse,
} from "../../gen/capvault/v1/connection.js";
import {
  BROKER_OPTIONS,
  BROKER_OPTIONS_HELP,
  CliUsageError,
  bearerMetadata,
  brokerAddress,
  callerToken,
  describeBrokerError,
  parseDuration,
  parseOptions,
  timeoutMs,
  unaryCall,
  type ParsedOptions,
} from "../broker-client.js";
import { EXIT, type CliCommand } from "../cli-command.js";
import { importConnectionsFromLines } from "./connections-import.js";

const HELP = `Usage: capvault connections <connect|list|show|disconnect> [options]

Users' connected accounts, over ConnectionService, with an operator capability (CAPVAULT_TOKEN or --token-file).

  connect PROVIDER --user U [--scope S]... [--wait D]
                      start the OAuth authorization-code flow: prints the URL to open in the user's browser, then
                      waits (default 10m) until the connection is ACTIVE (exit 0) or the flow failed or expired (exit 1)
  list [--user U]     the tenant's connections (a table; --json for JSON lines)
  show ID             one connection (--json for JSON)
  disconnect ID       revoke at the provider where supported and delete; the next Proxy call on it is refused
  import FILE|-       move tokens you already hold into the vault: JSON lines of {provider, user, account,
                      access_token, refresh_token?, expires_at? (RFC 3339 or seconds), scopes? (list or "a b")}; each
                      is sealed and stored as an ACTIVE connection, idempotent per (tenant, provider, account). Prints
                      a summary and every refused line by number (never its content); exit 1 if any was refused

  --tenant T          the tenant (default CAPVAULT_TENANT, else dev)
  --json              JSON output
${BROKER_OPTIONS_HELP}

No secret is ever printed: connections are metadata; tokens stay in the broker.
`;

const OPTIONS = { ...BROKER_OPTIONS, "--tenant": "value", "--user": "value", "--scope": "list", "--wait": "value", "--json": "switch" } as const;

/** Where the command writes (the process by default; tests inject their own). */
export interface ConnectionsIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: NodeJS.ProcessEnv;
}

export const connectionsCommand: CliCommand = {
  name: "connections",
  summary: "Connect users' accounts (OAuth), list, show, disconnect, import existing tokens (operators)",
  help: HELP,
  run(argv) {
    return runConnectionsCommand(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env });
  },
};

export async function runConnectionsCommand(argv: string[], io: ConnectionsIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h") {
    (sub ? io.stdout : io.stderr).write(HELP);
    return sub ? EXIT.ok : EXIT.usage;
  }
  let o: ParsedOptions;
  let token: string | undefined;
  try {
    if (!["connect", "list", "show", "disconnect", "import"].includes(sub)) throw new CliUsageError(`unknown subcommand ${JSON.stringify(sub)}`);
    o = parseOptions(rest, OPTIONS);
    token = await callerToken(o, { env: io.env });
    if (!token) throw new CliUsageError("no operator capability: set CAPVAULT_TOKEN or use --token-file FILE");
  } catch (err) {
    if (!(err instanceof CliUsageError)) throw err;
    io.stderr.write(`capvault connections: ${err.message} (see 'capvault connections --help')\n`);
    return EXIT.usage;
  }
  const tenant = o.values["--tenant"] ?? (io.env.CAPVAULT_TENANT || "dev");
  const client = new ConnectionServiceClient(brokerAddress(o, io.env), credentials.createInsecure());
  const md = () => bearerMetadata(token);
  const deadline = timeoutMs(o);
  const json = o.switches.has("--json");
  try {
    switch (sub) {
      case "connect": {
        const [provider] = positionals(o, 1, "PROVIDER");
        const user = o.values["--user"];
        if (!user) throw new CliUsageError("--user is required");
        const waitMs = parseDuration(o.values["--wait"] ?? "10m", "--wait") * 1000;
        const begun = await unaryCall<BeginConnectResponse>(deadline, (opts, cb) =>
          client.beginConnect({ tenant, user, provider, scopes: o.lists["--scope"] ?? [] }, md(), opts, cb),
        );
        io.stderr.write(`Open this URL in ${user}'s browser (it works once, until ${begun.expiresAt?.toISOString() ?? "it expires"}):\n`);
        io.stdout.write(`${begun.authorizationUrl}\n`);
        io.stderr.write(`waiting for connection ${begun.connectionId} to become ACTIVE...\n`);
        const until = Date.now() + waitMs;
        for (;;) {
          const got = await unaryCall<GetConnectionResponse>(deadline, (opts, cb) =>
            client.getConnection({ tenant, connectionId: begun.connectionId }, md(), opts, cb),
          ).catch((err) => {
            // A failed or expired flow removes the pending connection: the provider's error is in the audit trail.
            throw new FlowEnded(describeBrokerError(err));
          });
          const c = got.connection;
          if (c && c.status === ConnectionStatus.CONNECTION_STATUS_ACTIVE) {
            io.stderr.write(`connected: ${c.id} is ACTIVE (${c.provider}, account ${c.account || "unknown"})\n`);
            if (json) io.stdout.write(`${JSON.stringify(view(c))}\n`);
            return EXIT.ok;
          }
          if (Date.now() > until) throw new FlowEnded(`still ${statusName(c?.status)} after ${o.values["--wait"] ?? "10m"}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      case "list": {
        positionals(o, 0, "");
        const res = await unaryCall<ListConnectionsResponse>(deadline, (opts, cb) =>
          client.listConnections({ tenant, user: o.values["--user"] ?? "" }, md(), opts, cb),
        );
        if (json) for (const c of res.connections) io.stdout.write(`${JSON.stringify(view(c))}\n`);
        else io.stdout.write(table(res.connections));
        return EXIT.ok;
      }
      case "show": {
        const [connectionId] = positionals(o, 1, "ID");
        const res = await unaryCall<GetConnectionResponse>(deadline, (opts, cb) => client.getConnection({ tenant, connectionId }, md(), opts, cb));
        const v = view(res.connection!);
        io.stdout.write(json ? `${JSON.stringify(v)}\n` : Object.entries(v).map(([k, x]) => `${k.padEnd(10)} ${Array.isArray(x) ? x.join(" ") : x}\n`).join(""));
        return EXIT.ok;
      }
      case "import": {
        const [source] = positionals(o, 1, "FILE (or - for stdin)");
        const report = await importConnectionsFromLines(client, md(), o.values["--timeout-ms"] ? deadline : 3_600_000, tenant, source, {
          stdin: process.stdin,
          stdout: io.stdout,
          stderr: io.stderr,
        });
        const summary = { lines: report.lines, imported: report.imported, updated: report.updated, unchanged: report.unchanged, refused: report.refused.length };
        if (json) io.stdout.write(`${JSON.stringify({ ...summary, refusals: report.refused })}\n`);
        else {
          io.stdout.write(`imported ${summary.imported}, updated ${summary.updated}, unchanged ${summary.unchanged}, refused ${summary.refused} (${summary.lines} lines)\n`);
          for (const r of report.refused) io.stdout.write(`  line ${r.line}: ${r.reason}: ${r.message}\n`);
        }
        return report.refused.length ? EXIT.failure : EXIT.ok;
      }
      default: {
        const [connectionId] = positionals(o, 1, "ID");
        const res = await unaryCall<DisconnectResponse>(deadline, (opts, cb) => client.disconnect({ tenant, connectionId }, md(), opts, cb));
        io.stderr.write(`disconnected ${connectionId}${res.revokedAtProvider ? " (revoked at the provider)" : " (the provider did not confirm a revocation)"}\n`);
        if (json) io.stdout.write(`${JSON.stringify({ connectionId, revokedAtProvider: res.revokedAtProvider })}\n`);
        return EXIT.ok;
      }
    }
  } catch (err) {
    if (err instanceof CliUsageError) {
      io.stderr.write(`capvault connections ${sub}: ${err.message} (see 'capvault connections --help')\n`);
      return EXIT.usage;
    }
    io.stderr.write(`capvault connections ${sub}: ${err instanceof FlowEnded ? `the connection did not complete: ${err.message}` : describeBrokerError(err)}\n`);
    return EXIT.failure;
  } finally {
    client.close();
  }
}

class FlowEnded extends Error {}

function positionals(o: ParsedOptions, n: number, names: string): string[] {
  if (o.positionals.length !== n) throw new CliUsageError(n ? `expected ${names}` : `unexpected argument ${JSON.stringify(o.positionals[0])}`);
  return o.positionals;
}

const statusName = (s: ConnectionStatus | undefined) => (s === undefined ? "missing" : connectionStatusToJSON(s).replace("CONNECTION_STATUS_", ""));

/** A connection as printed: metadata only (the RPC carries no secret). */
function view(c: Connection) {
  return {
    id: c.id,
    user: c.user,
    provider: c.provider,
    account: c.account,
    status: statusName(c.status),
    scopes: c.scopes,
    expiresAt: c.expiresAt?.toISOString() ?? "",
    createdAt: c.createdAt?.toISOString() ?? "",
  };
}

function table(connections: Connection[]): string {
  const rows = [["ID", "USER", "PROVIDER", "ACCOUNT", "STATUS", "SCOPES"], ...connections.map((c) => {
    const v = view(c);
    return [v.id, v.user, v.provider, v.account || "-", v.status, v.scopes.join(" ") || "-"];
  })];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(widths[i]))).join("  ")}\n`).join("");
}
