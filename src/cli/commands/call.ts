import { readFile } from "node:fs/promises";
import { credentials, type ServiceError } from "@grpc/grpc-js";
import { toHttpRequest } from "../../client/capvault-client.js";
import { readErrorDetails } from "../../errors/grpc-status.js";
import type { AuthorizeResponse, Denial } from "../../gen/capvault/v1/capability.js";
import type { HttpRequest } from "../../gen/capvault/v1/common.js";
import { ProxyServiceClient, type ProxyResponse } from "../../gen/capvault/v1/proxy.js";
import {
  BROKER_OPTIONS,
  BROKER_OPTIONS_HELP,
  CliUsageError,
  bearerMetadata,
  brokerAddress,
  brokerErrorReason,
  callerToken,
  capabilityClient,
  describeBrokerError,
  parseOptions,
  timeoutMs,
  unaryCall,
} from "../broker-client.js";
import { EXIT, type CliCommand } from "../cli-command.js";

/** Where `capvault call` reads and writes (the process by default; tests may inject their own). */
export interface CallIo {
  stdout: { write(s: string | Uint8Array, cb?: () => void): unknown };
  stderr: { write(s: string): unknown };
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

const CALL_HELP = `Usage: capvault call CONNECTION METHOD PATH [--query NAME=VALUE]... [--header NAME:VALUE]... [--data @FILE|-|TEXT] [options]

Calls a connection's provider API through the broker's Proxy RPC, as an agent: the broker checks the capability,
adds the user's credential, calls upstream and returns the answer. The agent's capability comes from CAPVAULT_TOKEN
or --token-file FILE; the agent never sees the OAuth token.

Prints the status line and the (allowlisted) response headers on stderr and the response body, unchanged, on stdout.

  CONNECTION             connection id, e.g. conn_P9aPYmD1a2mDQUi6DzS04A
  METHOD                 HTTP method, e.g. GET
  PATH                   path under the provider's API, e.g. /repos/acme/widgets/issues (never a URL)
  --query NAME=VALUE     a query parameter, sent encoded (repeatable, kept in order)
  --header NAME:VALUE    a request header (repeatable); Authorization, Cookie, Host and hop-by-hop headers are
                         dropped by the broker
  --data @FILE|-|TEXT    the request body: a file, stdin, or the text itself. Sent as application/json when it
                         parses as JSON and no Content-Type header is given
  --approval-id ID       repeat a call that was held for approval (APPROVAL_REQUIRED) and approved: the
                         identical request, once (docs/approvals.md)
${BROKER_OPTIONS_HELP}

Exit codes: 0 for a 2xx answer; 1 for any other status or a refusal (printed with its reason and, for a capability
refusal, the failing check or policy); 2 for a usage error.

Example:
  CAPVAULT_TOKEN=$(cat agent.token) capvault call conn_123 GET /repos/acme/widgets/issues --query state=open
`;

const OPTIONS = { ...BROKER_OPTIONS, "--query": "list", "--header": "list", "--data": "value", "--approval-id": "value" } as const;

/** Capability refusals worth explaining with an Authorize dry run (which names every failing check or policy). */
const CAPABILITY_REFUSALS = new Set(["NO_MATCHING_GRANT", "CAPABILITY_CHECK_FAILED", "POLICY_DENIED", "CAPABILITY_EXPIRED", "CAPABILITY_TENANT_MISMATCH"]);

/** Run `capvault call ...`. */
export async function runCallCommand(argv: string[], io: CallIo): Promise<number> {
  if (argv.length === 0) {
    io.stderr.write(CALL_HELP);
    return EXIT.usage;
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    io.stdout.write(CALL_HELP);
    return EXIT.ok;
  }
  let request: HttpRequest;
  let address: string;
  let token: string | undefined;
  let deadlineMs: number;
  let approvalId: string | undefined;
  try {
    const options = parseOptions(argv, OPTIONS);
    if (options.positionals.length !== 3) {
      throw new CliUsageError(`expected CONNECTION METHOD PATH, got ${options.positionals.length} argument(s)`);
    }
    const [connection, method, path] = options.positionals;
    const query = (options.lists["--query"] ?? []).map((q): [string, string] => {
      const eq = q.indexOf("=");
      if (eq <= 0) throw new CliUsageError(`--query: expected NAME=VALUE, got ${JSON.stringify(q)}`);
      return [q.slice(0, eq), q.slice(eq + 1)];
    });
    const headers = (options.lists["--header"] ?? []).map((h) => {
      const colon = h.indexOf(":");
      if (colon <= 0) throw new CliUsageError(`--header: expected NAME:VALUE, got ${JSON.stringify(h)}`);
      return { name: h.slice(0, colon).trim(), value: h.slice(colon + 1).trim() };
    });
    const data = options.values["--data"];
    if (data === "-" && options.values["--token-file"] === "-") throw new CliUsageError("--data - and --token-file - cannot both read stdin");
    const body = data === undefined ? undefined : await readData(data, io);
    if (body && !headers.some((h) => h.name.toLowerCase() === "content-type") && looksLikeJson(body)) {
      headers.push({ name: "content-type", value: "application/json" });
    }
    approvalId = options.values["--approval-id"];
    address = brokerAddress(options, io.env);
    deadlineMs = timeoutMs(options);
    token = await callerToken(options, { env: io.env, stdin: io.stdin as never });
    request = { ...toHttpRequest(connection, { method, path, query }), headers, body: body ?? Buffer.alloc(0) };
  } catch (err) {
    if (!(err instanceof CliUsageError)) throw err;
    io.stderr.write(`capvault call: ${err.message} (see 'capvault call --help')\n`);
    return EXIT.usage;
  }

  const proxy = new ProxyServiceClient(address, credentials.createInsecure());
  try {
    const md = bearerMetadata(token);
    if (approvalId) md.set("capvault-approval-id", approvalId);
    const res = await unaryCall<ProxyResponse>(deadlineMs, (opts, cb) => proxy.proxy({ request }, md, opts, cb));
    io.stderr.write(`HTTP ${res.status}\n${res.headers.map((h) => `${h.name}: ${h.value}\n`).join("")}`);
    await new Promise<void>((resolve) => io.stdout.write(Buffer.from(res.body), () => resolve()));
    return res.status >= 200 && res.status < 300 ? EXIT.ok : EXIT.failure;
  } catch (err) {
    io.stderr.write(`capvault call: ${describeBrokerError(err)}\n`);
    const reason = brokerErrorReason(err);
    if (reason === "APPROVAL_REQUIRED") {
      const id = readErrorDetails(err as ServiceError).metadata.approval_id;
      if (id) io.stderr.write(`  held for a person's approval: once approved (capvault approvals approve ${id}), repeat with --approval-id ${id}\n`);
    }
    if (reason && CAPABILITY_REFUSALS.has(reason)) {
      for (const line of await explainRefusal(address, token, request, deadlineMs)) io.stderr.write(`  ${line}\n`);
    }
    return EXIT.failure;
  } finally {
    proxy.close();
  }
}

/** The failing checks and policies of a refused request, from an Authorize dry run (empty if that fails too). */
async function explainRefusal(address: string, token: string | undefined, request: HttpRequest, deadlineMs: number): Promise<string[]> {
  if (!token) return [];
  const caps = capabilityClient(address);
  try {
    const dry = await unaryCall<AuthorizeResponse>(deadlineMs, (opts, cb) => caps.authorize({ token, request }, bearerMetadata(token), opts, cb));
    return dry.denials.map(describeDenial);
  } catch {
    return [];
  } finally {
    caps.close();
  }
}

function describeDenial(d: Denial): string {
  if (d.policy) return `failing policy ${d.policy}: ${d.rule}`;
  if (d.blockIndex >= 0) return `failing check: block ${d.blockIndex}, check ${d.checkIndex}: ${d.rule}`;
  if (d.checkIndex >= 0) return `failing authorizer check ${d.checkIndex}: ${d.rule}`;
  return `${d.reason}: ${d.rule}`;
}

async function readData(data: string, io: CallIo): Promise<Buffer> {
  if (data === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks); // bytes as they are: a binary body must not go through a text decoder
  }
  if (data.startsWith("@")) {
    try {
      return await readFile(data.slice(1));
    } catch (err) {
      throw new CliUsageError(`--data: cannot read ${data.slice(1)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return Buffer.from(data, "utf8");
}

function looksLikeJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString("utf8"));
    return true;
  } catch {
    return false;
  }
}

export const callCommand: CliCommand = {
  name: "call",
  summary: "Call a connection's API through the broker as an agent (status and headers on stderr, body on stdout)",
  help: CALL_HELP,
  run(argv) {
    return runCallCommand(argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  },
};
