import { afterEach, describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { WorkerPool, type PoolEvent, type WorkerPoolOptions } from "../../src/capabilities/worker-pool.js";
import { expectReason } from "./fixtures.js";

const pools: WorkerPool[] = [];
function pool(options: WorkerPoolOptions = {}): WorkerPool {
  const p = new WorkerPool({ workers: 1, diagnostics: true, ...options });
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

const echo = (p: WorkerPool) => p.run({ kind: "diagnostic", action: "echo" });

describe("worker pool", () => {
  it("a worker killed mid-job: that job fails with a CapvaultError, the next job succeeds", async () => {
    const events: PoolEvent[] = [];
    const p = pool({ onEvent: (e) => events.push(e) });
    await echo(p);
    const err = await expectReason(p.run({ kind: "diagnostic", action: "exit" }), "CAPABILITY_RUNTIME_FAILED");
    expect(err).toBeInstanceOf(CapvaultError);
    await expect(echo(p)).resolves.toEqual({ ok: true });
    expect(p.stats()).toMatchObject({ crashed: 1, replaced: 1, started: 2, workers: 1 });
    expect(events.map((e) => e.type)).toEqual(["started", "crashed", "started"]);
  });

  it("a wasm panic (RuntimeError: unreachable) kills only that worker", async () => {
    const p = pool({ workers: 2 });
    await p.ready();
    const results = await Promise.allSettled([
      p.run({ kind: "diagnostic", action: "panic" }),
      echo(p),
      echo(p),
      echo(p),
    ]);
    expect(results[0]).toMatchObject({ status: "rejected", reason: expect.objectContaining({ reason: "CAPABILITY_RUNTIME_FAILED" }) });
    expect(results.slice(1).every((r) => r.status === "fulfilled")).toBe(true);
    await expect(echo(p)).resolves.toEqual({ ok: true });
    expect(p.stats().replaced).toBe(1);
  });

  it("a stuck job times out, its worker is replaced, the queue keeps moving", async () => {
    const p = pool({ jobTimeoutMs: 400 });
    await p.ready();
    const started = Date.now();
    const stuck = p.run({ kind: "diagnostic", action: "spin", ms: 10_000 });
    const queued = echo(p);
    await expectReason(stuck, "CAPABILITY_RUNTIME_FAILED");
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(queued).resolves.toEqual({ ok: true });
  });

  it("replaces a worker whose wasm memory passes the bound, without failing jobs", async () => {
    const events: PoolEvent[] = [];
    const p = pool({ maxWasmMemoryBytes: 1, onEvent: (e) => events.push(e) });
    for (let i = 0; i < 4; i++) {
      await expect(echo(p)).resolves.toEqual({ ok: true });
      await p.ready(); // the retiring worker serves until its replacement is up
    }
    expect(p.stats().replaced).toBe(4);
    expect(p.stats().workers).toBe(1);
    expect(p.stats().failed).toBe(0);
    expect(events.some((e) => e.type === "retired" && (e.memoryBytes ?? 0) > 1)).toBe(true);
  });

  it("replaces a worker after a number of jobs", async () => {
    const p = pool({ maxJobsPerWorker: 3 });
    for (let i = 0; i < 9; i++) {
      await echo(p);
      await p.ready();
    }
    expect(p.stats().replaced).toBe(3);
    expect(p.stats().completed).toBe(9);
  });

  it("runs jobs in parallel on several workers", async () => {
    const p = pool({ workers: 2 });
    await p.ready();
    const both = Promise.all([p.run({ kind: "diagnostic", action: "spin", ms: 400 }), p.run({ kind: "diagnostic", action: "spin", ms: 400 })]);
    await new Promise((r) => setTimeout(r, 100));
    expect(p.stats()).toMatchObject({ busy: 2, queued: 0 });
    await both;
  });

  it("refuses diagnostics unless enabled", async () => {
    const p = pool({ diagnostics: false });
    await expectReason(p.run({ kind: "diagnostic", action: "exit" }), "INVALID_REQUEST");
    expect(p.stats().crashed).toBe(0);
  });

  it("close() fails queued and in-flight jobs with SHUTTING_DOWN, later jobs too", async () => {
    const p = pool();
    await p.ready();
    const inflight = p.run({ kind: "diagnostic", action: "spin", ms: 2_000 });
    const queued = echo(p);
    const outcomes = Promise.all([expectReason(inflight, "SHUTTING_DOWN"), expectReason(queued, "SHUTTING_DOWN")]);
    await p.close();
    await outcomes;
    await expectReason(echo(p), "SHUTTING_DOWN");
  });

  it("a job that waits in the queue longer than its bound is refused with CAPABILITY_RUNTIME_BUSY and never runs", async () => {
    const p = pool({ maxQueueWaitMs: 300, jobTimeoutMs: 10_000 });
    await p.ready();
    const busy = p.run({ kind: "diagnostic", action: "spin", ms: 1500 });
    const waiting = echo(p);
    const started = performance.now();
    const err = await expectReason(waiting, "CAPABILITY_RUNTIME_BUSY");
    expect(err.code).toBe(14); // UNAVAILABLE
    // Refused while the only worker was still busy: it did not wait for a worker, and it left the queue.
    expect(performance.now() - started).toBeLessThan(1200);
    expect(p.stats()).toMatchObject({ busy: 1, queued: 0 });
    await busy;
    await new Promise((r) => setTimeout(r, 50));
    expect(p.stats().completed).toBe(1); // the spin only: the refused job never ran
    await expect(echo(p)).resolves.toEqual({ ok: true });
  });

  it("a queued job whose caller's AbortSignal fired is dropped without running (CANCELLED); a running one completes", async () => {
    const p = pool({ jobTimeoutMs: 10_000 });
    await p.ready();
    const busy = p.run({ kind: "diagnostic", action: "spin", ms: 1000 });
    const caller = new AbortController();
    const queued = p.run({ kind: "diagnostic", action: "echo" }, 0, { signal: caller.signal });
    const other = echo(p);
    expect(p.stats().queued).toBe(2);
    setTimeout(() => caller.abort(), 100);
    await expectReason(queued, "CANCELLED");
    expect(p.stats()).toMatchObject({ busy: 1, queued: 1 }); // dropped at once, the other job keeps its place
    // Already aborted: refused before queueing.
    await expectReason(p.run({ kind: "diagnostic", action: "echo" }, 0, { signal: AbortSignal.abort() }), "CANCELLED");
    // Aborting a job that already runs does not fail it.
    const late = new AbortController();
    await busy;
    await expect(other).resolves.toEqual({ ok: true });
    const running = p.run({ kind: "diagnostic", action: "spin", ms: 200 }, 0, { signal: late.signal });
    await new Promise((r) => setTimeout(r, 50));
    late.abort();
    await expect(running).resolves.toBeDefined();
    expect(p.stats().completed).toBe(3); // busy, other, running: never the cancelled ones
  });

  it("refuses work beyond the queue bound", async () => {
    const p = pool({ maxQueueLength: 2 });
    const jobs = [echo(p), echo(p)];
    await expectReason(echo(p), "CAPABILITY_RUNTIME_FAILED");
    await Promise.all(jobs);
  });
});
