import type { OAuthContext } from "./oauth-context.js";
import { errorName } from "./oauth-events.js";
import type { BackgroundJob } from "./sweeper.js";

/**
 * Delete what has expired: one-time states and their consumption markers, and leases (refresh leases and failure
 * markers) that expired more than `graceMs` ago. FerretDB has no TTL indexes, so this job replaces them; every
 * reader checks expiry explicitly anyway, so a late purge is harmless.
 */
export async function purgeExpired(ctx: OAuthContext, graceMs = 60_000): Promise<number> {
  const now = ctx.now();
  const states = await ctx.store.oauthStates.deleteExpired(new Date(now - graceMs));
  const leases = await ctx.store.leases.deleteExpired(new Date(now - graceMs));
  return states + leases;
}

/** Run {@link purgeExpired} every `intervalMs` (default 5 min). */
export function startPurgeJob(ctx: OAuthContext, intervalMs = 5 * 60_000): BackgroundJob {
  const runOnce = () => purgeExpired(ctx);
  const timer = setInterval(() => {
    runOnce().catch((err) => ctx.logger.warn({ err: errorName(err) }, "purge failed"));
  }, intervalMs);
  timer.unref();
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
    },
  };
}
