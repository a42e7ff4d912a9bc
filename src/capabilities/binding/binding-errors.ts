import type { Reason } from "../../errors/reasons.js";
import type { WireError } from "../protocol.js";

/**
 * The one place where the binding's errors become capvault reasons. The binding throws plain JSON-like objects
 * (serde-serialised biscuit-auth errors such as `{Format: {Signature: {InvalidSignature: "..."}}}`), not Error
 * instances; a Rust panic surfaces as `WebAssembly.RuntimeError` ("unreachable") and poisons the instance.
 */

/** Whether `err` is a wasm trap (a Rust panic): the instance must not be used again. */
export function isWasmPanic(err: unknown): boolean {
  return err instanceof WebAssembly.RuntimeError;
}

/** The first key of a serde enum value (`{Format: ...}` → "Format", `"AppendOnSealed"` → "AppendOnSealed"). */
export function variantOf(err: unknown): string | undefined {
  if (typeof err === "string") return err;
  if (err && typeof err === "object" && !(err instanceof Error)) return Object.keys(err)[0];
  return undefined;
}

/**
 * Whether `err` is a run-limit Timeout. The binding runs fact generation with biscuit's default limits (1 ms) whatever
 * is passed, so on a busy machine a trivial world can time out when the thread is preempted.
 */
export function isTimeout(err: unknown): boolean {
  return variantOf(err) === "RunLimit" && variantOf(inner(err, "RunLimit")) === "Timeout";
}

/** Run `f`, retrying a few times when it fails with a run-limit Timeout (see {@link isTimeout}). */
export function retryOnTimeout<T>(f: () => T, attempts = 4): T {
  for (let i = 1; ; i++) {
    try {
      return f();
    } catch (err) {
      if (i >= attempts || !isTimeout(err)) throw err;
    }
  }
}

function inner(err: unknown, key: string): unknown {
  return err && typeof err === "object" ? (err as Record<string, unknown>)[key] : undefined;
}

const SIGNATURE_FORMATS = new Set([
  "Signature",
  "SealedSignature",
  "InvalidSignatureSize",
  "SignatureDeserializationError",
  "BlockSignatureDeserializationError",
]);

/** A short, secret-free description of a binding error for logs (kept as the error's internal cause). */
export function describeBindingError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  try {
    return JSON.stringify(err).slice(0, 500);
  } catch {
    return String(err);
  }
}

/** The parse error message of a Language error, if any (safe to show: it describes the caller's own Datalog). */
function parseMessage(err: unknown): string | undefined {
  const lang = inner(err, "Language");
  const parse = inner(lang, "ParseError") as { errors?: Array<{ message?: string; input?: string }> } | undefined;
  const first = parse?.errors?.[0];
  if (first) return (first.message ?? `cannot parse: ${first.input ?? ""}`).slice(0, 300);
  const params = inner(lang, "Parameters");
  if (params) return `parameters: ${JSON.stringify(params).slice(0, 300)}`;
  return undefined;
}

/**
 * Map a binding error raised while parsing, verifying, building or appending to a stable reason. Authorization
 * outcomes (FailedLogic, RunLimit, Execution) are not errors: see authorize-job.ts.
 */
export function mapBindingError(err: unknown, context: "token" | "datalog" | "key"): WireError {
  const detail = describeBindingError(err);
  const variant = variantOf(err);
  let reason: Reason;
  let metadata: Record<string, string> | undefined;
  switch (variant) {
    case "Format": {
      const format = variantOf(inner(err, "Format"));
      if (format && SIGNATURE_FORMATS.has(format)) reason = "CAPABILITY_SIGNATURE_INVALID";
      else if (format === "UnknownPublicKey") reason = "CAPABILITY_UNKNOWN_ROOT_KEY";
      else if (format === "InvalidKey" || format === "InvalidKeySize") reason = context === "key" ? "CONFIG_INVALID" : "CAPABILITY_MALFORMED";
      else reason = "CAPABILITY_MALFORMED";
      break;
    }
    case "InvalidKey":
      reason = context === "key" ? "CONFIG_INVALID" : "CAPABILITY_MALFORMED";
      break;
    case "Base64":
      reason = "CAPABILITY_MALFORMED";
      break;
    case "AppendOnSealed":
    case "AlreadySealed":
      return { reason: "INVALID_REQUEST", message: "the capability is sealed and cannot be attenuated", detail };
    case "Language": {
      reason = "DATALOG_INVALID";
      const message = parseMessage(err);
      if (message) metadata = { error: message };
      break;
    }
    default:
      reason = context === "token" && variant !== undefined ? "CAPABILITY_MALFORMED" : "INTERNAL";
  }
  return { reason, detail, ...(metadata ? { metadata } : {}) };
}
