import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Agent } from "undici";
import { createFencedDispatcher, type FencedDispatcherOptions, type HostLookup } from "../../src/proxy/fenced-dispatcher.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
/** The test-only CA that signed the upstream certificate (SANs: api.test, other.test, rebind.test, metadata.test, private.test). */
export const TEST_CA = readFileSync(join(FIXTURES, "test-ca.pem"));
/** A CA that signed nothing used here. */
export const UNRELATED_CA = readFileSync(join(FIXTURES, "unrelated-ca.pem"));
const KEY = readFileSync(join(FIXTURES, "test-server-key.pem"));
const CERT = readFileSync(join(FIXTURES, "test-server.pem"));

/** One request as the upstream saw it. */
export interface RecordedRequest {
  method: string;
  url: string;
  /** Raw header list `[name, value, …]` exactly as received (so duplicates are visible). */
  rawHeaders: string[];
  body: Buffer;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A real HTTPS server on a loopback address that records every TCP connection and request. */
export interface RecordingUpstream {
  readonly address: string;
  readonly port: number;
  /** TCP connections accepted (counted before TLS, so a refused-before-connect call leaves it at 0). */
  readonly connections: number;
  /** Sockets that have closed. */
  readonly closedSockets: number;
  readonly requests: RecordedRequest[];
  handler: UpstreamHandler;
  /** Resolves when the next socket closes. */
  nextSocketClose(): Promise<void>;
  /** Every value of header `name` (case-insensitive) in request `i`. */
  headerValues(i: number, name: string): string[];
  close(): Promise<void>;
}

/** Start a recording HTTPS upstream on `address` (default 127.0.0.1), an ephemeral port. */
export async function startRecordingUpstream(address = "127.0.0.1", handler?: UpstreamHandler): Promise<RecordingUpstream> {
  let connections = 0;
  let closedSockets = 0;
  const closeWaiters: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const requests: RecordedRequest[] = [];
  const server: Server = createServer({ key: KEY, cert: CERT });
  server.on("connection", (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => {
      closedSockets++;
      sockets.delete(socket);
      closeWaiters.splice(0).forEach((w) => w());
    });
  });
  const upstream: RecordingUpstream = {
    address,
    port: 0,
    get connections() {
      return connections;
    },
    get closedSockets() {
      return closedSockets;
    },
    requests,
    handler:
      handler ??
      ((req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true, path: req.url }));
      }),
    nextSocketClose: () => new Promise<void>((r) => closeWaiters.push(r)),
    headerValues(i, name) {
      const raw = requests[i].rawHeaders;
      const out: string[] = [];
      for (let j = 0; j < raw.length; j += 2) if (raw[j].toLowerCase() === name.toLowerCase()) out.push(raw[j + 1]);
      return out;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? "", url: req.url ?? "", rawHeaders: [...req.rawHeaders], body });
      upstream.handler(req, res, body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, address, () => resolve());
  });
  (upstream as { port: number }).port = (server.address() as AddressInfo).port;
  return upstream;
}

/** A lookup that answers only from `table` (never real DNS) and records every name it was asked about. */
export function tableLookup(table: Record<string, string[] | (() => string[])>): HostLookup & { calls: string[] } {
  const calls: string[] = [];
  const lookup = async (hostname: string) => {
    calls.push(hostname);
    const entry = table[hostname];
    const addresses = typeof entry === "function" ? entry() : entry;
    if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return Object.assign(lookup, { calls });
}

/**
 * An onConnectAttempt hook for every test dispatcher: it refuses (by throwing a plain Error, which no test expects)
 * any allowed connection to an address outside 127.0.0.0/8. If the fence ever regresses, tests fail instead of
 * sending packets to a private, metadata or public address.
 */
export function loopbackOnly(attempt: { address: string; allowed: boolean }): void {
  if (attempt.allowed && !/^127\.\d+\.\d+\.\d+$/.test(attempt.address)) {
    throw new Error(`test guard: refusing a non-loopback connection to ${attempt.address}`);
  }
}

/** createFencedDispatcher with the {@link loopbackOnly} guard in front of any onConnectAttempt the test passes. */
export function guardedDispatcher(options: FencedDispatcherOptions): Agent {
  return createFencedDispatcher({
    ...options,
    onConnectAttempt: (a) => {
      loopbackOnly(a);
      options.onConnectAttempt?.(a);
    },
  });
}
