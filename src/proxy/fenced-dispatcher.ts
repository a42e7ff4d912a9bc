import { createHash } from "node:crypto";
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Agent, buildConnector, type Dispatcher } from "undici";
import { CapvaultError } from "../errors/capvault-error.js";
import { isForbiddenAddress, isIpLiteralHost } from "./address-fence.js";
import type { UpstreamTarget } from "./upstream-target.js";

/** One address a host name resolved to. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: number;
}

/** Resolves a host name to every address it has. Injected in tests; by default `dns.lookup` with `all: true`. */
export type HostLookup = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** Reported once per connection attempt, after the fence decided (before any socket exists). */
export interface ConnectAttempt {
  readonly hostname: string;
  readonly port: string;
  /** The address the socket will be opened to, or the first forbidden address that stopped it. */
  readonly address: string;
  readonly allowed: boolean;
}

/** Options of {@link createFencedDispatcher}. */
export interface FencedDispatcherOptions {
  /** How host names are resolved (default: the system resolver through `dns.lookup`). */
  lookup?: HostLookup;
  /** TESTS ONLY: connect even when a resolved address is in a forbidden range. */
  allowPrivateAddresses?: boolean;
  /** TESTS ONLY: replace the fence's decision (default {@link isForbiddenAddress}), e.g. to let exactly one loopback address through. */
  isForbidden?: (address: string) => boolean;
  /** Trust exactly these CA certificates instead of Node's bundled roots. */
  ca?: string | Buffer;
  /** Bound on name resolution and on the TCP+TLS handshake, each (default 10 s). */
  connectTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept (default 30 s). */
  keepAliveTimeoutMs?: number;
  /** Maximum sockets per upstream origin (default 32). */
  connectionsPerOrigin?: number;
  /**
   * Observe every connection attempt and the fence's decision (audit, metrics, tests). Called before the socket is
   * opened; if it throws, the socket is not opened and the call fails with that error (tests use this as a
   * loopback-only guard, so that a regression of the fence can never send traffic off the machine).
   */
  onConnectAttempt?: (attempt: ConnectAttempt) => void;
}

/** The system resolver: every address `dns.lookup` returns, in the order it returns them. */
export const systemLookup: HostLookup = async (hostname) => {
  const all = await dnsLookup(hostname, { all: true });
  return all.map((a) => ({ address: a.address, family: a.family }));
};

/**
 * An undici Agent (keep-alive pools, one per origin) whose connector resolves the host name itself and refuses,
 * before any socket is opened, when ANY resolved address is forbidden by the address fence (checklist item 19):
 * the connect callback fails with UPSTREAM_ADDRESS_FORBIDDEN. Otherwise it connects to the checked address (never
 * re-resolving), with SNI and certificate verification against the host name and, if given, the custom CA. The
 * check runs for every new connection, so a name that rebinds to a private address after a first good answer is
 * caught at the next connect; pooled connections stay pinned to the address that was checked.
 * Only https is spoken; IP-literal hosts are checked without the resolver.
 */
export function createFencedDispatcher(options: FencedDispatcherOptions = {}): Agent {
  const lookup = options.lookup ?? systemLookup;
  const isForbidden = options.isForbidden ?? isForbiddenAddress;
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const tlsConnect = buildConnector({
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    rejectUnauthorized: true,
    timeout: timeoutMs,
  });

  async function choose(hostname: string, port: string): Promise<string> {
    let addresses: readonly ResolvedAddress[];
    if (isIP(hostname) !== 0) {
      addresses = [{ address: hostname, family: isIP(hostname) }];
    } else if (isIpLiteralHost(hostname)) {
      throw new CapvaultError("UPSTREAM_ADDRESS_FORBIDDEN", undefined, { metadata: { host: hostname } });
    } else {
      addresses = await withTimeout(lookup(hostname), timeoutMs).catch((err: unknown) => {
        if (err instanceof CapvaultError) throw err;
        throw new CapvaultError("UPSTREAM_UNREACHABLE", "the upstream host name did not resolve", {
          metadata: { host: hostname },
          cause: err,
        });
      });
    }
    if (addresses.length === 0) {
      throw new CapvaultError("UPSTREAM_UNREACHABLE", "the upstream host name did not resolve", { metadata: { host: hostname } });
    }
    const bad = addresses.find((a) => isForbidden(a.address));
    if (bad !== undefined && options.allowPrivateAddresses !== true) {
      options.onConnectAttempt?.({ hostname, port, address: bad.address, allowed: false });
      throw new CapvaultError("UPSTREAM_ADDRESS_FORBIDDEN", undefined, {
        metadata: { host: hostname },
        cause: new Error(`${hostname} resolved to a forbidden address`),
      });
    }
    const chosen = addresses[0].address;
    options.onConnectAttempt?.({ hostname, port, address: chosen, allowed: true });
    return chosen;
  }

  const connect: buildConnector.connector = (opts, callback) => {
    if (opts.protocol !== "https:") {
      callback(new CapvaultError("UPSTREAM_HOST_FORBIDDEN", "the upstream must be https"), null);
      return;
    }
    const hostname = opts.hostname.replace(/^\[(.*)\]$/, "$1");
    choose(hostname, opts.port).then(
      (address) => {
        try {
          tlsConnect(
            { ...opts, hostname: address, servername: isIP(hostname) === 0 ? hostname : undefined },
            callback,
          );
        } catch (err) {
          callback(err as Error, null);
        }
      },
      (err: Error) => callback(err, null),
    );
  };

  return new Agent({
    connect,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
    connections: options.connectionsPerOrigin ?? 32,
    allowH2: false,
  });
}

/**
 * The fenced dispatchers of a broker process: one keep-alive Agent per distinct fence setting (custom CA,
 * allowPrivateAddresses), shared by every target with that setting. Production targets normally all share one.
 */
export class UpstreamDispatchers {
  readonly #options: Omit<FencedDispatcherOptions, "ca" | "allowPrivateAddresses">;
  readonly #agents = new Map<string, Agent>();
  /** Targets are immutable catalog entries: each one's dispatcher is looked up once. */
  #byTarget = new WeakMap<UpstreamTarget, Agent>();

  constructor(options: Omit<FencedDispatcherOptions, "ca" | "allowPrivateAddresses"> = {}) {
    this.#options = options;
  }

  /** The dispatcher for `target` (created on first use). */
  for(target: UpstreamTarget): Dispatcher {
    const known = this.#byTarget.get(target);
    if (known) return known;
    const ca = target.ca === undefined ? "" : createHash("sha256").update(target.ca).digest("hex");
    const key = `${target.allowPrivateAddresses === true ? "private" : "public"}|${ca}`;
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      agent = createFencedDispatcher({ ...this.#options, ca: target.ca, allowPrivateAddresses: target.allowPrivateAddresses === true });
      this.#agents.set(key, agent);
    }
    this.#byTarget.set(target, agent);
    return agent;
  }

  /** Close every pool (waits for in-flight requests). */
  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    this.#byTarget = new WeakMap();
    await Promise.all(agents.map((a) => a.close()));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CapvaultError("UPSTREAM_TIMEOUT", "resolving the upstream host name timed out")), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
