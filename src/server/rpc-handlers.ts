import type {
  handleClientStreamingCall,
  ServerReadableStream,
  handleBidiStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { CapvaultError } from "../errors/capvault-error.js";
import { toServiceError } from "../errors/grpc-status.js";
import { writeAccessLine } from "../observability/access-log.js";
import { currentTraceId, inRpcSpan } from "../observability/tracing.js";
import { callContext, type CallContext } from "./call-context.js";
import { MalformedMessage } from "./service-definitions.js";

/** Reports failures that are not the client's doing (INTERNAL), with the cause, to the broker's log. */
export type FailureReporter = (method: string, err: CapvaultError) => void;

let reportFailure: FailureReporter = () => {};

/** Set where INTERNAL failures are reported (the broker's logger). */
export function setFailureReporter(reporter: FailureReporter): void {
  reportFailure = reporter;
}

function fail(method: string, err: unknown) {
  const e = CapvaultError.from(err);
  if (e.reason === "INTERNAL") reportFailure(method, e);
  return toServiceError(e);
}

function checkRequest(request: unknown): void {
  if (request instanceof MalformedMessage) {
    throw new CapvaultError("INVALID_REQUEST", "the request message could not be decoded", {
      metadata: { problem: request.problem.slice(0, 200) },
    });
  }
}

/** Adapt an async function to a grpc-js unary handler: errors become rich statuses via the one error mapping. */
export function unary<Req, Res>(method: string, fn: (request: Req, ctx: CallContext) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const ctx = callContext(call);
    const startedAt = performance.now();
    handle(method, call, ctx, fn).then(
      (res) => {
        try {
          writeAccessLine(method, ctx.access, startedAt);
          callback(null, res);
        } finally {
          ctx.finished();
        }
      },
      (err) => {
        try {
          writeAccessLine(method, ctx.access, startedAt, err);
          callback(fail(method, err) as never);
        } finally {
          ctx.finished();
        }
      },
    );
  };
}

/** Run a unary handler in its span; whatever it throws, synchronously or not, becomes the returned rejection. */
async function handle<Req, Res>(method: string, call: ServerUnaryCall<Req, Res>, ctx: CallContext, fn: (request: Req, ctx: CallContext) => Promise<Res>): Promise<Res> {
  return inRpcSpan(method, call.metadata, () => {
    ctx.access.traceId = currentTraceId();
    checkRequest(call.request);
    return fn(call.request, ctx);
  });
}

/**
 * Adapt an async producer to a grpc-js server-streaming handler. A failure ends the call with its status through an
 * 'error' event (a destroyed server stream would send no status and leave the client waiting until its deadline).
 */
export function serverStream<Req, Res>(
  method: string,
  fn: (request: Req, ctx: CallContext, write: (message: Res) => Promise<void>) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    const ctx = callContext(call);
    const startedAt = performance.now();
    Promise.resolve()
      .then(() =>
        inRpcSpan(method, call.metadata, () => {
          ctx.access.traceId = currentTraceId();
          checkRequest(call.request);
          return fn(call.request, ctx, (message) => writeMessage(call, message));
        }),
      )
      .then(
        () => {
          writeAccessLine(method, ctx.access, startedAt);
          call.end();
        },
        (err) => {
          writeAccessLine(method, ctx.access, startedAt, err);
          if (!call.destroyed && !call.writableEnded) call.emit("error", Object.assign(new Error(), fail(method, err)));
        },
      )
      .finally(() => ctx.finished());
  };
}

/**
 * Adapt an async consumer to a grpc-js client-streaming handler: `fn` reads the request messages as an async iterable
 * (a malformed one fails the call with INVALID_REQUEST) and its result is the one answer.
 */
export function clientStream<Req, Res>(
  method: string,
  fn: (requests: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>) => {
    const ctx = callContext(call);
    async function* messages(): AsyncGenerator<Req> {
      try {
        for await (const message of call as AsyncIterable<Req>) {
          checkRequest(message);
          yield message;
        }
      } catch (err) {
        // The client went away mid-stream (cancelled, or its connection closed): not a failure of ours.
        if (err instanceof CapvaultError) throw err;
        throw new CapvaultError("CANCELLED", undefined, { cause: err });
      }
    }
    Promise.resolve()
      .then(() => fn(messages(), ctx))
      .then(
        (res) => callback(null, res),
        (err) => callback(fail(method, err) as never),
      )
      .finally(() => ctx.finished());
  };
}

/** Write one message, waiting out back-pressure; fails with CANCELLED if the call goes away meanwhile. */
function writeMessage<Res>(call: ServerWritableStream<unknown, Res>, message: Res): Promise<void> {
  if (call.destroyed) return Promise.reject(new CapvaultError("CANCELLED"));
  if (call.write(message)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const settle = (ok: boolean) => () => {
      call.off("drain", onDrain);
      call.off("close", onClose);
      if (ok) resolve();
      else reject(new CapvaultError("CANCELLED"));
    };
    const onDrain = settle(true);
    const onClose = settle(false);
    call.once("drain", onDrain);
    call.once("close", onClose);
  });
}

/** Handlers for every method of a service that answer UNIMPLEMENTED with reason NOT_IMPLEMENTED. */
export function notImplemented(definition: ServiceDefinition): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const error = () => toServiceError(new CapvaultError("NOT_IMPLEMENTED", `${method.path} is not implemented yet`));
    if (!method.requestStream && !method.responseStream) {
      impl[name] = ((call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => {
        try {
          checkRequest(call.request);
          cb(error() as never);
        } catch (err) {
          cb(fail(method.path, err) as never);
        }
      }) as handleUnaryCall<unknown, unknown>;
    } else if (!method.requestStream) {
      impl[name] = ((call: ServerWritableStream<unknown, unknown>) =>
        call.emit("error", Object.assign(new Error(), error()))) as handleServerStreamingCall<unknown, unknown>;
    } else {
      impl[name] = ((call: { emit(event: "error", e: Error): void }) =>
        call.emit("error", Object.assign(new Error(), error()))) as unknown as handleBidiStreamingCall<unknown, unknown>;
    }
  }
  return impl;
}
