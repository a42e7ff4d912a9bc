/**
 * What the OAuth module reports for audit. Never carries a token or a client secret: `reason` is a stable reason code
 * or a short provider error code (e.g. "invalid_grant").
 */
export interface OAuthEvent {
  action: "connect" | "refresh" | "disconnect";
  tenant: string;
  connection: string;
  provider: string;
  decision: "allow" | "deny" | "error";
  reason: string;
}

/** The audit sink the lead wires in. Errors it throws are logged and otherwise ignored. */
export type OAuthEventSink = (event: OAuthEvent) => void | Promise<void>;

/** A pino-compatible logger subset. Nothing passed to it contains a token, a code, a state or a client secret. */
export interface OAuthLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A logger that drops everything. */
export const silentLogger: OAuthLogger = { info() {}, warn() {}, error() {} };

/** Send an event to the sink without ever failing the caller. */
export async function emitEvent(sink: OAuthEventSink | undefined, logger: OAuthLogger, event: OAuthEvent): Promise<void> {
  if (!sink) return;
  try {
    await sink(event);
  } catch (err) {
    logger.warn({ action: event.action, err: errorName(err) }, "oauth event sink failed");
  }
}

/** A secret-free description of an error for logs: its class, code and reason only (never its message). */
export function errorName(err: unknown): string {
  if (!err || typeof err !== "object") return typeof err;
  const e = err as { name?: string; code?: unknown; reason?: unknown; error?: unknown };
  return [e.name, e.reason, e.code, typeof e.error === "string" ? e.error : undefined].filter((x) => x !== undefined).join(":");
}
