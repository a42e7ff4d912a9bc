import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { access, rename, rm } from "node:fs/promises";
import { createInterface } from "node:readline";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { verifyExport } from "../../audit/audit-export.js";
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
       capvault audit verify --file F [--tenant T]
       capvault audit export --tenant T [--since TIME] [--until TIME] [--writer W [--after N]] [--out FILE] [options]
       capvault audit tail   --tenant T [--after N] [--once] [options]

Reads a tenant's hash-chained audit trail over AdminService. The trail is one chain per writer (each broker process
that wrote events for the tenant); every event carries its writer, its sequence in that chain, its hash and its
predecessor's hash. The caller's operator capability for the tenant comes from CAPVAULT_TOKEN or --token-file FILE.

  verify   Walk every chain (AdminService/VerifyAudit): every sequence number present, every event's hash matching
           its content, every event linking to its predecessor's hash. Exit 0 when it holds; exit 1 when it is
           broken, naming the first bad event's id, sequence and problem (an edited, deleted or reordered event).
           With --file F: verify an export OFFLINE (no broker, no token): events grouped by writer, each chain
           contiguous from its first event in the file (a range export may start mid-chain), hashes and links
           checked; a broken file is named by line number, event id, writer, sequence and problem.
  export   Write the trail as JSON lines (one event per line, with its chain proof), chain by chain, each in
           sequence order, to stdout or --out FILE (written as FILE.partial, renamed when complete, mode 0600).
           --since/--until keep the events whose time is in [since, until) (the whole trail is read);
           --writer W exports one chain, --after N starts it after sequence N.
  tail     Print the events after sequence N (default 0), oldest first, one JSON object per line on stdout, then keep
           following new events until interrupted (Ctrl-C, exit 0). --once prints what is there and exits.

  --tenant T             the tenant whose trail to read (required, except for verify --file)
  --file F               verify: an exported file to verify offline
  --since TIME           export: events at or after TIME (ISO 8601, e.g. 2026-12-01T00:00:00Z)
  --until TIME           export: events before TIME
  --writer W             export: only writer W's chain
  --after N              export (with --writer) or tail: start after this sequence number (default 0)
  --out FILE             export: write to FILE instead of stdout
  --once                 tail: do not follow; exit after the events that exist now
${BROKER_OPTIONS_HELP}

Exit codes: 0 ok, 1 broken chain or broker error (printed with its reason), 2 usage error.
`;

const OPTIONS = {
  ...BROKER_OPTIONS,
  "--tenant": "value",
  "--after": "value",
  "--once": "switch",
  "--file": "value",
  "--since": "value",
  "--until": "value",
  "--writer": "value",
  "--out": "value",
} as const;

/** Options each subcommand takes besides --tenant and the broker options. */
const OWN_OPTIONS: Record<string, string[]> = {
  verify: ["--file"],
  export: ["--since", "--until", "--writer", "--after", "--out"],
  tail: ["--after", "--once"],
};
const SUBCOMMANDS = Object.keys(OWN_OPTIONS);

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
  const known = SUBCOMMANDS.includes(name);
  try {
    if (!known) throw new CliUsageError(`unknown command ${JSON.stringify(name)}: use ${SUBCOMMANDS.join(", ")}`);
    const options = parseOptions(rest, OPTIONS);
    if (options.positionals.length) throw new CliUsageError(`unexpected argument ${JSON.stringify(options.positionals[0])}`);
    const own = OWN_OPTIONS[name];
    const foreign = [...Object.keys(options.values), ...options.switches].find((o) => o in OPTIONS && !(o in BROKER_OPTIONS) && o !== "--tenant" && !own.includes(o));
    if (foreign) throw new CliUsageError(`${foreign} is not an option of ${name}`);
    const tenant = options.values["--tenant"];
    if (name === "verify" && options.values["--file"] !== undefined) return await verifyFile(options.values["--file"], tenant, io);
    if (!tenant) throw new CliUsageError("--tenant is required");
    const exportRange = name === "export" ? parseExportRange(options) : undefined;
    const client = new AdminServiceClient(brokerAddress(options, io.env), credentials.createInsecure());
    try {
      const token = await callerToken(options, { env: io.env });
      if (exportRange) return await exportTrail(client, tenant, token, exportRange, options, io);
      return name === "verify" ? await verify(client, tenant, token, options, io) : await tail(client, tenant, token, options, io);
    } finally {
      client.close();
    }
  } catch (err) {
    if (err instanceof CliUsageError) {
      io.stderr.write(`capvault audit${known ? ` ${name}` : ""}: ${err.message} (see 'capvault audit --help')\n`);
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

/** Offline: verify an exported file (no broker). */
async function verifyFile(file: string, tenant: string | undefined, io: AuditIo): Promise<number> {
  try {
    await access(file);
  } catch {
    throw new CliUsageError(`--file: cannot read ${JSON.stringify(file)}`);
  }
  const lines = () => createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  const result = await verifyExport(lines, { tenant });
  const chains = result.chains.map((c) => `  writer ${c.writer || '""'}: sequences ${c.first}-${c.last} (${c.events} event(s))`).join("\n");
  if (result.ok) {
    io.stdout.write(`${file}: ${result.eventsChecked} event(s) in ${result.chains.length} chain(s) verified, every chain intact\n${chains}${chains ? "\n" : ""}`);
    return EXIT.ok;
  }
  const b = result.broken!;
  io.stdout.write(
    `${file} is BROKEN at line ${b.line} (event ${b.id || "?"}, writer ${b.writer || '""'}, sequence ${b.sequence}): ${b.problem}\n` +
      `${result.eventsChecked} event(s) before it verified\n`,
  );
  return EXIT.failure;
}

interface ExportRange {
  since?: Date;
  until?: Date;
  writer: string;
  after: number;
}

function parseExportRange(options: ParsedOptions): ExportRange {
  const time = (flag: string) => {
    const raw = options.values[flag];
    if (raw === undefined) return undefined;
    const t = new Date(raw);
    if (!/^\d{4}-\d{2}-\d{2}/.test(raw) || Number.isNaN(t.getTime())) throw new CliUsageError(`${flag}: must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z`);
    return t;
  };
  const since = time("--since");
  const until = time("--until");
  if (since && until && since >= until) throw new CliUsageError("--since must be before --until");
  const writer = options.values["--writer"] ?? "";
  if (options.values["--writer"] !== undefined && writer === "") throw new CliUsageError("--writer: needs a writer id");
  const rawAfter = options.values["--after"];
  if (rawAfter !== undefined && !writer) throw new CliUsageError("--after needs --writer (a sequence number counts within one chain)");
  return { since, until, writer, after: parseSequence(rawAfter ?? "0") };
}

function parseSequence(raw: string): number {
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new CliUsageError("--after: must be a sequence number (0 or more)");
  return Number(raw);
}

const EXPORT_PAGE = 1000;

/** Page through ListAuditEvents with page tokens and write the events in range as JSON lines. */
async function exportTrail(
  client: AdminServiceClient,
  tenant: string,
  token: string | undefined,
  range: ExportRange,
  options: ParsedOptions,
  io: AuditIo,
): Promise<number> {
  const outFile = options.values["--out"];
  const partial = outFile ? `${outFile}.partial` : undefined;
  const file: WriteStream | undefined = partial ? createWriteStream(partial, { mode: 0o600 }) : undefined;
  const write = async (chunk: string) => {
    const sink = file ?? io.stdout;
    if (sink.write(chunk) === false && "once" in sink) await new Promise<void>((resolve) => (sink as WriteStream).once("drain", () => resolve()));
  };
  let exported = 0;
  const writers = new Set<string>();
  try {
    if (file) await new Promise<void>((resolve, reject) => file.once("open", () => resolve()).once("error", reject));
    let pageToken = "";
    for (;;) {
      const page = await unaryCall<ListAuditEventsResponse>(timeoutMs(options), (opts, cb) =>
        client.listAuditEvents({ tenant, afterSequence: range.after, limit: EXPORT_PAGE, writer: range.writer, pageToken }, bearerMetadata(token), opts, cb),
      );
      let chunk = "";
      for (const event of page.events) {
        const time = event.time?.getTime() ?? 0;
        if ((range.since && time < range.since.getTime()) || (range.until && time >= range.until.getTime())) continue;
        chunk += `${JSON.stringify(AuditEvent.toJSON(event))}\n`;
        writers.add(event.writer);
        exported++;
      }
      if (chunk) await write(chunk);
      if (page.events.length < EXPORT_PAGE || !page.nextPageToken) break;
      pageToken = page.nextPageToken;
    }
    if (file && partial && outFile) {
      await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
      await rename(partial, outFile);
    }
  } catch (err) {
    if (file && partial) {
      file.destroy();
      await rm(partial, { force: true });
    }
    throw err;
  }
  io.stderr.write(`exported ${exported} event(s) of tenant ${tenant} in ${writers.size} chain(s)${outFile ? ` to ${outFile}` : ""}\n`);
  return EXIT.ok;
}

async function tail(client: AdminServiceClient, tenant: string, token: string | undefined, options: ParsedOptions, io: AuditIo): Promise<number> {
  const after = parseSequence(options.values["--after"] ?? "0");
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
  summary: "Verify a tenant's hash-chained audit trail (or an export of it, offline), export it, or follow it",
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
