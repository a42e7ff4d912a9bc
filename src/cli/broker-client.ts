import { readFile, stat } from "node:fs/promises";
import { credentials, Metadata, status, type CallOptions, type ServiceError } from "@grpc/grpc-js";
import { readErrorDetails } from "../errors/grpc-status.js";
import { CapabilityServiceClient } from "../gen/capvault/v1/capability.js";

/**
 * What CLI commands that call a running broker share: where the broker is, which capability to send, the generated
 * clients with `authorization: Bearer` metadata, and errors printed with their stable reason.
 *
 * Secrets never go on the command line (where `ps` and shell history would see them): a capability comes from
 * CAPVAULT_TOKEN, from a file (`--token-file FILE`), or from stdin.
 */

/** The default broker address (as `capvault serve` listens by default). */
export const DEFAULT_GRPC_ADDR = "127.0.0.1:50051";

/** A mistake in how the command was invoked: printed with a pointer to --help, exit code 2. */
export class CliUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliUsageError";
  }
}

/** How one option is parsed: with a value (`--name V` or `--name=V`), repeatable, or a boolean switch. */
export type OptionKind = "value" | "list" | "switch";

/** Options parsed from argv. Values of "list" options keep their order. */
export interface ParsedOptions {
  values: Record<string, string>;
  lists: Record<string, string[]>;
  switches: Set<string>;
  positionals: string[];
}

/** Flags whose value would be a secret: refused everywhere, with the reason. */
const SECRET_FLAGS = new Set(["--token", "--operator-token", "--kek"]);

/**
 * Parse argv against a spec. Unknown options, missing values and secret-bearing flags are usage errors. `--` ends
 * options (so a positional may start with `-`).
 */
export function parseOptions(argv: readonly string[], spec: Record<string, OptionKind>): ParsedOptions {
  const out: ParsedOptions = { values: {}, lists: {}, switches: new Set(), positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (SECRET_FLAGS.has(name)) {
      throw new CliUsageError(`${name}: secrets are never taken on the command line; set CAPVAULT_TOKEN or use --token-file FILE`);
    }
    const kind = spec[name];
    if (!kind) throw new CliUsageError(`unknown option ${name}`);
    if (kind === "switch") {
      if (eq !== -1) throw new CliUsageError(`${name} takes no value`);
      out.switches.add(name);
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new CliUsageError(`${name} needs a value`);
    if (kind === "value") {
      if (name in out.values) throw new CliUsageError(`${name} given twice`);
      out.values[name] = value;
    } else (out.lists[name] ??= []).push(value);
  }
  return out;
}

/** The options every broker-calling command accepts. */
export const BROKER_OPTIONS: Record<string, OptionKind> = {
  "--grpc-addr": "value",
  "--token-file": "value",
  "--timeout-ms": "value",
};

/** Help text lines for BROKER_OPTIONS. */
export const BROKER_OPTIONS_HELP = `  --grpc-addr HOST:PORT  broker address (default CAPVAULT_GRPC_ADDR, else ${DEFAULT_GRPC_ADDR})
  --token-file FILE      read the capability from FILE ('-' for stdin) instead of CAPVAULT_TOKEN
  --timeout-ms N         deadline for the call (default 10000)`;

/** The broker address: --grpc-addr, else CAPVAULT_GRPC_ADDR, else 127.0.0.1:50051. */
export function brokerAddress(options: ParsedOptions, env: NodeJS.ProcessEnv = process.env): string {
  const addr = options.values["--grpc-addr"] ?? (env.CAPVAULT_GRPC_ADDR || DEFAULT_GRPC_ADDR);
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(addr)) throw new CliUsageError(`--grpc-addr: must be host:port, got ${JSON.stringify(addr)}`);
  return addr;
}

/** The call deadline from --timeout-ms (default 10 s). */
export function timeoutMs(options: ParsedOptions): number {
  const raw = options.values["--timeout-ms"];
  if (raw === undefined) return 10_000;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) throw new CliUsageError("--timeout-ms: must be a positive whole number");
  return n;
}

/** Where a command reads stdin from (injectable for tests). */
export interface TokenSources {
  env?: NodeJS.ProcessEnv;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Warnings (e.g. a token file others can read). */
  warn?: (line: string) => void;
}

/** One token from text: surrounding whitespace trimmed; anything else that is not a single word is refused. */
function oneToken(text: string, where: string): string {
  const token = text.trim();
  if (!token) throw new CliUsageError(`${where} is empty`);
  if (/\s/.test(token)) throw new CliUsageError(`${where} must hold exactly one token`);
  return token;
}

/** Read all of stdin. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/** Read a token file ('-' is stdin). Warns when the file is readable by group or others. */
export async function readTokenFile(path: string, sources: TokenSources = {}): Promise<string> {
  if (path === "-") return oneToken(await readAll(sources.stdin ?? process.stdin), "stdin");
  let text: string;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0 && process.platform !== "win32") {
      (sources.warn ?? ((l) => process.stderr.write(`${l}\n`)))(`warning: ${path} is readable by other users (chmod 600 it)`);
    }
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new CliUsageError(`--token-file: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return oneToken(text, `--token-file ${path}`);
}

/**
 * The caller's own capability (sent as `authorization: Bearer`): --token-file, else CAPVAULT_TOKEN. Undefined when
 * neither is set (the broker then answers CAPABILITY_MISSING, which is the honest error).
 */
export async function callerToken(options: ParsedOptions, sources: TokenSources = {}): Promise<string | undefined> {
  const file = options.values["--token-file"];
  if (file !== undefined) return readTokenFile(file, sources);
  const env = (sources.env ?? process.env).CAPVAULT_TOKEN;
  return env ? oneToken(env, "CAPVAULT_TOKEN") : undefined;
}

/**
 * The token a command works on (attenuate, inspect, authorize): --token-file FILE ('-' for stdin), else stdin when it
 * is not a terminal and not empty (so `mint | attenuate | inspect` pipes), else CAPVAULT_TOKEN.
 */
export async function subjectToken(options: ParsedOptions, sources: TokenSources = {}): Promise<string> {
  const file = options.values["--token-file"];
  if (file !== undefined) return readTokenFile(file, sources);
  const stdin = sources.stdin ?? process.stdin;
  if (!stdin.isTTY) {
    const piped = (await readAll(stdin)).trim();
    if (piped) return oneToken(piped, "stdin");
  }
  const env = (sources.env ?? process.env).CAPVAULT_TOKEN;
  if (env) return oneToken(env, "CAPVAULT_TOKEN");
  throw new CliUsageError("no token: pipe it on stdin, use --token-file FILE, or set CAPVAULT_TOKEN");
}

/** `authorization: Bearer <token>` metadata (empty metadata without a token). */
export function bearerMetadata(token: string | undefined): Metadata {
  const m = new Metadata();
  if (token) m.set("authorization", `Bearer ${token}`);
  return m;
}

/** A CapabilityService client for a broker address (plaintext: brokers listen on loopback or behind a TLS proxy). */
export function capabilityClient(addr: string): CapabilityServiceClient {
  return new CapabilityServiceClient(addr, credentials.createInsecure());
}

/** Call a generated unary method as a promise, with a deadline. */
export function unaryCall<Res>(
  deadlineMs: number,
  fn: (options: Partial<CallOptions>, callback: (err: ServiceError | null, res: Res) => void) => unknown,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    fn({ deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** A broker error as one line: gRPC code name, the stable reason, the public message and the ErrorInfo metadata. */
export function describeBrokerError(err: unknown): string {
  const e = err as Partial<ServiceError>;
  if (typeof e?.code !== "number") return err instanceof Error ? err.message : String(err);
  const d = readErrorDetails(e);
  const codeName = (Object.entries(status).find(([, v]) => v === d.code)?.[0] ?? String(d.code)) as string;
  const meta = Object.entries(d.metadata).map(([k, v]) => `${k}=${v}`);
  if (!d.reason && d.code === status.UNAVAILABLE) {
    return `UNAVAILABLE: cannot reach the broker (${d.message.replace(/\s*Resolution note:\s*$/, "")})`;
  }
  return `${codeName} ${d.reason ?? "(no reason)"}: ${d.message}${meta.length ? ` (${meta.join(", ")})` : ""}`;
}

/** The stable reason of a broker error, if it carried one. */
export function brokerErrorReason(err: unknown): string | undefined {
  const e = err as Partial<ServiceError>;
  return typeof e?.code === "number" ? readErrorDetails(e).reason : undefined;
}

/**
 * A duration: `90` (seconds), `30s`, `5m`, `1h`, `7d`, or combinations such as `1h30m`. Returns whole seconds.
 */
export function parseDuration(text: string, name: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return positive(Number(t), name, text);
  const re = /(\d+)\s*([smhd])/gy;
  const unit = { s: 1, m: 60, h: 3600, d: 86400 } as const;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * unit[m[2] as keyof typeof unit];
    consumed = re.lastIndex;
  }
  if (!t || consumed !== t.length) throw new CliUsageError(`${name}: not a duration (use e.g. 90, 30s, 5m, 1h, 7d): ${JSON.stringify(text)}`);
  return positive(total, name, text);
}

function positive(n: number, name: string, text: string): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new CliUsageError(`${name}: must be positive: ${JSON.stringify(text)}`);
  return n;
}
