import type { CapabilityEvent } from "../capabilities/capabilities.js";
import type { Logger } from "../log/logger.js";

const LEVEL: Record<CapabilityEvent["type"], "debug" | "info" | "warn" | "error"> = {
  started: "debug",
  retired: "info",
  timeout: "warn",
  crashed: "error",
  panic: "error",
  "start-failed": "error",
  "native-panic": "error",
};

const MESSAGE: Record<CapabilityEvent["type"], string> = {
  started: "capability worker started",
  retired: "capability worker recycled",
  timeout: "capability job timed out: worker replaced",
  crashed: "capability worker crashed: replaced",
  panic: "capability worker panicked: replaced",
  "start-failed": "capability worker failed to start",
  "native-panic": "native capability runtime panicked: that call failed, the runtime goes on",
};

/**
 * Log a capability worker lifecycle event at its level: a start is routine (debug), a recycle is expected (info), a
 * job timeout is a warning, a crash, a panic or a failed start is an error. `detail` is the worker's exit code, the
 * job kind or the panic message from the Rust side: never a token (jobs carry tokens, events do not). A panic caught
 * by the native runtime fails its call only (no worker to replace) and is an error too.
 */
export function logPoolEvent(logger: Logger, event: CapabilityEvent): void {
  const { type, ...fields } = event;
  const name = type === "native-panic" ? "native_panic" : `worker_${type.replace("-", "_")}`;
  logger[LEVEL[type]]({ event: name, ...fields }, MESSAGE[type]);
}
