import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { ClientWritableStream, Metadata, ServiceError } from "@grpc/grpc-js";
import type {
  ConnectionServiceClient,
  ImportConnectionsRequest,
  ImportConnectionsResponse,
  ImportedConnection,
  ImportRefusal,
} from "../../gen/capvault/v1/connection.js";

/** Records per ImportConnections message. */
const BATCH = 500;

/** Where the import reads and reports (stdin/stdout/stderr by default). */
export interface ImportIo {
  stdin: NodeJS.ReadableStream;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** The whole import's outcome: the broker's, plus the lines refused before sending (not JSON, wrong shape). */
export interface ImportReport extends ImportConnectionsResponse {
  lines: number;
}

/**
 * `capvault connections import FILE|-`: JSON lines (provider, user, account, access_token, refresh_token, expires_at,
 * scopes) streamed to ConnectionService.ImportConnections in batches. A line that is not a JSON object of that shape is
 * refused here, by its number, and never sent; the content of a line is never printed (it holds tokens).
 */
export async function importConnectionsFromLines(
  client: ConnectionServiceClient,
  metadata: Metadata,
  deadlineMs: number,
  tenant: string,
  source: string,
  io: ImportIo,
): Promise<ImportReport> {
  const localRefusals: ImportRefusal[] = [];
  let lines = 0;
  let sent = 0;
  let call!: ClientWritableStream<ImportConnectionsRequest>;
  const answer = new Promise<ImportConnectionsResponse>((resolve, reject) => {
    call = client.importConnections(metadata, { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res) => (err ? reject(err) : resolve(res)));
  });
  answer.catch(() => undefined); // read below; a failure also ends the writes
  const write = (connections: ImportedConnection[]) =>
    new Promise<void>((resolve) => {
      sent += connections.length;
      if (call.write({ tenant, connections })) resolve();
      else call.once("drain", () => resolve());
    });

  const input = source === "-" ? io.stdin : createReadStream(source);
  let batch: ImportedConnection[] = [];
  for await (const text of createInterface({ input, crlfDelay: Infinity })) {
    lines++;
    if (!text.trim()) continue;
    const parsed = recordOf(text, lines);
    if ("refusal" in parsed) localRefusals.push(parsed.refusal);
    else batch.push(parsed.record);
    if (batch.length >= BATCH) {
      await write(batch);
      batch = [];
      io.stderr.write(`\rsent ${sent} records (${lines} lines read)`);
    }
  }
  if (batch.length || sent === 0) await write(batch);
  call.end();
  io.stderr.write(`\rsent ${sent} records (${lines} lines read); waiting for the broker\n`);
  const res = await answer;
  return { ...res, refused: [...localRefusals, ...res.refused].sort((a, b) => a.line - b.line), lines };
}

/** One line as a record, or why not (without quoting the line: it holds tokens). */
function recordOf(text: string, line: number): { record: ImportedConnection } | { refusal: ImportRefusal } {
  const refuse = (message: string) => ({ refusal: { line, reason: "INVALID_REQUEST", message } });
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return refuse("not a JSON object");
  }
  if (!o || typeof o !== "object" || Array.isArray(o)) return refuse("not a JSON object");
  const str = (k: string) => (typeof o[k] === "string" ? (o[k] as string) : undefined);
  for (const k of ["provider", "user", "account", "access_token"]) if (!str(k)) return refuse(`${k} must be a non-empty string`);
  if (o.refresh_token !== undefined && o.refresh_token !== null && typeof o.refresh_token !== "string") return refuse("refresh_token must be a string");
  let expiresAt: Date | undefined;
  if (o.expires_at !== undefined && o.expires_at !== null) {
    expiresAt = typeof o.expires_at === "number" ? new Date(o.expires_at * 1000) : typeof o.expires_at === "string" ? new Date(o.expires_at) : new Date(NaN);
    if (!Number.isFinite(expiresAt.getTime())) return refuse("expires_at must be an RFC 3339 time or seconds since 1970");
  }
  const scopes = Array.isArray(o.scopes) ? o.scopes : typeof o.scopes === "string" ? o.scopes.split(/\s+/).filter(Boolean) : o.scopes === undefined ? [] : null;
  if (!scopes || !scopes.every((s) => typeof s === "string")) return refuse("scopes must be a list of strings or a space-separated string");
  return {
    record: {
      line,
      provider: str("provider")!,
      user: str("user")!,
      account: str("account")!,
      accessToken: str("access_token")!,
      refreshToken: str("refresh_token") ?? "",
      expiresAt,
      scopes: scopes as string[],
    },
  };
}
