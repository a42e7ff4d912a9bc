import * as oauth from "oauth4webapi";
import { CapvaultError } from "../errors/capvault-error.js";
import type { CredentialRecord } from "../store/credential-repository.js";
import type { LeaseRecord } from "../store/records.js";
import { insertGeneration, insertNeedsReauth, openAccessToken, openRefreshToken, tokenSetFrom } from "./credential-store.js";
import type { OAuthContext } from "./oauth-context.js";
import { emitEvent, errorName } from "./oauth-events.js";

/** Options of {@link Refresher.resolveAccessToken}. */
export interface ResolveOptions {
  /** Refresh even if the token looks valid (the upstream answered 401 invalid_token). */
  forceRefresh?: boolean;
  /**
   * With `forceRefresh`: the generation whose access token was refused. If a newer generation already exists (another
   * caller refreshed meanwhile), it is returned without another refresh, so N failing callers cause one refresh.
   */
  staleGeneration?: number;
  /** Absolute deadline (ms since the epoch) for the whole call, e.g. the gRPC call's deadline. */
  deadline?: number;
}

/** A usable access token. For the Proxy only: it never leaves the broker. */
export interface ResolvedAccessToken {
  accessToken: string;
  /** The credential generation it came from (pass it back as `staleGeneration` after a 401). */
  generation: number;
  expiresAt?: Date;
  scopes: string[];
  provider: string;
}

type WaitOutcome = { kind: "done"; record: CredentialRecord } | { kind: "failed" } | { kind: "next" };

/**
 * Lazy refresh with exactly one refresh per (connection, generation) across every broker process sharing the
 * database. See docs/oauth.md, "The refresh protocol":
 *
 * 1. Credentials are insert-once generations; the newest wins; a generation is never updated.
 * 2. To refresh generation g, a broker inserts the lease `refresh:<connection>:<g>:<attempt>`. The one insert that
 *    succeeds makes its broker the refresher; inside one process concurrent callers share one promise.
 * 3. The refresher re-reads the newest generation (its view may be stale), sends the refresh token once with a
 *    timeout that ends well before its lease does, and inserts generation g+1 (the new, or carried-over, refresh
 *    token) BEFORE anyone uses the new access token. invalid_grant inserts a secret-free "needs_reauth" generation.
 * 4. Everyone else polls the newest generation with backoff until g+1 appears, the lease (plus a grace) expires —
 *    then the next attempt's lease is taken — a failure marker appears, or their deadline passes.
 * 5. A refresh whose answer may have been lost (its holder died, or the answer never arrived) leaves a "sent" marker
 *    without a stored g+1. The next holder's request is then the one retry of the old refresh token; if it gets
 *    invalid_grant, the connection needs reauthorization with the reason REFRESH_LOST_IN_FLIGHT.
 */
export class Refresher {
  private readonly inflight = new Map<string, Promise<CredentialRecord>>();

  constructor(private readonly ctx: OAuthContext) {}

  /**
   * A usable access token for a connection, refreshed lazily when it expires within the skew window.
   * Errors (CapvaultError): CONNECTION_NOT_FOUND, CONNECTION_PENDING, CONNECTION_NEEDS_REAUTH, REFRESH_LOST_IN_FLIGHT
   * (needs reauthorization too), REFRESH_FAILED, REFRESH_BUSY (waited for another broker until the deadline),
   * PROVIDER_UNAVAILABLE.
   */
  async resolveAccessToken(tenant: string, connectionId: string, options: ResolveOptions = {}): Promise<ResolvedAccessToken> {
    return this.resolve(tenant, connectionId, options, this.ctx.timings.refreshSkewMs);
  }

  /**
   * Refresh a connection if its access token expires within `horizonMs` (the sweeper), through the same single
   * flight. Returns false when nothing was due.
   */
  async refreshIfDue(tenant: string, connectionId: string, horizonMs: number): Promise<boolean> {
    const before = await this.ctx.store.credentials.latest(tenant, connectionId);
    if (!before || before.kind !== "tokens" || !this.expiring(before, horizonMs)) return false;
    await this.resolve(tenant, connectionId, {}, horizonMs);
    return true;
  }

  private async resolve(tenant: string, connectionId: string, options: ResolveOptions, horizonMs: number): Promise<ResolvedAccessToken> {
    const { store } = this.ctx;
    const deadline = Math.min(options.deadline ?? Infinity, this.ctx.now() + this.ctx.timings.refreshWaitMs);
    const connection = await store.connections.get(tenant, connectionId);
    if (!connection) throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: connectionId } });
    if (connection.status === "needs_reauth") throw await this.deadGrant(connectionId);
    const current = await store.credentials.latest(tenant, connectionId);
    if (!current) {
      if (connection.status === "pending") throw new CapvaultError("CONNECTION_PENDING", undefined, { metadata: { connection: connectionId } });
      throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: connectionId } });
    }
    if (current.kind === "needs_reauth") throw await this.deadGrant(connectionId);
    const forced = options.forceRefresh === true && (options.staleGeneration === undefined || options.staleGeneration >= current.generation);
    if (!forced && !this.expiring(current, horizonMs)) return this.usable(current);

    const fresh = await withDeadline(this.refreshOnce(current), deadline, this.ctx.now);
    if (fresh.kind === "needs_reauth") throw await this.deadGrant(connectionId);
    return this.usable(fresh);
  }

  /** The error for a dead grant: REFRESH_LOST_IN_FLIGHT if it died of a lost refresh, else CONNECTION_NEEDS_REAUTH. */
  private async deadGrant(connectionId: string): Promise<CapvaultError> {
    const lost = await this.ctx.store.leases.get(lostKey(connectionId)).catch(() => undefined);
    const reason = lost ? "REFRESH_LOST_IN_FLIGHT" : "CONNECTION_NEEDS_REAUTH";
    return new CapvaultError(reason, undefined, { metadata: { connection: connectionId } });
  }

  /** Whether a generation's access token expires within `horizonMs` (at most half its lifetime, for short tokens). */
  private expiring(record: CredentialRecord, horizonMs: number): boolean {
    if (!record.expiresAt) return false;
    const lifetime = record.expiresAt.getTime() - record.createdAt.getTime();
    const skew = lifetime > 0 ? Math.min(horizonMs, lifetime / 2) : horizonMs;
    return record.expiresAt.getTime() - skew <= this.ctx.now();
  }

  private async usable(record: CredentialRecord): Promise<ResolvedAccessToken> {
    return {
      accessToken: await openAccessToken(this.ctx, record),
      generation: record.generation,
      expiresAt: record.expiresAt,
      scopes: record.scopes,
      provider: record.provider,
    };
  }

  /** In-process single flight over the cross-process one: one promise per (connection, generation). */
  private refreshOnce(current: CredentialRecord): Promise<CredentialRecord> {
    const key = `${current.tenant}\u0000${current.connection}\u0000${current.generation}`;
    let flight = this.inflight.get(key);
    if (!flight) {
      flight = this.crossProcessFlight(current).finally(() => this.inflight.delete(key));
      this.inflight.set(key, flight);
    } else this.ctx.onRefreshWait?.("this_broker");
    return flight;
  }

  private async crossProcessFlight(current: CredentialRecord): Promise<CredentialRecord> {
    const { leases } = this.ctx.store;
    const waitUntil = this.ctx.now() + this.ctx.timings.refreshWaitMs;
    for (let attempt = 0; ; attempt++) {
      const leaseKey = `refresh:${current.connection}:${current.generation}:${attempt}`;
      const failureKey = `refresh-failed:${current.connection}:${current.generation}:${attempt}`;
      const now = this.ctx.now();
      const expiresAt = now + this.ctx.timings.refreshLeaseMs;
      const won = await leases.insert({ key: leaseKey, holder: this.ctx.holderId, acquiredAt: new Date(now), expiresAt: new Date(expiresAt) });
      if (won) return this.refreshAsHolder(current, attempt, failureKey, expiresAt);
      this.ctx.onRefreshWait?.("other_broker");
      const outcome = await this.waitForHolder(current, leaseKey, failureKey, waitUntil);
      if (outcome.kind === "done") return outcome.record;
      if (outcome.kind === "failed") throw new CapvaultError("REFRESH_FAILED", undefined, { metadata: { connection: current.connection } });
    }
  }

  /** Poll the newest generation (with backoff and jitter) while another broker holds the lease. */
  private async waitForHolder(current: CredentialRecord, leaseKey: string, failureKey: string, waitUntil: number): Promise<WaitOutcome> {
    const { store, timings } = this.ctx;
    let delay = 15;
    for (;;) {
      const latest = await store.credentials.latest(current.tenant, current.connection);
      if (!latest) throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: current.connection } });
      if (latest.generation > current.generation) return { kind: "done", record: latest };
      const now = this.ctx.now();
      const failure = await store.leases.get(failureKey);
      if (failure) return failure.expiresAt.getTime() > now ? { kind: "failed" } : { kind: "next" };
      const lease = await store.leases.get(leaseKey);
      if (!lease || lease.expiresAt.getTime() + timings.leaseTakeoverGraceMs < now) return { kind: "next" };
      if (now >= waitUntil) throw new CapvaultError("REFRESH_BUSY", undefined, { metadata: { connection: current.connection } });
      const untilTakeover = lease.expiresAt.getTime() + timings.leaseTakeoverGraceMs - now + 5;
      await sleep(Math.max(1, Math.min(delay * (0.75 + Math.random() / 2), untilTakeover, waitUntil - now)));
      delay = Math.min(delay * 1.6, 400);
    }
  }

  /** We hold the lease for `current`: refresh once and persist generation g+1 before anyone uses it. */
  private async refreshAsHolder(current: CredentialRecord, attempt: number, failureKey: string, leaseExpiresAt: number): Promise<CredentialRecord> {
    const { store, timings } = this.ctx;
    const owner = { tenant: current.tenant, connection: current.connection, provider: current.provider };
    // Our view may be stale (a lease of an old generation can be purged and won again): re-read before sending.
    const latest = await store.credentials.latest(current.tenant, current.connection);
    if (!latest) throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: current.connection } });
    if (latest.generation !== current.generation) return latest;
    const next = current.generation + 1;

    const refreshToken = await openRefreshToken(this.ctx, current);
    if (!refreshToken) return this.markNeedsReauth(current, next, "no_refresh_token");

    // The request must be over well before the lease ends: a quarter of the lease is kept for persisting the result.
    const timeout = Math.min(timings.tokenRequestTimeoutMs, leaseExpiresAt - this.ctx.now() - timings.refreshLeaseMs / 4);
    if (timeout < 250) return this.recordFailure(current, failureKey, "lease_too_short");

    // "Sent" marker, written before the request: until g+1 is stored (or the provider is known not to have used the
    // refresh token) it is the evidence that a refresh token may have been spent and its answer lost. If it already
    // exists, an earlier holder of this very attempt (its lease since purged) sent a request with no stored result.
    const sentKey = sentMarkerKey(current, attempt);
    const sentAt = this.ctx.now();
    const ownMarker = await store.leases.insert({
      key: sentKey,
      holder: this.ctx.holderId,
      acquiredAt: new Date(sentAt),
      expiresAt: new Date(sentAt + timings.lostRefreshEvidenceMs),
    });

    let response: oauth.TokenEndpointResponse;
    try {
      const pc = await this.ctx.clients.get(current.provider);
      const res = await oauth.refreshTokenGrantRequest(pc.as, pc.client, pc.clientAuth, refreshToken, pc.http(timeout, true));
      response = await oauth.processRefreshTokenResponse(pc.as, pc.client, res);
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === "invalid_grant") {
        const lost = await this.lostRefreshes(current, attempt, ownMarker);
        if (lost.length === 0) return this.markNeedsReauth(current, next, "invalid_grant");
        // The previous refresh's answer was lost and this was the one retry of its refresh token: the provider
        // rotated it (and a strict provider has now ended the grant). Nothing can recover it; say so.
        this.ctx.logger.warn({ connection: current.connection, provider: current.provider, generation: current.generation }, "a refresh was lost in flight");
        return this.markNeedsReauth(current, next, "REFRESH_LOST_IN_FLIGHT");
      }
      // The provider answered with an OAuth error (not 5xx), or was never reached: it did not use the refresh token.
      if (ownMarker && ((err instanceof oauth.ResponseBodyError && err.status < 500) || neverSent(err))) {
        await store.leases.release(sentKey, this.ctx.holderId).catch(() => false);
      }
      this.ctx.logger.warn({ connection: current.connection, provider: current.provider, err: errorName(err) }, "oauth refresh failed");
      return this.recordFailure(current, failureKey, err instanceof oauth.ResponseBodyError ? err.error : "provider_unavailable");
    }

    // From the provider's answer until this insert, a rotated refresh token exists only in this process's memory:
    // store it before anything else (logging, events, metadata), retrying while our lease lasts.
    const tokens = tokenSetFrom(response, this.ctx.now(), current.scopes);
    const inserted = await retry(() => insertGeneration(this.ctx, owner, next, tokens, tokens.refreshToken ? undefined : current.refreshToken), leaseExpiresAt, this.ctx.now);

    const widened = tokens.scopes.filter((s) => !current.scopes.includes(s));
    if (widened.length) this.ctx.logger.warn({ connection: current.connection, widened }, "provider granted scopes that were not asked for on refresh");
    const stored = await store.credentials.latest(current.tenant, current.connection);
    if (!stored) throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: current.connection } });
    if (!inserted) {
      this.ctx.logger.error({ connection: current.connection, generation: next }, "refresh generation written by another broker while we held the lease");
      return stored;
    }
    // g+1 is stored: the sent markers of generation g are no longer evidence of anything.
    const lost = await this.lostRefreshes(current, attempt, ownMarker);
    const markers = [...lost, ...(ownMarker ? [{ key: sentKey, holder: this.ctx.holderId }] : [])];
    await Promise.all(markers.map((m) => store.leases.release(m.key, m.holder).catch(() => false)));
    const recovered = lost.length > 0;
    if (recovered) this.ctx.logger.warn({ connection: current.connection, provider: current.provider, generation: current.generation }, "refreshed after a refresh whose answer was lost");
    await store.connections
      .update(current.tenant, current.connection, { expiresAt: tokens.expiresAt, scopes: tokens.scopes, updatedAt: new Date(this.ctx.now()) })
      .catch((err) => this.ctx.logger.warn({ connection: current.connection, err: errorName(err) }, "connection metadata update failed"));
    await emitEvent(this.ctx.onEvent, this.ctx.logger, { ...event(current), decision: "allow", reason: recovered ? "refreshed_after_lost_refresh" : "refreshed" });
    return stored;
  }

  /**
   * The "sent" markers of refreshes of `current` before ours whose result was never stored: earlier attempts', and
   * (when our own marker could not be inserted) an earlier holder's of this same attempt number.
   */
  private async lostRefreshes(current: CredentialRecord, attempt: number, ownMarker: boolean): Promise<LeaseRecord[]> {
    const now = this.ctx.now();
    const keys = Array.from({ length: attempt }, (_, a) => sentMarkerKey(current, a));
    if (!ownMarker) keys.push(sentMarkerKey(current, attempt));
    const markers = await Promise.all(keys.map((k) => this.ctx.store.leases.get(k)));
    return markers.filter((m): m is LeaseRecord => m !== undefined && m.expiresAt.getTime() > now);
  }

  private async markNeedsReauth(current: CredentialRecord, next: number, reason: string): Promise<CredentialRecord> {
    const { store } = this.ctx;
    const owner = { tenant: current.tenant, connection: current.connection, provider: current.provider };
    if (reason === "REFRESH_LOST_IN_FLIGHT") {
      // Before the needs_reauth generation, so every broker that sees the dead grant also sees why it died.
      const now = this.ctx.now();
      await retry(() =>
        store.leases.insert({ key: lostKey(current.connection), holder: this.ctx.holderId, acquiredAt: new Date(now), expiresAt: new Date(now + this.ctx.timings.lostRefreshEvidenceMs) }),
      );
    }
    await retry(() => insertNeedsReauth(this.ctx, owner, next, current.scopes));
    await store.connections
      .update(current.tenant, current.connection, { status: "needs_reauth", updatedAt: new Date(this.ctx.now()) })
      .catch((err) => this.ctx.logger.warn({ connection: current.connection, err: errorName(err) }, "connection status update failed"));
    this.ctx.logger.warn({ connection: current.connection, provider: current.provider, reason }, "connection needs reauthorization");
    await emitEvent(this.ctx.onEvent, this.ctx.logger, { ...event(current), decision: "deny", reason });
    return (await store.credentials.latest(current.tenant, current.connection)) ?? { ...owner, generation: next, kind: "needs_reauth", scopes: [], createdAt: new Date() };
  }

  private async recordFailure(current: CredentialRecord, failureKey: string, reason: string): Promise<never> {
    const now = this.ctx.now();
    await this.ctx.store.leases
      .insert({ key: failureKey, holder: this.ctx.holderId, acquiredAt: new Date(now), expiresAt: new Date(now + this.ctx.timings.refreshFailureBackoffMs) })
      .catch(() => false);
    await emitEvent(this.ctx.onEvent, this.ctx.logger, { ...event(current), decision: "error", reason });
    throw new CapvaultError("REFRESH_FAILED", undefined, { metadata: { connection: current.connection } });
  }
}

const event = (c: CredentialRecord) => ({ action: "refresh" as const, tenant: c.tenant, connection: c.connection, provider: c.provider });

/** The marker a refresh holder writes just before sending the refresh token of `c` (attempt `attempt`). */
const sentMarkerKey = (c: CredentialRecord, attempt: number) => `refresh-sent:${c.connection}:${c.generation}:${attempt}`;

/** The marker saying a connection's grant died of a lost refresh (so its error says REFRESH_LOST_IN_FLIGHT). */
const lostKey = (connection: string) => `refresh-lost:${connection}`;

/** Whether a token request failed before anything reached the provider (connection refused, no such host). */
function neverSent(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Retry a store write: losing a rotated refresh token to a transient database error loses the grant. At least 5
 * tries; with `until` (the lease's end), more while there is time before it.
 */
async function retry<T>(fn: () => Promise<T>, until?: number, now: () => number = Date.now): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const delay = Math.min(50 * 2 ** i, 1000);
      if (i >= 4 && (until === undefined || now() + delay >= until)) throw err;
      await sleep(delay);
    }
  }
}

async function withDeadline<T>(p: Promise<T>, deadline: number, now: () => number): Promise<T> {
  if (!Number.isFinite(deadline)) return p;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CapvaultError("REFRESH_BUSY")), Math.max(0, deadline - now()));
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
