import { credentials, Metadata, type CallOptions, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import {
  CapabilityServiceClient,
  type AuthorizeResponse,
  type InspectResponse,
  type Restriction,
} from "../gen/capvault/v1/capability.js";
import type { HttpRequest } from "../gen/capvault/v1/common.js";
import { ProxyServiceClient, type ProxyResponse } from "../gen/capvault/v1/proxy.js";
import { CapvaultClientError } from "./client-error.js";

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

export interface ClientOptions {
  /** Default: plaintext, for a broker on loopback. */
  credentials?: ChannelCredentials;
}

/** A connection to a capvault broker on behalf of one capability token. */
export interface CapvaultClient {
  /** Call the connection's provider API through the broker's Proxy. */
  fetch(connection: string, request: FetchRequest): Promise<FetchResponse>;
  /** Would this request be allowed? A dry run that also says which check or policy would refuse it. */
  authorize(connection: string, request: FetchRequest): Promise<AuthorizeResponse>;
  /** Ask the broker to append a block of checks; returns the narrower token (this client keeps its own). */
  attenuate(restriction: Partial<Restriction>): Promise<string>;
  /** The token's blocks as structured data. */
  inspect(): Promise<InspectResponse>;
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
  return clientFor(proxy, caps, token);
}

function clientFor(proxy: ProxyServiceClient, caps: CapabilityServiceClient, token: string): CapvaultClient {
  const metadata = () => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
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
      const res = await call<ProxyResponse>((cb) => proxy.proxy({ request: req }, metadata(), options(request.timeoutMs), cb));
      return toFetchResponse(res);
    },
    authorize(connection, request) {
      const req = toHttpRequest(connection, request);
      return call<AuthorizeResponse>((cb) => caps.authorize({ token, request: req }, metadata(), options(request.timeoutMs), cb));
    },
    async attenuate(restriction) {
      const res = await call<{ token: string }>((cb) =>
        caps.attenuate({ token, restriction: { connections: [], methods: [], pathPrefix: "", query: [], body: [], checks: [], ...restriction } }, metadata(), options(), cb),
      );
      return res.token;
    },
    inspect() {
      return call<InspectResponse>((cb) => caps.inspect({ token }, metadata(), options(), cb));
    },
    withToken(other) {
      return clientFor(proxy, caps, other);
    },
    close() {
      proxy.close();
    },
  };
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

function toFetchResponse(res: ProxyResponse): FetchResponse {
  const headers: Record<string, string> = {};
  for (const h of res.headers) {
    const k = h.name.toLowerCase();
    headers[k] = headers[k] === undefined ? h.value : `${headers[k]}, ${h.value}`;
  }
  const body = Buffer.from(res.body);
  return {
    status: res.status,
    headers,
    body,
    text: () => body.toString("utf8"),
    json: <T>() => JSON.parse(body.toString("utf8")) as T,
  };
}
