import {
  credentials,
  Metadata,
  type CallOptions,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  CapabilityServiceClient,
  type AuthorizeResponse,
  type InspectResponse,
  type ListPublicKeysResponse,
  type Restriction,
} from "../gen/capvault/v1/capability.js";
import type { HttpRequest } from "../gen/capvault/v1/common.js";
import {
  ProxyServiceClient,
  type ProxyResponse,
  type ProxyStreamRequest,
  type ProxyStreamResponse,
} from "../gen/capvault/v1/proxy.js";
import type { RootPublicKeyInfo } from "./attenuate-offline.js";
import { CapvaultClientError } from "./client-error.js";
import { ApprovalServiceClient, type WaitApprovalResponse } from "../gen/capvault/v1/approval.js";

/** What an agent asks the broker to send upstream. The agent names a path, never a URL. */
export interface FetchRequest {
  method?: string;
  /** Origin-form path under the provider's API, e.g. "/repos/acme/widgets/issues". */
  path: string;
  query?: Record<string, string | number | boolean> | Array<[string, string]>;
  headers?: Record<string, string>;
  /** A string or bytes are sent as-is; anything else is sent as JSON (with content-type application/json). */
  body?: string | Uint8Array | object;
  /** Deadline for the whole call, including the upstream request. Default 30 s. */
  timeoutMs?: number;
  /**
   * When the broker holds the call for a person's approval (APPROVAL_REQUIRED), wait for the decision
   * (WaitApproval) and repeat the identical call with the approval once approved; a denial throws APPROVAL_DENIED.
   * Without it the APPROVAL_REQUIRED error is thrown (its metadata has approval_id and approval_url).
   */
  waitForApproval?: boolean;
  /** How long to wait for the decision (default 15 minutes). */
  approvalTimeoutMs?: number;
  /** Repeat a call that was approved already: its approval id (the `capvault-approval-id` metadata). */
  approvalId?: string;
}

/** The upstream's answer, with only allowlisted headers. */
export interface FetchResponse {
  status: number;
  /** Header values by lower-case name (repeated headers joined with ", "). */
  headers: Record<string, string>;
  body: Buffer;
  text(): string;
  json<T = unknown>(): T;
}

/** The head of a streamed call: like {@link FetchRequest} without a body (the body is streamed separately). */
export interface StreamRequest extends Omit<FetchRequest, "body"> {
  /** Aborting it cancels the call: the broker aborts the upstream request and closes its connection. */
  signal?: AbortSignal;
}

/** A streamed request body: bytes or strings, in any chunking (the client re-chunks to {@link STREAM_CHUNK_BYTES}). */
export type StreamBody = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | Uint8Array | string;

/** The upstream's answer to a streamed call: the head at once, the body as it arrives. */
export interface StreamResponse {
  status: number;
  /** Allowlisted header values by lower-case name (repeated headers joined with ", "). */
  headers: Record<string, string>;
  /**
   * The response body, chunk by chunk. Iterate it to the end, or break out of the loop (which cancels the call).
   * A failure after the head (e.g. RESPONSE_TOO_LARGE, UPSTREAM_TIMEOUT) is thrown from the iteration as a
   * CapvaultClientError. It can be iterated once.
   */
  body: AsyncIterable<Buffer>;
  /** Cancel the call now (the upstream request is aborted). */
  cancel(): void;
}

/** Largest body chunk the client puts in one ProxyStream message. */
export const STREAM_CHUNK_BYTES = 64 * 1024;

export interface ClientOptions {
  /** Default: plaintext, for a broker on loopback. */
  credentials?: ChannelCredentials;
}

/** A connection to a capvault broker on behalf of one capability token. */
export interface CapvaultClient {
  /** Call the connection's provider API through the broker's Proxy. */
  fetch(connection: string, request: FetchRequest): Promise<FetchResponse>;
  /**
   * Call the provider API with a streamed request and/or response body (ProxyStream). Resolves once the upstream's
   * status and headers arrive; the upload is sent while the caller waits. Refusals (capability, fences, limits such
   * as BODY_TOO_LARGE) reject with a CapvaultClientError, as fetch does.
   *
   * ```ts
   * const res = await cv.stream(conn, { method: "PUT", path: "/upload", headers: { "content-type": "application/octet-stream" } }, fileChunks);
   * for await (const chunk of res.body) process.stdout.write(chunk);
   * ```
   */
  stream(connection: string, request: StreamRequest, body?: StreamBody): Promise<StreamResponse>;
  /** Would this request be allowed? A dry run that also says which check or policy would refuse it. */
  authorize(connection: string, request: FetchRequest): Promise<AuthorizeResponse>;
  /** Ask the broker to append a block of checks; returns the narrower token (this client keeps its own). */
  attenuate(restriction: Partial<Restriction>): Promise<string>;
  /** The token's blocks as structured data. */
  inspect(): Promise<InspectResponse>;
  /**
   * The broker's root public keys (ListPublicKeys: public, no capability needed). {@link attenuateOffline} verifies
   * the token with them before appending a block; fetch them once and keep them.
   */
  publicKeys(): Promise<RootPublicKeyInfo[]>;
  /** A client for another token on the same channel (e.g. a sub-agent's narrower token). */
  withToken(token: string): CapvaultClient;
  close(): void;
}

/**
 * Connect to a broker as the holder of `token`.
 *
 * ```ts
 * const cv = connect("127.0.0.1:50051", process.env.CAPVAULT_TOKEN!);
 * const res = await cv.fetch("conn_123", { method: "GET", path: "/repos/acme/widgets/issues" });
 * console.log(res.status, res.json());
 * ```
 */
export function connect(address: string, token: string, options: ClientOptions = {}): CapvaultClient {
  const creds = options.credentials ?? credentials.createInsecure();
  const proxy = new ProxyServiceClient(address, creds);
  const caps = new CapabilityServiceClient(address, creds, { channelOverride: proxy.getChannel() } as never);
  const approvals = new ApprovalServiceClient(address, creds, { channelOverride: proxy.getChannel() } as never);
  return clientFor(proxy, caps, approvals, token);
}

function clientFor(proxy: ProxyServiceClient, caps: CapabilityServiceClient, approvals: ApprovalServiceClient, token: string): CapvaultClient {
  const metadata = (approvalId?: string) => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
    if (approvalId) m.set("capvault-approval-id", approvalId);
    return m;
  };
  const options = (timeoutMs = 30_000): Partial<CallOptions> => ({ deadline: Date.now() + timeoutMs });
  const call = <Res>(fn: (cb: (err: ServiceError | null, res: Res) => void) => void) =>
    new Promise<Res>((resolve, reject) =>
      fn((err, res) => (err ? reject(CapvaultClientError.fromServiceError(err)) : resolve(res))),
    );

  return {
    async fetch(connection, request) {
      const req = toHttpRequest(connection, request);
      const send = (approvalId?: string) => call<ProxyResponse>((cb) => proxy.proxy({ request: req }, metadata(approvalId), options(request.timeoutMs), cb));
      try {
        return toFetchResponse(await send(request.approvalId));
      } catch (err) {
        if (!request.waitForApproval || !(err instanceof CapvaultClientError) || err.reason !== "APPROVAL_REQUIRED" || !err.metadata.approval_id) throw err;
        const id = err.metadata.approval_id;
        const state = await waitForDecision(approvals, metadata(), id, request.approvalTimeoutMs ?? 15 * 60_000);
        if (state !== "approved") {
          const reason = state === "denied" ? "APPROVAL_DENIED" : "APPROVAL_EXPIRED";
          throw new CapvaultClientError(err.code, reason, `the held call was ${state}`, { approval_id: id });
        }
        return toFetchResponse(await send(id));
      }
    },
    stream(connection, request, body) {
      const call = proxy.proxyStream(metadata(), options(request.timeoutMs));
      return streamCall(call, toHttpRequest(connection, { ...request, body: undefined }), body, request.signal);
    },
    authorize(connection, request) {
      const req = toHttpRequest(connection, request);
      return call<AuthorizeResponse>((cb) => caps.authorize({ token, request: req }, metadata(), options(request.timeoutMs), cb));
    },
    async attenuate(restriction) {
      const res = await call<{ token: string }>((cb) =>
        caps.attenuate({ token, restriction: { connections: [], methods: [], pathPrefix: "", query: [], body: [], checks: [], approvalMethods: [], ...restriction } }, metadata(), options(), cb),
      );
      return res.token;
    },
    inspect() {
      return call<InspectResponse>((cb) => caps.inspect({ token }, metadata(), options(), cb));
    },
    async publicKeys() {
      const res = await call<ListPublicKeysResponse>((cb) => caps.listPublicKeys({}, new Metadata(), options(), cb));
      return res.keys.filter((k) => !k.retired).map((k) => ({ keyId: k.keyId, publicKey: k.publicKey }));
    },
    withToken(other) {
      return clientFor(proxy, caps, approvals, other);
    },
    close() {
      proxy.close();
    },
  };
}

/** Follow WaitApproval until the approval is decided or expires; its final state. */
function waitForDecision(client: ApprovalServiceClient, md: Metadata, id: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let state = "pending";
    const stream = client.waitApproval({ id }, md, { deadline: Date.now() + timeoutMs });
    stream.on("data", (m: WaitApprovalResponse) => (state = m.approval?.state ?? state));
    stream.on("error", (e: ServiceError) => reject(CapvaultClientError.fromServiceError(e)));
    stream.on("end", () => resolve(state));
  });
}

/** Build the wire request from the friendly form. */
export function toHttpRequest(connection: string, r: FetchRequest): HttpRequest {
  const headers = Object.entries(r.headers ?? {}).map(([name, value]) => ({ name, value }));
  let body = Buffer.alloc(0);
  if (typeof r.body === "string") body = Buffer.from(r.body);
  else if (r.body instanceof Uint8Array) body = Buffer.from(r.body);
  else if (r.body !== undefined) {
    body = Buffer.from(JSON.stringify(r.body));
    if (!headers.some((h) => h.name.toLowerCase() === "content-type")) headers.push({ name: "content-type", value: "application/json" });
  }
  const query = Array.isArray(r.query)
    ? r.query.map(([name, value]) => ({ name, value }))
    : Object.entries(r.query ?? {}).map(([name, value]) => ({ name, value: String(value) }));
  return { connection, method: (r.method ?? "GET").toUpperCase(), path: r.path, query, headers, body };
}

function headerRecord(list: readonly { name: string; value: string }[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of list) {
    const k = h.name.toLowerCase();
    headers[k] = headers[k] === undefined ? h.value : `${headers[k]}, ${h.value}`;
  }
  return headers;
}

function toFetchResponse(res: ProxyResponse): FetchResponse {
  const headers = headerRecord(res.headers);
  const body = Buffer.from(res.body);
  return {
    status: res.status,
    headers,
    body,
    text: () => body.toString("utf8"),
    json: <T>() => JSON.parse(body.toString("utf8")) as T,
  };
}

type ProxyStreamCall = ClientDuplexStream<ProxyStreamRequest, ProxyStreamResponse>;

/**
 * Drive one ProxyStream call: send the head, pump the body (respecting back-pressure, in chunks of at most
 * STREAM_CHUNK_BYTES), and hand back the response head once it arrives with the rest of the body as an iterable.
 */
async function streamCall(call: ProxyStreamCall, head: ProxyStreamRequest["head"], body: StreamBody | undefined, signal?: AbortSignal): Promise<StreamResponse> {
  let uploadError: unknown;
  // An upload that failed on the caller's side (its body iterable threw) is reported as that error, not as the
  // CANCELLED status the resulting cancellation produces.
  const toClientError = (err: unknown) =>
    uploadError !== undefined ? uploadError : err instanceof CapvaultClientError ? err : CapvaultClientError.fromServiceError(err as ServiceError);
  let finished = false;
  call.once("status", () => (finished = true));
  call.on("error", () => {}); // surfaced through the iterator below
  const cancel = () => {
    if (!finished) call.cancel();
  };
  if (signal?.aborted) cancel();
  signal?.addEventListener("abort", cancel, { once: true });

  call.write({ head });
  // The upload runs alongside the response: an upstream may answer (or the broker refuse) before it ends.
  void pump(call, body, () => finished).catch((err: unknown) => {
    uploadError = err;
    cancel();
  });

  // destroyOnReturn: false, so that the end of the response stream does not destroy the call before its status
  // arrives; an early exit cancels the call explicitly instead (see bodyChunks).
  const messages = call.iterator({ destroyOnReturn: false }) as AsyncIterator<ProxyStreamResponse>;
  let first: IteratorResult<ProxyStreamResponse>;
  try {
    first = await messages.next();
  } catch (err) {
    signal?.removeEventListener("abort", cancel);
    throw toClientError(err);
  }
  if (first.done || !first.value.head) {
    cancel();
    signal?.removeEventListener("abort", cancel);
    throw new CapvaultClientError(13, "INTERNAL", "the broker's stream did not start with a response head", {});
  }
  const responseHead = first.value.head;

  async function* bodyChunks(): AsyncGenerator<Buffer> {
    let completed = false;
    try {
      for (;;) {
        let next: IteratorResult<ProxyStreamResponse>;
        try {
          next = await messages.next();
        } catch (err) {
          throw toClientError(err);
        }
        if (next.done) {
          completed = true;
          return;
        }
        if (next.value.bodyChunk) yield Buffer.from(next.value.bodyChunk);
      }
    } finally {
      signal?.removeEventListener("abort", cancel);
      if (!completed) cancel();
    }
  }

  return { status: responseHead.status, headers: headerRecord(responseHead.headers), body: bodyChunks(), cancel };
}

/** Send the request body, then half-close. Stops quietly once the call has finished (e.g. refused early). */
async function pump(call: ProxyStreamCall, body: StreamBody | undefined, finished: () => boolean): Promise<void> {
  for await (const chunk of bodyIterable(body)) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let offset = 0; offset < bytes.length; offset += STREAM_CHUNK_BYTES) {
      if (finished()) return;
      const piece = bytes.subarray(offset, offset + STREAM_CHUNK_BYTES);
      if (!call.write({ bodyChunk: piece })) await drained(call, finished);
    }
  }
  if (!finished()) call.end();
}

function bodyIterable(body: StreamBody | undefined): AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> {
  if (body === undefined) return [];
  if (typeof body === "string" || body instanceof Uint8Array) return [body];
  return body;
}

function drained(call: ProxyStreamCall, finished: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (finished()) return resolve();
    const done = () => {
      call.off("drain", done);
      call.off("status", done);
      resolve();
    };
    call.on("drain", done);
    call.on("status", done);
  });
}
