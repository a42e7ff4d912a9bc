import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import {
  AdminServiceClient,
  AuditEvent,
  type ListAuditEventsResponse,
  type TailAuditEventsResponse,
  type VerifyAuditResponse,
} from "../../gen/capvault/v1/admin.js";
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

/** Where `capvault audit` reads and writes (the process by default; tests may inject their own). */
export interface AuditIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: NodeJS.ProcessEnv;
  /** Aborted to stop `tail` (SIGINT/SIGTERM in the CLI). */
  signal?: AbortSignal;
}

const AUDIT_HELP = `Usage: capvault audit verify --tenant T [options]
       capvault audit tail   --tenant T [--after N] [--once] [options]

Reads a tenant's hash-chained audit trail over AdminService. The caller's operator capability for the tenant comes
from CAPVAULT_TOKEN or --token-file FILE.

  verify   Walk the whole chain (AdminService/VerifyAudit): every sequence number present, every event's hash
           matching its content, every event linking to its predecessor's hash. Exit 0 when it holds; exit 1 when it
           is broken, naming the first bad event's id, sequence and problem (an edited, deleted or reordered event).
  tail     Print the events after sequence N (default 0), oldest first, one JSON object per line on stdout, then keep
           following new events until interrupted (Ctrl-C, exit 0). --once prints what is there and exits.

  --tenant T             the tenant whose trail to read (required)
  --after N              tail: start after this sequence number (default 0: from the first event)
  --once                 tail: do not follow; exit after the events that exist now
${BROKER_OPTIONS_HELP}

Exit codes: 0 ok, 1 broken chain or broker error (printed with its reason), 2 usage error.
`;

const OPTIONS = { ...BROKER_OPTIONS, "--tenant": "value", "--after": "value", "--once": "switch" } as const;

/** Run `capvault audit <verify|tail> ...`. */
export async function runAuditCommand(argv: string[], io: AuditIo): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(AUDIT_HELP);
    return name ? EXIT.ok : EXIT.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(AUDIT_HELP);
    return EXIT.ok;
  }
  try {
    if (name !== "verify" && name !== "tail") throw new CliUsageError(`unknown command ${JSON.stringify(name)}: use verify or tail`);
    const options = parseOptions(rest, OPTIONS);
    if (options.positionals.length) throw new CliUsageError(`unexpected argument ${JSON.stringify(options.positionals[0])}`);
    const tenant = options.values["--tenant"];
    if (!tenant) throw new CliUsageError("--tenant is required");
    if (name === "verify" && (options.values["--after"] !== undefined || options.switches.has("--once"))) {
      throw new CliUsageError("--after and --once are options of tail");
    }
    const client = new AdminServiceClient(brokerAddress(options, io.env), credentials.createInsecure());
    try {
      const token = await callerToken(options, { env: io.env });
      return name === "verify" ? await verify(client, tenant, token, options, io) : await tail(client, tenant, token, options, io);
    } finally {
      client.close();
    }
  } catch (err) {
    if (err instanceof CliUsageError) {
      io.stderr.write(`capvault audit${name === "verify" || name === "tail" ? ` ${name}` : ""}: ${err.message} (see 'capvault audit --help')\n`);
      return EXIT.usage;
    }
    io.stderr.write(`capvault audit ${name}: ${describeBrokerError(err)}\n`);
    return EXIT.failure;
  }
}

async function verify(client: AdminServiceClient, tenant: string, token: string | undefined, options: ParsedOptions, io: AuditIo): Promise<number> {
  const res = await unaryCall<VerifyAuditResponse>(timeoutMs(options), (opts, cb) => client.verifyAudit({ tenant }, bearerMetadata(token), opts, cb));
  if (res.ok) {
    io.stdout.write(`audit trail of tenant ${tenant}: ${res.eventsChecked} event(s) verified, the hash chain is intact\n`);
    return EXIT.ok;
  }
  io.stdout.write(
    `audit trail of tenant ${tenant} is BROKEN at event ${res.brokenEventId} (sequence ${res.brokenSequence}): ${res.problem}\n` +
      `${res.eventsChecked} event(s) before it verified\n`,
  );
  return EXIT.failure;
}

async function tail(client: AdminServiceClient, tenant: string, token: string | undefined, options: ParsedOptions, io: AuditIo): Promise<number> {
  const raw = options.values["--after"] ?? "0";
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new CliUsageError("--after: must be a sequence number (0 or more)");
  const after = Number(raw);
  const print = (event: AuditEvent) => io.stdout.write(`${JSON.stringify(AuditEvent.toJSON(event))}\n`);

  if (options.switches.has("--once")) {
    let pageToken = "";
    for (;;) {
      const page = await unaryCall<ListAuditEventsResponse>(timeoutMs(options), (opts, cb) =>
        client.listAuditEvents({ tenant, afterSequence: after, limit: 1000, writer: "", pageToken }, bearerMetadata(token), opts, cb),
      );
      for (const event of page.events) if (event.sequence > after) print(event);
      if (page.events.length < 1000) return EXIT.ok;
      pageToken = page.nextPageToken;
    }
  }

  // Follow: no deadline; stopped by the signal (Ctrl-C), which counts as a normal end.
  const call = client.tailAuditEvents({ tenant, afterSequence: after, writer: "", fromNow: false }, bearerMetadata(token));
  let stopped = false;
  const stop = () => {
    stopped = true;
    call.cancel();
  };
  if (io.signal?.aborted) stop();
  io.signal?.addEventListener("abort", stop, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      call.on("data", (m: TailAuditEventsResponse) => m.event && print(m.event));
      call.on("end", () => resolve());
      call.on("error", (err: ServiceError) => (stopped && err.code === status.CANCELLED ? resolve() : reject(err)));
    });
    return EXIT.ok;
  } finally {
    io.signal?.removeEventListener("abort", stop);
  }
}

export const auditCommand: CliCommand = {
  name: "audit",
  summary: "Verify a tenant's hash-chained audit trail, or follow it as JSON lines",
  help: AUDIT_HELP,
  async run(argv) {
    const controller = new AbortController();
    const onSignal = () => controller.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      const code = await runAuditCommand(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: controller.signal });
      await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
      return code;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};
