import type { ResolvedAccessToken } from "./refresher.js";

type Resolve = (tenant: string, connectionId: string, options?: { forceRefresh?: boolean; staleGeneration?: number; deadline?: number }) => Promise<ResolvedAccessToken>;

export interface AccessTokenCacheOptions {
  /** How long a resolved token is reused before the store is asked again (bounds how stale a disconnect may be). */
  ttlMs?: number;
  /** Never serve a cached token this close to its expiry (the refresher's lazy refresh takes over). */
  expirySkewMs?: number;
  maxEntries?: number;
  now?: () => number;
}

interface Entry {
  value: ResolvedAccessToken;
  until: number;
}

/**
 * Keeps resolved access tokens in this process's memory for a few seconds, so the Proxy hot path does not read and
 * decrypt the credential on every call. Refreshes still go through the refresher's cross-process single flight;
 * after an upstream 401 the caller passes the rejected generation so only one refresh happens.
 */
export class AccessTokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly expirySkewMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly resolve: Resolve,
    options: AccessTokenCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.expirySkewMs = options.expirySkewMs ?? 90_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** A usable access token for the connection. */
  async get(tenant: string, connectionId: string, deadline?: number): Promise<ResolvedAccessToken> {
    const key = `${tenant}\u0000${connectionId}`;
    const hit = this.entries.get(key);
    if (hit && hit.until > this.now()) return hit.value;
    const value = await this.resolve(tenant, connectionId, deadline ? { deadline } : {});
    this.put(key, value);
    return value;
  }

  /** Refresh after the upstream rejected `rejected` (at most one refresh across brokers for that generation). */
  async refresh(tenant: string, connectionId: string, rejected: ResolvedAccessToken, deadline?: number): Promise<ResolvedAccessToken> {
    const key = `${tenant}\u0000${connectionId}`;
    this.entries.delete(key);
    const value = await this.resolve(tenant, connectionId, { forceRefresh: true, staleGeneration: rejected.generation, ...(deadline ? { deadline } : {}) });
    this.put(key, value);
    return value;
  }

  /** Forget a connection's token (after Disconnect). */
  invalidate(tenant: string, connectionId: string): void {
    this.entries.delete(`${tenant}\u0000${connectionId}`);
  }

  private put(key: string, value: ResolvedAccessToken): void {
    const now = this.now();
    const until = Math.min(now + this.ttlMs, value.expiresAt ? value.expiresAt.getTime() - this.expirySkewMs : Infinity);
    if (until <= now) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, until });
  }
}
