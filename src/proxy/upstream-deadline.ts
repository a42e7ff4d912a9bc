import { CapvaultError } from "../errors/capvault-error.js";

/** The abort signal that bounds one upstream call, and how to let go of it. */
export interface UpstreamDeadline {
  readonly signal: AbortSignal;
  /** Clear the timer and stop listening to the caller's signal. Idempotent. */
  dispose(): void;
}

/**
 * Bound an upstream call by the caller's deadline (epoch ms, e.g. the gRPC deadline), or `fallbackMs` from now when
 * there is none, and by the caller's cancellation signal. The returned signal aborts with a CapvaultError as its
 * reason, which undici rethrows as is: UPSTREAM_TIMEOUT when the time is up (also when the caller's signal was an
 * `AbortSignal.timeout`), CANCELLED when the caller cancelled, or the caller's own CapvaultError reason.
 * Throws at once if the deadline has already passed or the caller has already cancelled.
 */
export function upstreamDeadline(callerSignal: AbortSignal | undefined, deadline: number | undefined, fallbackMs: number): UpstreamDeadline {
  if (callerSignal?.aborted) throw reasonFor(callerSignal.reason);
  const ms = deadline === undefined ? fallbackMs : deadline - Date.now();
  if (ms <= 0) throw new CapvaultError("UPSTREAM_TIMEOUT");
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new CapvaultError("UPSTREAM_TIMEOUT")), ms);
  timer.unref();
  const onAbort = () => controller.abort(reasonFor(callerSignal?.reason));
  callerSignal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      callerSignal?.removeEventListener("abort", onAbort);
    },
  };
}

/**
 * The caller's own signal, when it already aborts at `deadline` (see UpstreamCall.signalCoversDeadline): nothing to
 * set up or release. Throws at once if the deadline has passed or the caller has cancelled.
 */
export function callerDeadline(callerSignal: AbortSignal, deadline: number): UpstreamDeadline {
  if (callerSignal.aborted) throw reasonFor(callerSignal.reason);
  if (deadline - Date.now() <= 0) throw new CapvaultError("UPSTREAM_TIMEOUT");
  return { signal: callerSignal, dispose() {} };
}

function reasonFor(reason: unknown): CapvaultError {
  if (reason instanceof CapvaultError) return reason;
  if ((reason as { name?: unknown })?.name === "TimeoutError") return new CapvaultError("UPSTREAM_TIMEOUT");
  return new CapvaultError("CANCELLED");
}
