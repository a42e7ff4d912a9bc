import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, extname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { CapvaultError } from "../errors/capvault-error.js";
import type { Job, JobResults, WireError, WorkerInit, WorkerReply } from "./protocol.js";

/** Options of the capability worker pool. */
export interface WorkerPoolOptions {
  /** Number of workers (default min(2, available cores)). */
  workers?: number;
  /** A job running longer than this kills its worker and fails with CAPABILITY_RUNTIME_FAILED (default 5 s). */
  jobTimeoutMs?: number;
  /** Replace a worker once its wasm memory grows past this many bytes (default 16 MiB: biscuit-wasm never returns memory, so this bound is the broker's RSS sawtooth; bench/dev-rss.ts). */
  maxWasmMemoryBytes?: number;
  /** Replace a worker after this many jobs (default 50,000). */
  maxJobsPerWorker?: number;
  /** Jobs waiting beyond this are refused with CAPABILITY_RUNTIME_FAILED (default 10,000). */
  maxQueueLength?: number;
  /** A job that waited this long in the queue without a worker is refused with CAPABILITY_RUNTIME_BUSY (default 5 s). */
  maxQueueWaitMs?: number;
  /** Parsed tokens cached per worker (default 128; a parsed token holds some 40-120 KB of wasm memory). */
  tokenCacheSize?: number;
  /** Allow fault-injection jobs (tests only). */
  diagnostics?: boolean;
  /** Observe worker lifecycle events (for logs and metrics). */
  onEvent?: (event: PoolEvent) => void;
}

/** A worker lifecycle event. */
export interface PoolEvent {
  type: "started" | "retired" | "crashed" | "timeout" | "panic" | "start-failed";
  worker: number;
  jobs?: number;
  memoryBytes?: number;
  detail?: string;
}

/** Counters and current state, for metrics and tests. */
export interface PoolStats {
  workers: number;
  ready: number;
  busy: number;
  queued: number;
  completed: number;
  failed: number;
  started: number;
  replaced: number;
  crashed: number;
  memoryBytes: number[];
}

interface Pending {
  id: number;
  job: Job;
  affinity: number;
  resolve(value: unknown): void;
  reject(err: CapvaultError): void;
  timer?: NodeJS.Timeout;
  /** While queued: the wait bound's timer and the caller's abort listener (both removed when it leaves the queue). */
  waitTimer?: NodeJS.Timeout;
  unlisten?: () => void;
}

/** Per-call options of {@link WorkerPool.run}. */
export interface RunOptions {
  /** The caller's cancellation: a job still queued when it fires is dropped (never run) with CANCELLED. */
  signal?: AbortSignal;
}

interface Slot {
  id: number;
  worker: Worker;
  ready: boolean;
  dead: boolean;
  retiring: boolean;
  replacement?: Slot;
  pending?: Pending;
  jobs: number;
  memoryBytes: number;
}

const DEFAULTS = {
  jobTimeoutMs: 5_000,
  maxWasmMemoryBytes: 16 * 1024 * 1024,
  maxJobsPerWorker: 50_000,
  maxQueueLength: 10_000,
  maxQueueWaitMs: 5_000,
  tokenCacheSize: 128,
};

/**
 * Where the worker entry lives: next to this module. From compiled JS (dist/) it is started directly; from TypeScript
 * source (vitest, tsx) it is started through a tiny bootstrap that registers tsx inside the worker (Node 20 ignores
 * `--import` in worker execArgv), so no node flags are needed anywhere.
 */
function workerUrl(): URL {
  const here = fileURLToPath(import.meta.url);
  const ext = extname(here);
  const entry = join(dirname(here), "worker", `entry${ext}`);
  if (ext !== ".ts") return pathToFileURL(entry);
  const cjs = createRequire(import.meta.url).resolve("tsx/esm/api");
  const mjs = cjs.replace(/\.cjs$/, ".mjs");
  const api = pathToFileURL(existsSync(mjs) ? mjs : cjs).href;
  const source =
    `import { tsImport } from ${JSON.stringify(api)};\n` +
    `await tsImport(${JSON.stringify(pathToFileURL(entry).href)}, ${JSON.stringify(import.meta.url)});\n`;
  return new URL(`data:text/javascript,${encodeURIComponent(source)}`);
}

function toError(wire: WireError): CapvaultError {
  return new CapvaultError(wire.reason, wire.message, {
    ...(wire.metadata ? { metadata: wire.metadata } : {}),
    ...(wire.detail ? { cause: new Error(wire.detail) } : {}),
  });
}

/**
 * A pool of worker threads that run all Biscuit work off the event loop. One job per worker at a time, FIFO queue,
 * a timeout per job. Workers are replaced when their wasm memory passes a bound or after a number of jobs (the
 * binding leaks a few KB per operation and never returns memory), and when they crash, panic or time out: only the
 * job in flight fails (CAPABILITY_RUNTIME_FAILED) and the pool keeps serving.
 */
export class WorkerPool {
  private readonly options: Required<Omit<WorkerPoolOptions, "onEvent">> & Pick<WorkerPoolOptions, "onEvent">;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly url = workerUrl();
  private module?: WebAssembly.Module;
  private closed = false;
  private nextJob = 1;
  private nextWorker = 1;
  private startFailures = 0;
  private respawnTimer?: NodeJS.Timeout;
  private counters = { completed: 0, failed: 0, started: 0, replaced: 0, crashed: 0 };

  constructor(options: WorkerPoolOptions = {}) {
    this.options = {
      workers: Math.max(1, options.workers ?? Math.min(2, availableParallelism())),
      jobTimeoutMs: options.jobTimeoutMs ?? DEFAULTS.jobTimeoutMs,
      maxWasmMemoryBytes: options.maxWasmMemoryBytes ?? DEFAULTS.maxWasmMemoryBytes,
      maxJobsPerWorker: options.maxJobsPerWorker ?? DEFAULTS.maxJobsPerWorker,
      maxQueueLength: options.maxQueueLength ?? DEFAULTS.maxQueueLength,
      maxQueueWaitMs: options.maxQueueWaitMs ?? DEFAULTS.maxQueueWaitMs,
      tokenCacheSize: options.tokenCacheSize ?? DEFAULTS.tokenCacheSize,
      diagnostics: options.diagnostics ?? false,
      onEvent: options.onEvent,
    };
    for (let i = 0; i < this.options.workers; i++) this.slots.push(this.spawn());
  }

  /**
   * Run one job. `affinity` (e.g. derived from a token hash) prefers the same worker for the same token, so its parse
   * cache hits. A job waits in the queue at most `maxQueueWaitMs` (then CAPABILITY_RUNTIME_BUSY), and is dropped
   * without running when `options.signal` fires while it waits (CANCELLED). Rejects with a CapvaultError.
   */
  run<K extends Job["kind"]>(job: Extract<Job, { kind: K }>, affinity = 0, options: RunOptions = {}): Promise<JobResults[K]> {
    if (this.closed) return Promise.reject(new CapvaultError("SHUTTING_DOWN"));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(new CapvaultError("CANCELLED"));
    if (this.queue.length >= this.options.maxQueueLength) {
      return Promise.reject(new CapvaultError("CAPABILITY_RUNTIME_FAILED", "the capability runtime is overloaded; retry"));
    }
    return new Promise<JobResults[K]>((resolve, reject) => {
      const pending: Pending = { id: this.nextJob++, job, affinity, resolve: resolve as (v: unknown) => void, reject };
      pending.waitTimer = setTimeout(
        () => this.dropQueued(pending, new CapvaultError("CAPABILITY_RUNTIME_BUSY", `the capability job waited ${this.options.maxQueueWaitMs} ms for a worker; retry`)),
        this.options.maxQueueWaitMs,
      );
      pending.waitTimer.unref();
      if (signal) {
        const onAbort = () => this.dropQueued(pending, new CapvaultError("CANCELLED"));
        signal.addEventListener("abort", onAbort, { once: true });
        pending.unlisten = () => signal.removeEventListener("abort", onAbort);
      }
      this.queue.push(pending);
      this.pump();
    });
  }

  /** Wait until every worker has started (useful before benchmarks). */
  async ready(): Promise<void> {
    while (!this.closed && this.slots.some((s) => !s.ready)) await new Promise((r) => setTimeout(r, 10));
  }

  /** Current state and counters. */
  stats(): PoolStats {
    return {
      workers: this.slots.length,
      ready: this.slots.filter((s) => s.ready).length,
      busy: this.slots.filter((s) => s.pending).length,
      queued: this.queue.length,
      ...this.counters,
      memoryBytes: this.slots.map((s) => s.memoryBytes),
    };
  }

  /** Stop: queued and in-flight jobs fail with SHUTTING_DOWN; workers are terminated. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.respawnTimer);
    for (const p of this.queue.splice(0)) {
      this.leaveQueue(p);
      p.reject(new CapvaultError("SHUTTING_DOWN"));
    }
    const slots = this.slots.splice(0);
    await Promise.all(
      slots.map((s) => {
        s.dead = true;
        if (s.pending) this.settle(s, (p) => p.reject(new CapvaultError("SHUTTING_DOWN")));
        return s.worker.terminate().catch(() => undefined);
      }),
    );
  }

  /** Take a job out of the queue (it never runs) and fail it; nothing happens if it already left the queue. */
  private dropQueued(pending: Pending, err: CapvaultError): void {
    const index = this.queue.indexOf(pending);
    if (index < 0) return;
    this.queue.splice(index, 1);
    this.leaveQueue(pending);
    pending.reject(err);
    this.updateRefs();
  }

  /** A job leaves the queue (to run, or to fail): its wait timer and abort listener go. */
  private leaveQueue(pending: Pending): void {
    clearTimeout(pending.waitTimer);
    pending.unlisten?.();
    pending.waitTimer = undefined;
    pending.unlisten = undefined;
  }

  private emit(event: PoolEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // observers must not break the pool
    }
  }

  private spawn(): Slot {
    const init: WorkerInit = {
      ...(this.module ? { module: this.module } : {}),
      tokenCacheSize: this.options.tokenCacheSize,
      diagnostics: this.options.diagnostics,
    };
    // stdout: true keeps anything a worker prints off the broker's stdout (forwarded to stderr instead).
    const worker = new Worker(this.url, { workerData: init, stdout: true });
    const slot: Slot = { id: this.nextWorker++, worker, ready: false, dead: false, retiring: false, jobs: 0, memoryBytes: 0 };
    this.counters.started++;
    worker.stdout.on("data", (chunk: Buffer) => process.stderr.write(chunk));
    worker.on("message", (msg: WorkerReply) => this.onMessage(slot, msg));
    worker.on("error", (err) => this.onDeath(slot, `error: ${err.message}`));
    worker.on("exit", (code) => this.onDeath(slot, `exit code ${code}`));
    worker.unref();
    return slot;
  }

  private onMessage(slot: Slot, msg: WorkerReply): void {
    if (slot.dead) return;
    if (msg.type === "ready") {
      slot.ready = true;
      slot.memoryBytes = msg.memoryBytes;
      this.startFailures = 0;
      if (msg.module && !this.module) this.module = msg.module;
      this.emit({ type: "started", worker: slot.id, memoryBytes: msg.memoryBytes });
      this.reapRetired();
      this.pump();
      return;
    }
    const pending = slot.pending;
    if (!pending || pending.id !== msg.id) return;
    slot.jobs++;
    slot.memoryBytes = msg.memoryBytes;
    if (msg.ok) {
      this.counters.completed++;
      this.settle(slot, (p) => p.resolve(msg.value));
    } else {
      this.counters.failed++;
      this.settle(slot, (p) => p.reject(toError(msg.error)));
    }
    if (!msg.ok && msg.fatal) {
      this.emit({ type: "panic", worker: slot.id, jobs: slot.jobs, detail: msg.error.detail });
      this.kill(slot);
    } else if (!slot.retiring && (slot.memoryBytes > this.options.maxWasmMemoryBytes || slot.jobs >= this.options.maxJobsPerWorker)) {
      this.retire(slot);
    }
    this.reapRetired();
    this.pump();
  }

  /** Detach the pending job of `slot` and settle it. */
  private settle(slot: Slot, how: (p: Pending) => void): void {
    const p = slot.pending;
    if (!p) return;
    slot.pending = undefined;
    clearTimeout(p.timer);
    how(p);
    this.updateRefs();
  }

  private onDeath(slot: Slot, detail: string): void {
    if (slot.dead) return;
    const wasReady = slot.ready;
    this.emit({ type: wasReady ? "crashed" : "start-failed", worker: slot.id, jobs: slot.jobs, detail });
    if (!wasReady) this.startFailures++;
    this.counters.crashed++;
    this.kill(slot, "the capability worker stopped unexpectedly; retry");
  }

  /** Remove a slot, fail its job, terminate it, and start a replacement. */
  private kill(slot: Slot, message = "the capability runtime failed; retry"): void {
    if (slot.dead) return;
    slot.dead = true;
    if (slot.pending) {
      this.counters.failed++;
      this.settle(slot, (p) => p.reject(new CapvaultError("CAPABILITY_RUNTIME_FAILED", message)));
    }
    const index = this.slots.indexOf(slot);
    if (index >= 0) this.slots.splice(index, 1);
    void slot.worker.terminate().catch(() => undefined);
    if (this.closed) return;
    if (slot.retiring && slot.replacement && !slot.replacement.dead) return; // already replaced
    this.counters.replaced++;
    if (this.startFailures >= 3) {
      // Workers cannot start (e.g. the wasm file is missing): fail what waits, retry later with backoff.
      for (const p of this.queue.splice(0)) {
        this.leaveQueue(p);
        p.reject(new CapvaultError("CAPABILITY_RUNTIME_FAILED", "capability workers cannot start"));
      }
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(5, this.startFailures - 3));
      this.respawnTimer = setTimeout(() => !this.closed && (this.slots.push(this.spawn()), this.pump()), delay);
      this.respawnTimer.unref();
      return;
    }
    this.slots.push(this.spawn());
    this.pump();
  }

  /** Start a replacement now; the old worker keeps serving until the replacement is ready, then is terminated. */
  private retire(slot: Slot): void {
    slot.retiring = true;
    this.emit({ type: "retired", worker: slot.id, jobs: slot.jobs, memoryBytes: slot.memoryBytes });
    this.counters.replaced++;
    slot.replacement = this.spawn();
    this.slots.push(slot.replacement);
  }

  private reapRetired(): void {
    for (const slot of [...this.slots]) {
      if (slot.retiring && !slot.pending && (slot.replacement?.ready || slot.replacement?.dead)) {
        slot.dead = true;
        this.slots.splice(this.slots.indexOf(slot), 1);
        void slot.worker.terminate().catch(() => undefined);
      }
    }
  }

  private eligible(slot: Slot, fresh: number): boolean {
    return slot.ready && !slot.dead && !slot.pending && (!slot.retiring || fresh === 0);
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const fresh = this.slots.filter((s) => s.ready && !s.retiring && !s.dead).length;
      const preferred = this.slots[this.queue[0].affinity % Math.max(1, this.slots.length)];
      const slot = preferred && this.eligible(preferred, fresh) ? preferred : this.slots.find((s) => this.eligible(s, fresh));
      if (!slot) break;
      const pending = this.queue.shift()!;
      this.leaveQueue(pending);
      slot.pending = pending;
      pending.timer = setTimeout(() => {
        this.emit({ type: "timeout", worker: slot.id, jobs: slot.jobs, detail: pending.job.kind });
        this.kill(slot, "the capability job timed out; retry");
      }, this.options.jobTimeoutMs);
      slot.worker.postMessage({ id: pending.id, job: pending.job });
    }
    this.updateRefs();
  }

  /** Keep the process alive only while there is work; an idle pool never blocks exit. */
  private updateRefs(): void {
    const busy = this.queue.length > 0 || this.slots.some((s) => s.pending);
    for (const s of this.slots) {
      if (busy) s.worker.ref();
      else s.worker.unref();
    }
  }
}
