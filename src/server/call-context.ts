import { CapvaultError } from "../errors/capvault-error.js";
import type { AccessFields } from "../observability/access-log.js";
import type {
  Metadata,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
} from "@grpc/grpc-js";

/** Any kind of server call. */
export type ServerCall =
  | ServerUnaryCall<any, any>
  | ServerReadableStream<any, any>
  | ServerWritableStream<any, any>
  | ServerDuplexStream<any, any>;

/** What a handler knows about the call besides its request: metadata, the caller's deadline, and cancellation. */
export interface CallContext {
  metadata: Metadata;
  /**
   * Aborted when the client cancels (reason: CapvaultError CANCELLED) or the deadline passes (DEADLINE_EXCEEDED), so
   * work handed this signal stops by the caller's deadline without a timer of its own.
   */
  signal: AbortSignal;
  /** The caller's deadline, if it set one. */
  deadline?: Date;
  peer: string;
  /** The bearer token from `authorization: Bearer <token>`, if any. Never log it. */
  bearerToken(): string | undefined;
  /** What the handler learned for the call's access log line (access-log.ts). */
  access: AccessFields;
  /** Release the deadline timer and the cancellation listener once the handler has answered. */
  finished(): void;
}

/** Build the context of a server call. */
export function callContext(call: ServerCall): CallContext {
  const controller = new AbortController();
  const onCancelled = () => controller.abort(new CapvaultError("CANCELLED"));
  // grpc-js also emits "cancelled" after a call it has answered normally: finished() stops listening first.
  (call as ServerUnaryCall<unknown, unknown>).once("cancelled", onCancelled);
  const raw = call.getDeadline();
  const deadline = raw instanceof Date ? raw : Number.isFinite(raw) ? new Date(raw as number) : undefined;
  let timer: NodeJS.Timeout | undefined;
  if (deadline) {
    timer = setTimeout(() => controller.abort(new CapvaultError("DEADLINE_EXCEEDED")), Math.max(0, deadline.getTime() - Date.now()));
    timer.unref(); // finished() clears it; after a cancellation it fires into an aborted controller, which is a no-op
  }
  return {
    metadata: call.metadata,
    signal: controller.signal,
    deadline,
    peer: call.getPeer(),
    access: {},
    finished() {
      clearTimeout(timer);
      (call as ServerUnaryCall<unknown, unknown>).removeListener("cancelled", onCancelled);
    },
    bearerToken() {
      const values = call.metadata.get("authorization");
      if (values.length !== 1 || typeof values[0] !== "string") return undefined;
      const m = /^Bearer\s+(\S+)\s*$/i.exec(values[0]);
      return m?.[1];
    },
  };
}
