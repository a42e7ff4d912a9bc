import type { PoolEvent } from "../capabilities/worker-pool.js";
import type { Logger } from "../log/logger.js";

const LEVEL: Record<PoolEvent["type"], "debug" | "info" | "warn" | "error"> = {
  started: "debug",
  retired: "info",
  timeout: "warn",
  crashed: "error",
  panic: "error",
  "start-failed": "error",
};

const MESSAGE: Record<PoolEvent["type"], string> = {
  started: "capability worker started",
  retired: "capability worker recycled",
  timeout: "capability job timed out: worker replaced",
  crashed: "capability worker crashed: replaced",
  panic: "capability worker panicked: replaced",
  "start-failed": "capability worker failed to start",
};

/**
 * Log a capability worker lifecycle event at its level: a start is routine (debug), a recycle is expected (info), a
 * job timeout is a warning, a crash, a panic or a failed start is an error. `detail` is the worker's exit code, the
 * job kind or the panic message from the Rust side: never a token (jobs carry tokens, events do not).
 */
export function logPoolEvent(logger: Logger, event: PoolEvent): void {
  const { type, ...fields } = event;
  logger[LEVEL[type]]({ event: `worker_${type.replace("-", "_")}`, ...fields }, MESSAGE[type]);
}
