import { EventEmitter } from "node:events";
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

/**
 * A call's cancellation as an EventEmitter signal: `aborted`, `reason` and one "abort" event, which undici takes as a
 * request's signal, as the upstream steps do (upstream-deadline.ts). Not an AbortSignal: Node makes each AbortSignal
 * in dictionary mode, so creating one and reading it costs microseconds, and every Proxy call needs one.
 */
export class CallCancellation extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  /** Abort once with `reason` (later calls do nothing). */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit("abort");
  }
}

/** What a handler knows about the call besides its request: metadata, the caller's deadline, and cancellation. */
export interface CallContext {
  metadata: Metadata;
  /**
   * Aborted when the client cancels (reason: CapvaultError CANCELLED) or the deadline passes (DEADLINE_EXCEEDED), so
   * work handed this signal stops by the caller's deadline without a timer of its own.
   */
  readonly signal: AbortSignal;
  /** The same cancellation, cheaper to hand to undici and the upstream steps (see CallCancellation). */
  readonly cancellation: CallCancellation;
  /** The caller's deadline, if it set one. */
  deadline?: Date;
  peer: string;
  /** The bearer token from `authorization: Bearer <token>`, if any. Never log it. */
  bearerToken(): string | undefined;
  /** What the handler learned for the call's access log line (access-log.ts). */
  access: AccessFields;
  /** Release the cancellation listener once the handler has answered. */
  finished(): void;
}

/** Build the context of a server call. */
export function callContext(call: ServerCall): CallContext {
  return new ServerCallContext(call);
}

class ServerCallContext implements CallContext {
  readonly metadata: Metadata;
  readonly cancellation = new CallCancellation();
  readonly deadline: Date | undefined;
  readonly access: AccessFields = {};
  /**
   * grpc-js ends a call whose deadline passes itself (its own timer answers DEADLINE_EXCEEDED and closes the stream),
   * then reports it "cancelled", as it does for a client's cancellation: the reason is told apart by the clock, so the
   * call needs no timer of its own.
   */
  private readonly onCancelled = () => {
    const deadline = this.deadline?.getTime();
    this.cancellation.abort(new CapvaultError(deadline !== undefined && Date.now() >= deadline ? "DEADLINE_EXCEEDED" : "CANCELLED"));
  };
  private controller: AbortController | undefined;

  constructor(private readonly call: ServerCall) {
    this.metadata = call.metadata;
    // grpc-js also emits "cancelled" after a call it has answered normally: finished() stops listening first.
    (call as ServerUnaryCall<unknown, unknown>).once("cancelled", this.onCancelled);
    const raw = call.getDeadline();
    this.deadline = raw instanceof Date ? raw : Number.isFinite(raw) ? new Date(raw as number) : undefined;
  }

  get peer(): string {
    return this.call.getPeer();
  }

  /** An AbortSignal that follows `cancellation`, made on first use. */
  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = (this.controller = new AbortController());
      const cancellation = this.cancellation;
      if (cancellation.aborted) controller.abort(cancellation.reason);
      else cancellation.once("abort", () => controller.abort(cancellation.reason));
    }
    return this.controller.signal;
  }

  finished(): void {
    (this.call as ServerUnaryCall<unknown, unknown>).removeListener("cancelled", this.onCancelled);
  }

  bearerToken(): string | undefined {
    const values = this.call.metadata.get("authorization");
    if (values.length !== 1 || typeof values[0] !== "string") return undefined;
    const header = values[0];
    // An agent sends the same capability call after call: its header is read once.
    if (header !== lastHeader.text) lastHeader = { text: header, token: /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] };
    return lastHeader.token;
  }
}

let lastHeader: { text: string; token: string | undefined } = { text: "", token: undefined };
