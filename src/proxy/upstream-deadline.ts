import type { EventEmitter } from "node:events";
import { CapvaultError } from "../errors/capvault-error.js";

/**
 * A cancellation signal as undici takes one: an AbortSignal, or an EventEmitter with the same `aborted`, `reason`
 * and "abort" event (the gRPC call's CallCancellation, src/server/call-context.ts).
 */
export type CancelSignal = AbortSignal | (EventEmitter & { readonly aborted: boolean; readonly reason: unknown });

/** The abort signal that bounds one upstream call, and how to let go of it. */
export interface UpstreamDeadline {
  readonly signal: CancelSignal;
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
export function upstreamDeadline(callerSignal: CancelSignal | undefined, deadline: number | undefined, fallbackMs: number): UpstreamDeadline {
  if (callerSignal?.aborted) throw reasonFor(callerSignal.reason);
  const ms = deadline === undefined ? fallbackMs : deadline - Date.now();
  if (ms <= 0) throw new CapvaultError("UPSTREAM_TIMEOUT");
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new CapvaultError("UPSTREAM_TIMEOUT")), ms);
  timer.unref();
  const onAbort = () => controller.abort(reasonFor(callerSignal?.reason));
  const stopListening = callerSignal ? listenForAbort(callerSignal, onAbort) : () => {};
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      stopListening();
    },
  };
}

/**
 * The caller's own signal, when it already aborts at `deadline` (see UpstreamCall.signalCoversDeadline): nothing to
 * set up or release. Throws at once if the deadline has passed or the caller has cancelled.
 */
export function callerDeadline(callerSignal: CancelSignal, deadline: number): UpstreamDeadline {
  if (callerSignal.aborted) throw reasonFor(callerSignal.reason);
  if (deadline - Date.now() <= 0) throw new CapvaultError("UPSTREAM_TIMEOUT");
  return { signal: callerSignal, dispose() {} };
}

/** Call `onAbort` once when `signal` aborts; returns how to stop listening. */
function listenForAbort(signal: CancelSignal, onAbort: () => void): () => void {
  if ("addEventListener" in signal) {
    signal.addEventListener("abort", onAbort, { once: true });
    return () => signal.removeEventListener("abort", onAbort);
  }
  signal.once("abort", onAbort);
  return () => signal.removeListener("abort", onAbort);
}

function reasonFor(reason: unknown): CapvaultError {
  if (reason instanceof CapvaultError) return reason;
  if ((reason as { name?: unknown })?.name === "TimeoutError") return new CapvaultError("UPSTREAM_TIMEOUT");
  return new CapvaultError("CANCELLED");
}
