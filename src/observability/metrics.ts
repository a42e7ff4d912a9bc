import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { AuditEntry } from "../audit/audit-event.js";
import type { CapabilityEvent } from "../capabilities/capabilities.js";
import type { NativeAuthorizer } from "../capabilities/native-authorizer.js";
import type { PoolStats } from "../capabilities/worker-pool.js";
import { CallCounter, CallHistogram } from "./call-series.js";

/**
 * Every metric the broker serves, in one place. Labels are low-cardinality by construction: a provider id from the
 * operator's catalog, a decision, a stable reason code from src/errors/reasons.ts, an outcome or an event type from a
 * closed set. Never a path, a subject, a connection id, a tenant or a token: those belong in the audit trail.
 */
export class BrokerMetrics {
  readonly registry = new Registry();

  private readonly proxyCalls = new CallCounter({
    name: "capvault_proxy_calls_total",
    help: "Proxy and ProxyStream calls, by provider, decision (allow, deny, error) and reason (none when allowed and answered).",
    labelNames: ["provider", "decision", "reason"] as const,
    registers: [this.registry],
  });
  private readonly proxyDuration = new CallHistogram({
    name: "capvault_proxy_call_duration_seconds",
    help: "Whole Proxy call, from request to stored audit event, by provider and decision.",
    labelNames: ["provider", "decision"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly authorizationDuration = new CallHistogram({
    name: "capvault_proxy_authorization_duration_seconds",
    help: "Admission of a Proxy call: authenticate the capability, canonicalize, route and authorize.",
    labelNames: [],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  private readonly upstreamDuration = new CallHistogram({
    name: "capvault_proxy_upstream_duration_seconds",
    help: "One upstream HTTP call (to the response head), by provider and outcome (2xx, 3xx, 4xx, 5xx, error).",
    labelNames: ["provider", "outcome"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly refreshes = new Counter({
    name: "capvault_oauth_refreshes_total",
    help: "OAuth refreshes this broker sent, by provider and outcome (refreshed, needs_reauth, failed).",
    labelNames: ["provider", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly refreshWaits = new Counter({
    name: "capvault_oauth_refresh_waits_total",
    help: "Calls that waited for a refresh in flight instead of sending their own (single flight), by where it ran (this_broker, other_broker).",
    labelNames: ["holder"] as const,
    registers: [this.registry],
  });
  private readonly workerEvents = new Counter({
    name: "capvault_capability_worker_events_total",
    help: "Capability runtime events: worker started, retired (recycled), crashed, timeout, panic, start-failed; native-panic (a panic caught by the native runtime, its call failed).",
    labelNames: ["event"] as const,
    registers: [this.registry],
  });
  private readonly approvals = new Counter({
    name: "capvault_approvals_total",
    help: "Step-up approvals by event: held (a call held for a person's approval), approved, denied, used, expired (a use found it expired), replayed (a second use refused).",
    labelNames: ["event"] as const,
    registers: [this.registry],
  });
  private readonly auditWriteFailures = new Counter({
    name: "capvault_audit_write_failures_total",
    help: "Failed audit trail writes (each is retried until it succeeds).",
    registers: [this.registry],
  });
  private readonly mongoErrors = new Counter({
    name: "capvault_mongodb_errors_total",
    help: "MongoDB commands that failed, by command name.",
    labelNames: ["command"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** One finished Proxy call, from its audit entry (only its provider, decision, reason and latency are read). */
  proxyCall(entry: AuditEntry): void {
    const provider = entry.provider || "none";
    this.proxyCalls.inc(provider, entry.decision, entry.reason || "none");
    this.proxyDuration.observe((entry.latencyMs ?? 0) / 1000, provider, entry.decision);
  }

  /**
   * Time one admission (performance.now(), not prom-client's timers; a `then` rather than one more async function:
   * this runs on every call).
   */
  timeAuthorization<T>(admit: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return timed(admit, () => this.authorizationDuration.observe((performance.now() - started) / 1000));
  }

  /** Time one upstream call: its outcome is the status class, or `error` when no response came. */
  timeUpstream<T extends { status: number }>(provider: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return timed(call, (response) => {
      const outcome = response === undefined ? "error" : (STATUS_CLASSES[Math.floor(response.status / 100)] ?? `${Math.floor(response.status / 100)}xx`);
      this.upstreamDuration.observe((performance.now() - started) / 1000, provider || "none", outcome);
    });
  }

  /** An OAuth refresh event (action "refresh"); other OAuth events are not counted here. */
  refresh(provider: string, decision: string, reason: string): void {
    const outcome = decision === "allow" ? "refreshed" : decision === "deny" || /reauth|invalid_grant|LOST/i.test(reason) ? "needs_reauth" : "failed";
    this.refreshes.inc({ provider: provider || "none", outcome });
  }

  refreshWait(holder: "this_broker" | "other_broker"): void {
    this.refreshWaits.inc({ holder });
  }

  poolEvent(event: CapabilityEvent): void {
    this.workerEvents.inc({ event: event.type });
  }

  approval(event: string): void {
    this.approvals.inc({ event });
  }

  auditWriteFailed(): void {
    this.auditWriteFailures.inc();
  }

  mongoCommandFailed(command: string): void {
    // Command names are the driver's fixed vocabulary; anything odd is folded so the label stays bounded.
    this.mongoErrors.inc({ command: /^[A-Za-z]{1,32}$/.test(command) ? command : "other" });
  }

  /** Gauges read at scrape time from the parts that own the numbers. */
  observe(sources: ScrapedSources): void {
    const registers = [this.registry];
    gauge(registers, "capvault_capability_workers", "Capability workers in the pool (including one being replaced).", () => sources.pool().workers);
    gauge(registers, "capvault_capability_workers_busy", "Capability workers running a job.", () => sources.pool().busy);
    gauge(registers, "capvault_capability_queue_depth", "Capability jobs waiting for a worker.", () => sources.pool().queued);
    monotonic(registers, "capvault_capability_worker_replacements_total", "Capability workers replaced (recycled, crashed, timed out or panicked).", () => sources.pool().replaced);
    monotonic(registers, "capvault_decision_cache_hits_total", "Authorizations answered from the decision cache (same token, request and second).", () => sources.decisionCache().hits);
    monotonic(registers, "capvault_decision_cache_misses_total", "Authorizations the capability workers computed.", () => sources.decisionCache().misses);
    gauge(registers, "capvault_capability_runtime_native", "1 when authorizations run on the native runtime (biscuit-auth through Node-API), 0 on the wasm worker pool.", () => (sources.native() ? 1 : 0));
    monotonic(registers, "capvault_native_authorizations_inline_total", "Native authorizations run on the event loop (tokens whose runs are short on average).", () => sources.native()?.inline ?? 0);
    monotonic(registers, "capvault_native_authorizations_offloaded_total", "Native authorizations run on libuv threads (first uses, heavy tokens).", () => sources.native()?.offloaded ?? 0);
    monotonic(registers, "capvault_native_authorization_failures_total", "Native authorizations that failed with an error (not a denial): bad token, runtime limits, panics.", () => sources.native()?.failed ?? 0);
    monotonic(registers, "capvault_native_token_cache_hits_total", "Native authorizations of a token already verified and kept.", () => sources.native()?.hits ?? 0);
    monotonic(registers, "capvault_native_token_cache_misses_total", "Native authorizations that verified their token first.", () => sources.native()?.misses ?? 0);
    gauge(registers, "capvault_native_tokens_cached", "Verified tokens the native runtime keeps.", () => sources.native()?.size ?? 0);
    gauge(registers, "capvault_audit_queue_depth", "Audit events reserved or waiting to be stored.", sources.auditDepth);
    gauge(registers, "capvault_revocation_view_age_seconds", "Age of this broker's view of the revocation list (since the start of its last successful poll).", () => sources.revocationAgeMs() / 1000);
  }

  /** The exposition text for a scrape. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Where the scrape-time gauges read from. */
export interface ScrapedSources {
  pool(): PoolStats;
  decisionCache(): { hits: number; misses: number };
  /** The native authorizer's counters, when authorizations run natively. */
  native(): Pick<NativeAuthorizer, "inline" | "offloaded" | "failed" | "hits" | "misses" | "size"> | undefined;
  auditDepth(): number;
  revocationAgeMs(): number;
}

function gauge(registers: Registry[], name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(read());
    },
  });
}

/** A counter kept elsewhere (a plain number that only grows), served as a Prometheus counter. */
function monotonic(registers: Registry[], name: string, help: string, read: () => number): void {
  let served = 0;
  new Counter({
    name,
    help,
    registers,
    collect() {
      const now = read();
      if (now > served) this.inc(now - served);
      served = Math.max(served, now);
    },
  });
}

/** Status class labels, written once. */
const STATUS_CLASSES: readonly string[] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

/**
 * `step()`, with `done` told its result (undefined when it failed) once it settles; a synchronous throw becomes a
 * rejection, as in an async function.
 */
function timed<T>(step: () => Promise<T>, done: (result: T | undefined) => void): Promise<T> {
  let running: Promise<T>;
  try {
    running = step();
  } catch (err) {
    running = Promise.reject(err);
  }
  return running.then(
    (result) => {
      done(result);
      return result;
    },
    (err: unknown) => {
      done(undefined);
      throw err;
    },
  );
}
