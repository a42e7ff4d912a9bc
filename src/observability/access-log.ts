import { CapvaultError } from "../errors/capvault-error.js";
import type { Logger } from "../log/logger.js";

/** What a handler learns about its call that the access line reports (Proxy calls fill all of it). */
export interface AccessFields {
  tenant?: string;
  subject?: string;
  connection?: string;
  decision?: string;
  upstreamStatus?: number;
  traceId?: string;
}

let sink: Logger | undefined;

/**
 * Turn the access log on (log.access) or off. Process-wide, like the failure reporter: one broker per process. The
 * lines go through the broker's logger, so they are redacted like every other line.
 */
export function setAccessLog(logger: Logger | undefined): void {
  sink = logger?.child({ log: "access" });
}

/**
 * One JSON line for a finished RPC: method, who and what (for Proxy: tenant, subject, connection), decision, reason,
 * upstream status, latency and trace id. Never a token, a path's query, a header or a body.
 */
export function writeAccessLine(method: string, fields: AccessFields, startedAt: number, err?: unknown): void {
  if (!sink) return;
  const reason = err === undefined ? undefined : CapvaultError.from(err).reason;
  sink.info(
    {
      method,
      ...fields,
      decision: fields.decision ?? (err === undefined ? "ok" : "error"),
      ...(reason ? { reason } : {}),
      latencyMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
    },
    "rpc",
  );
}
