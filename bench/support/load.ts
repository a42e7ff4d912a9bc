/** A closed-loop load driver and the statistics bench/proxy.ts prints. */

/** One timed segment: every call's latency, the wall time, and failures. */
export interface Segment {
  calls: number;
  concurrency: number;
  /** Milliseconds, one per successful call, in completion order. */
  latencies: number[];
  seconds: number;
  errors: number;
  firstError?: string;
}

export interface Summary {
  p50: number;
  p99: number;
  callsPerSecond: number;
}

/**
 * Run `total` calls with `concurrency` callers, each starting its next call as soon as its last one ends. `call`
 * gets the call's index (0-based, in start order). `onProgress` is called after each completion with the number
 * completed so far. With `maxSeconds`, no call starts after that much time (`calls` then says how many ran).
 */
export async function drive(
  call: (index: number) => Promise<void>,
  total: number,
  concurrency: number,
  onProgress?: (done: number) => void,
  maxSeconds = Infinity,
): Promise<Segment> {
  const latencies: number[] = [];
  let started = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const lane = async () => {
    while (started < total && performance.now() - t0 < maxSeconds * 1000) {
      const i = started++;
      const s = performance.now();
      try {
        await call(i);
        latencies.push(performance.now() - s);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      done++;
      onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
  return { calls: started, concurrency, latencies, seconds: (performance.now() - t0) / 1000, errors, firstError };
}

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

export function summarize(s: Segment): Summary {
  const sorted = [...s.latencies].sort((a, b) => a - b);
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), callsPerSecond: s.latencies.length / s.seconds };
}
