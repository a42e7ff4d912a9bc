import { credentials } from "@grpc/grpc-js";
import {
  ApprovalServiceClient,
  type Approval,
  type DecideResponse,
  type GetApprovalResponse,
  type ListApprovalsResponse,
} from "../../gen/capvault/v1/approval.js";
import {
  BROKER_OPTIONS,
  BROKER_OPTIONS_HELP,
  CliUsageError,
  bearerMetadata,
  brokerAddress,
  callerToken,
  describeBrokerError,
  parseOptions,
  timeoutMs,
  unaryCall,
  type ParsedOptions,
} from "../broker-client.js";
import { EXIT, type CliCommand } from "../cli-command.js";

const HELP = `Usage: capvault approvals <list|show|approve|deny> [options]

Calls held for a person's approval (step-up approval: docs/approvals.md), over ApprovalService, with an operator
capability (CAPVAULT_TOKEN or --token-file): reading needs the "approvals-read" operation, deciding "approve".

  list [--state S]    the tenant's approvals, newest first (S: pending, approved, denied, used, expired)
  show ID             one approval: the held request, who asked, why, its state
  approve ID          let the held call through, once (the agent repeats it with capvault-approval-id: ID)
  deny ID             refuse it (the agent's repeat fails with APPROVAL_DENIED)

  --note TEXT         with approve/deny: a short note kept in the audit trail
  --tenant T          the tenant (default CAPVAULT_TENANT, else dev)
  --json              JSON output
${BROKER_OPTIONS_HELP}
`;

const OPTIONS = { ...BROKER_OPTIONS, "--tenant": "value", "--state": "value", "--note": "value", "--json": "switch" } as const;

export interface ApprovalsIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: NodeJS.ProcessEnv;
}

export const approvalsCommand: CliCommand = {
  name: "approvals",
  summary: "List, show, approve or deny calls held for a person's approval (operators)",
  help: HELP,
  run(argv) {
    return runApprovalsCommand(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env });
  },
};

export async function runApprovalsCommand(argv: string[], io: ApprovalsIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h") {
    (sub ? io.stdout : io.stderr).write(HELP);
    return sub ? EXIT.ok : EXIT.usage;
  }
  let o: ParsedOptions;
  let token: string | undefined;
  try {
    if (!["list", "show", "approve", "deny"].includes(sub)) throw new CliUsageError(`unknown subcommand ${JSON.stringify(sub)}`);
    o = parseOptions(rest, OPTIONS);
    token = await callerToken(o, { env: io.env });
    if (!token) throw new CliUsageError("no operator capability: set CAPVAULT_TOKEN or use --token-file FILE");
    if (o.positionals.length !== (sub === "list" ? 0 : 1)) throw new CliUsageError(sub === "list" ? "list takes no argument" : "expected an approval ID");
  } catch (err) {
    if (!(err instanceof CliUsageError)) throw err;
    io.stderr.write(`capvault approvals: ${err.message} (see 'capvault approvals --help')\n`);
    return EXIT.usage;
  }
  const tenant = o.values["--tenant"] ?? (io.env.CAPVAULT_TENANT || "dev");
  const client = new ApprovalServiceClient(brokerAddress(o, io.env), credentials.createInsecure());
  const md = bearerMetadata(token);
  const deadline = timeoutMs(o);
  const json = o.switches.has("--json");
  const [id] = o.positionals;
  try {
    if (sub === "list") {
      const res = await unaryCall<ListApprovalsResponse>(deadline, (opts, cb) =>
        client.listApprovals({ tenant, state: o.values["--state"] ?? "", limit: 0 }, md, opts, cb),
      );
      if (json) for (const a of res.approvals) io.stdout.write(`${JSON.stringify(view(a))}\n`);
      else io.stdout.write(table(res.approvals));
      return EXIT.ok;
    }
    let approval: Approval | undefined;
    if (sub === "show") {
      approval = (await unaryCall<GetApprovalResponse>(deadline, (opts, cb) => client.getApproval({ tenant, id }, md, opts, cb))).approval;
    } else {
      const approve = sub === "approve";
      approval = (
        await unaryCall<DecideResponse>(deadline, (opts, cb) => client.decide({ tenant, id, approve, note: o.values["--note"] ?? "" }, md, opts, cb))
      ).approval;
      io.stderr.write(approve ? `approved ${id}: the agent may repeat its call once\n` : `denied ${id}\n`);
    }
    const v = view(approval!);
    io.stdout.write(json ? `${JSON.stringify(v)}\n` : Object.entries(v).map(([k, x]) => `${k.padEnd(10)} ${Array.isArray(x) ? x.join("; ") : x}\n`).join(""));
    return EXIT.ok;
  } catch (err) {
    io.stderr.write(`capvault approvals ${sub}: ${describeBrokerError(err)}\n`);
    return EXIT.failure;
  } finally {
    client.close();
  }
}

/** An approval as printed: the held request and its state (the RPC carries no secret). */
function view(a: Approval) {
  return {
    id: a.id,
    state: a.state,
    request: `${a.method} ${a.path}${a.query ? `?${a.query}` : ""}`,
    connection: a.connection,
    provider: a.provider,
    subject: a.subject,
    reasons: a.reasons,
    expiresAt: a.expiresAt?.toISOString() ?? "",
    decidedBy: a.decidedBy ? `${a.decidedBy} (${a.decidedVia})` : "",
    page: a.approvalUrl,
  };
}

function table(approvals: Approval[]): string {
  const rows = [["ID", "STATE", "REQUEST", "CONNECTION", "SUBJECT", "WHY"], ...approvals.map((a) => {
    const v = view(a);
    return [v.id, v.state, v.request, v.connection, v.subject || "-", v.reasons.join("; ")];
  })];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(widths[i]))).join("  ")}\n`).join("");
}
