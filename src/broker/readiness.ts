import type { Logger } from "../log/logger.js";

/** One thing the broker needs to serve: a name and a check that answers within its own bound. */
export interface ReadinessCheck {
  name: string;
  ready(): Promise<boolean> | boolean;
  /** What the log says about this check while it fails (no secret), e.g. the audit queue's depth. */
  detail?(): Record<string, unknown>;
}

/**
 * Health that says what the broker can do, not only that it runs: every `intervalMs` each check runs (a check that
 * takes longer than `timeoutMs` counts as failed), and the server is SERVING only while all pass. A failing database
 * turns health NOT_SERVING within about one interval, so load balancers move agents to a broker that can answer.
 */
export function monitorReadiness(options: {
  checks: ReadinessCheck[];
  setServing: (serving: boolean) => void;
  logger: Logger;
  intervalMs?: number;
  timeoutMs?: number;
}): { stop(): void } {
  const intervalMs = options.intervalMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 1500;
  let serving = true;
  let stopped = false;
  let running = false;
  let lastFailing = "";
  const details = (failing: string[]) =>
    Object.fromEntries(options.checks.filter((c) => c.detail && failing.includes(c.name)).map((c) => [c.name, c.detail!()]));
  const round = async () => {
    if (running || stopped) return;
    running = true;
    try {
      const results = await Promise.all(options.checks.map((c) => withTimeout(c, timeoutMs)));
      const failing = options.checks.filter((_, i) => !results[i]).map((c) => c.name);
      const next = failing.length === 0;
      if (stopped) return;
      if (next !== serving) {
        serving = next;
        options.setServing(next);
        if (next) options.logger.info("ready again: health SERVING");
        else options.logger.warn({ failing, ...details(failing) }, "not ready: health NOT_SERVING");
      } else if (!next && failing.join() !== lastFailing) {
        // Still not serving, for other reasons now (the database is back, the audit writer is still catching up…).
        options.logger.warn({ failing, ...details(failing) }, "still not ready: health NOT_SERVING");
      }
      lastFailing = failing.join();
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void round(), intervalMs);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

async function withTimeout(check: ReadinessCheck, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(() => check.ready()),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
