import type { OAuthContext } from "./oauth-context.js";
import { errorName } from "./oauth-events.js";
import type { Refresher } from "./refresher.js";

export interface SweeperOptions {
  /** How often to look for connections expiring soon. Default 60 s. */
  intervalMs?: number;
  /** Refresh connections whose access token expires within this window. Default 5 min. */
  horizonMs?: number;
  /** Refreshes found in one pass are spread at random over this window (jitter), so brokers don't stampede. Default 30 s. */
  spreadMs?: number;
  /** At most this many credentials per pass. Default 500. */
  batch?: number;
}

/** A running background job. */
export interface BackgroundJob {
  stop(): Promise<void>;
  /** Run one pass now (tests, admin). */
  runOnce(): Promise<number>;
}

/**
 * Proactive refresh: every `intervalMs` find credentials expiring within `horizonMs` and refresh each one at a random
 * moment within `spreadMs`, through the same cross-process single flight as lazy refresh (so several brokers
 * sweeping at once still cause one refresh per expiry). Superseded generations seen on the way are purged.
 */
export function startRefreshSweeper(ctx: OAuthContext, refresher: Refresher, options: SweeperOptions = {}): BackgroundJob {
  const intervalMs = options.intervalMs ?? 60_000;
  const horizonMs = options.horizonMs ?? 5 * 60_000;
  const spreadMs = options.spreadMs ?? 30_000;
  const batch = options.batch ?? 500;
  const pending = new Set<Promise<unknown>>();
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  async function runOnce(): Promise<number> {
    const due = await ctx.store.credentials.listExpiringBefore(new Date(ctx.now() + horizonMs), batch);
    const seen = new Set<string>();
    let scheduled = 0;
    for (const c of due) {
      const key = `${c.tenant}\u0000${c.connection}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const latest = await ctx.store.credentials.latest(c.tenant, c.connection);
      if (!latest) continue;
      if (latest.generation > c.generation) {
        await ctx.store.credentials.deleteBelow(c.tenant, c.connection, latest.generation).catch(() => 0);
        if (latest.kind !== "tokens") continue;
      }
      scheduled++;
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (stopped) return;
        const p = refresher
          .refreshIfDue(c.tenant, c.connection, horizonMs)
          .catch((err) => ctx.logger.warn({ connection: c.connection, err: errorName(err) }, "sweeper refresh failed"))
          .finally(() => pending.delete(p));
        pending.add(p);
      }, Math.floor(Math.random() * spreadMs));
      timers.add(timer);
    }
    return scheduled;
  }

  const interval = setInterval(() => {
    runOnce().then(
      (scheduled) => scheduled > 0 && ctx.logger.info({ scheduled, spreadMs }, "sweeper pass: refreshes scheduled"),
      (err) => ctx.logger.warn({ err: errorName(err) }, "sweeper pass failed"),
    );
  }, intervalMs);
  interval.unref();

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearInterval(interval);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.allSettled([...pending]);
    },
  };
}
