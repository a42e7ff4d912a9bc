import { REASONS, type Reason } from "./reasons.js";

export type { Reason } from "./reasons.js";

/**
 * The one error type of capvault. `reason` is stable; `message` is public (safe for clients and logs);
 * `metadata` goes to the client in ErrorInfo and must never hold a secret; `cause` stays inside the process
 * (logged with redaction, never sent).
 */
export class CapvaultError extends Error {
  readonly reason: Reason;
  readonly metadata: Readonly<Record<string, string>>;

  constructor(reason: Reason, message?: string, options: { metadata?: Record<string, string>; cause?: unknown } = {}) {
    super(message ?? REASONS[reason].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CapvaultError";
    this.reason = reason;
    this.metadata = Object.freeze({ ...(options.metadata ?? {}) });
  }

  /** The gRPC status code for this error (the mapping lives in reasons.ts). */
  get code(): number {
    return REASONS[this.reason].code;
  }

  /** Normalise anything thrown into a CapvaultError; unknown errors become INTERNAL with the original as cause. */
  static from(err: unknown): CapvaultError {
    if (err instanceof CapvaultError) return err;
    return new CapvaultError("INTERNAL", undefined, { cause: err });
  }

  /** Whether `err` is a CapvaultError with the given reason. */
  static is(err: unknown, reason: Reason): err is CapvaultError {
    return err instanceof CapvaultError && err.reason === reason;
  }
}
