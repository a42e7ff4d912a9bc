import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { CapvaultError } from "../errors/capvault-error.js";
import type { Header } from "../gen/capvault/v1/common.js";
import { buildUpstreamUrl, type UpstreamUrl } from "./build-upstream-url.js";
import { memoizedForFrozen } from "./frozen-memo.js";
import type { CanonicalRequest } from "./canonical-request.js";
import { filterResponseHeaders, responseHeaderEntries } from "./response-header-allowlist.js";
import { callerDeadline, upstreamDeadline, type CancelSignal } from "./upstream-deadline.js";
import { toUpstreamError } from "./upstream-error.js";
import { buildUpstreamRequestHeaders } from "./upstream-request-headers.js";
import type { UpstreamTarget } from "./upstream-target.js";

/** Size and time limits of one upstream call. */
export interface UpstreamLimits {
  /** Cap on the response body; beyond it the call fails with RESPONSE_TOO_LARGE and the connection is dropped. */
  maxResponseBytes: number;
  /** Cap on a streamed request body; beyond it the call fails with BODY_TOO_LARGE. */
  maxStreamRequestBytes: number;
  /** Time allowed when the caller gives no deadline. */
  timeoutMs: number;
}

/** Default limits. */
export const DEFAULT_UPSTREAM_LIMITS: Readonly<UpstreamLimits> = Object.freeze({
  maxResponseBytes: 16 * 1024 * 1024,
  maxStreamRequestBytes: 64 * 1024 * 1024,
  timeoutMs: 30_000,
});

/** One upstream call, built only from authorized values. */
export interface UpstreamCall {
  readonly target: UpstreamTarget;
  /** The canonical request that was authorized. */
  readonly request: CanonicalRequest;
  /** The URL built from `target` and `request` when the request was authorized (built here when absent). */
  readonly url?: UpstreamUrl;
  /** The access token, revealed only here. It goes into exactly one header and nowhere else (no error, no log). */
  readonly credential: string;
  /** A fenced dispatcher (fenced-dispatcher.ts) matching the target. */
  readonly dispatcher: Dispatcher;
  /** Cancellation of the RPC. */
  readonly signal?: CancelSignal;
  /**
   * Whether `signal` already aborts when `deadline` passes (a gRPC call context's does): then the call needs no timer
   * and abort signal of its own, and a deadline abort is reported with the signal's reason.
   */
  readonly signalCoversDeadline?: boolean;
  /** The RPC's deadline, epoch milliseconds. */
  readonly deadline?: number;
  readonly limits?: Partial<UpstreamLimits>;
}

/** A buffered upstream response: status, allowlisted headers, body. Shaped like ProxyResponse. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Header[];
  readonly body: Buffer;
}

/** A streamed upstream response. Iterate `body` to the end or break out of it: either releases the connection. */
export interface UpstreamStreamingResponse {
  readonly status: number;
  readonly headers: Header[];
  readonly body: AsyncIterable<Buffer>;
}

/**
 * Make the upstream call with undici's `request` through the fenced dispatcher and buffer the response.
 * Redirects are never followed (checklist item 18): a 30x comes back as is, Location included (it is
 * allowlisted); the broker never connects to where it points. Hop-by-hop headers are stripped both ways, the
 * response headers are allowlisted, the response body is capped, and the caller's deadline and signal bound the
 * whole call (UPSTREAM_TIMEOUT / CANCELLED; the upstream socket is closed). The body comes back as the upstream
 * sent it: nothing is decompressed (an agent that sends Accept-Encoding gets Content-Encoding back), and the cap
 * counts the bytes received. undici 7 follows no redirect unless a redirect interceptor is composed in, and none
 * ever is here (its `maxRedirections` request option is gone).
 */
export async function callUpstream(call: UpstreamCall): Promise<UpstreamResponse> {
  const started = await start(call, call.request.body.length > 0 ? call.request.body : undefined);
  try {
    return { status: started.status, headers: started.headers, body: await started.collect() };
  } finally {
    started.release();
  }
}

/**
 * The streaming variant: the request body comes from `body` (the canonical request's own body is ignored) and is
 * capped at `limits.maxStreamRequestBytes`; the response body is handed back as an async iterable, capped at
 * `limits.maxResponseBytes`. The deadline keeps bounding the call until the response body ends.
 */
export async function callUpstreamStreaming(call: UpstreamCall & { readonly body: AsyncIterable<Uint8Array> }): Promise<UpstreamStreamingResponse> {
  const max = call.limits?.maxStreamRequestBytes ?? DEFAULT_UPSTREAM_LIMITS.maxStreamRequestBytes;
  const started = await start(call, Readable.from(cappedRequestBody(call.body, max), { objectMode: false }));
  return { status: started.status, headers: started.headers, body: started.body };
}

interface Started {
  status: number;
  headers: Header[];
  /** The body as a stream (use either this or collect()). */
  body: AsyncIterable<Buffer>;
  /** The whole body, under the same cap and with the same errors (cheaper than iterating `body`). */
  collect(): Promise<Buffer>;
  release(): void;
}

async function start(call: UpstreamCall, body: Buffer | Readable | undefined): Promise<Started> {
  const limits = resolvedLimits(call.limits);
  const url = call.url ?? buildUpstreamUrl(call.target, call.request);
  const headers = buildUpstreamRequestHeaders(call.target, call.request.headers, call.credential);
  const metadata = { host: url.hostname };
  const deadline =
    call.signalCoversDeadline && call.signal && call.deadline !== undefined
      ? callerDeadline(call.signal, call.deadline)
      : upstreamDeadline(call.signal, call.deadline, limits.timeoutMs);

  let res: Dispatcher.ResponseData;
  try {
    res = await call.dispatcher.request({
      origin: url.origin,
      path: url.pathAndQuery,
      method: call.request.method as Dispatcher.HttpMethod,
      headers,
      body,
      signal: deadline.signal,
    });
  } catch (err) {
    deadline.dispose();
    throw toUpstreamError(err, call.credential, metadata);
  }

  const responseBody = res.body;
  // Destroying an unfinished undici body emits an AbortError; the caller already has the real reason.
  responseBody.on("error", () => {});
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    deadline.dispose();
    if (!responseBody.destroyed) responseBody.destroy();
  };

  // A HEAD, 204 or 304 response has no body, whatever Content-Length announces.
  const bodyless = call.request.method === "HEAD" || res.statusCode === 204 || res.statusCode === 304;
  const declared = Number(res.headers["content-length"]);
  if (!bodyless && Number.isFinite(declared) && declared > limits.maxResponseBytes) {
    release();
    throw tooLarge(limits.maxResponseBytes);
  }

  async function* read(): AsyncGenerator<Buffer> {
    let total = 0;
    try {
      for await (const chunk of responseBody as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > limits.maxResponseBytes) throw tooLarge(limits.maxResponseBytes);
        yield chunk;
      }
    } catch (err) {
      throw toUpstreamError(err, call.credential, metadata);
    } finally {
      release();
    }
  }

  function collect(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      const fail = (err: unknown) => {
        release();
        reject(toUpstreamError(err, call.credential, metadata));
      };
      responseBody.on("data", (chunk: Buffer) => {
        total += chunk.length;
        if (total > limits.maxResponseBytes) fail(tooLarge(limits.maxResponseBytes));
        else chunks.push(chunk);
      });
      responseBody.once("error", fail);
      responseBody.once("end", () => resolve(Buffer.concat(chunks, total)));
    });
  }

  return {
    status: res.statusCode,
    headers: filterResponseHeaders(responseHeaderEntries(res.headers), call.target.extraResponseHeaders),
    body: { [Symbol.asyncIterator]: read },
    collect,
    release,
  };
}

/** The limits of a call: the defaults, overridden (merged once per frozen overrides object: the broker's are). */
function resolvedLimits(overrides: Partial<UpstreamLimits> | undefined): Readonly<UpstreamLimits> {
  return overrides ? mergedLimits(overrides) : DEFAULT_UPSTREAM_LIMITS;
}

const mergedLimits = memoizedForFrozen((overrides: Partial<UpstreamLimits>): Readonly<UpstreamLimits> => Object.freeze({ ...DEFAULT_UPSTREAM_LIMITS, ...overrides }));

/** Count a streamed request body and stop it, with BODY_TOO_LARGE, at the first chunk past the cap. */
async function* cappedRequestBody(body: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > max) throw new CapvaultError("BODY_TOO_LARGE", undefined, { metadata: { maxBodyBytes: String(max) } });
    yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

function tooLarge(max: number): CapvaultError {
  return new CapvaultError("RESPONSE_TOO_LARGE", undefined, { metadata: { maxResponseBytes: String(max) } });
}
