import { CapvaultError } from "../errors/capvault-error.js";

const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/**
 * Turn anything an upstream call threw into a CapvaultError whose message is public and whose cause holds no
 * secret: capvault errors (the fence, the deadline, size caps) pass through; undici timeouts become
 * UPSTREAM_TIMEOUT, an abort with no known reason CANCELLED, undici argument errors INTERNAL, and everything else
 * (refused connections, TLS failures, resets) UPSTREAM_UNREACHABLE. The original error is never kept: the cause is
 * a fresh Error with only its name, code and message, with every occurrence of `secret` (the credential) removed,
 * so neither a message nor a stack nor a nested property can carry a token out.
 */
export function toUpstreamError(err: unknown, secret: string, metadata: Record<string, string> = {}): CapvaultError {
  if (err instanceof CapvaultError) return err;
  const code = typeof (err as { code?: unknown })?.code === "string" ? (err as { code: string }).code : "";
  const cause = scrubbedCause(err, secret);
  if (TIMEOUT_CODES.has(code)) return new CapvaultError("UPSTREAM_TIMEOUT", undefined, { metadata, cause });
  if (code === "UND_ERR_ABORTED" || (err as { name?: unknown })?.name === "AbortError") {
    return new CapvaultError("CANCELLED", undefined, { metadata, cause });
  }
  if (code === "UND_ERR_INVALID_ARG") return new CapvaultError("INTERNAL", undefined, { metadata, cause });
  return new CapvaultError("UPSTREAM_UNREACHABLE", undefined, { metadata, cause });
}

function scrubbedCause(err: unknown, secret: string): Error {
  const name = typeof (err as { name?: unknown })?.name === "string" ? (err as { name: string }).name : "Error";
  const code = typeof (err as { code?: unknown })?.code === "string" ? (err as { code: string }).code : undefined;
  const raw = err instanceof Error ? err.message : typeof err === "string" ? err : "non-error thrown";
  const message = secret.length > 0 ? raw.split(secret).join("[REDACTED]") : raw;
  const cause = new Error(`${name}${code ? ` (${code})` : ""}: ${message}`);
  cause.stack = undefined;
  return cause;
}
