import type { Store } from "../store/store.js";
import type { Vault } from "../vault/vault.js";
import type { OAuthEventSink, OAuthLogger } from "./oauth-events.js";
import type { ProviderCatalog } from "./provider-catalog.js";
import type { ProviderClients } from "./provider-client.js";

/** Timings of the OAuth module (all in milliseconds). */
export interface OAuthTimings {
  /** How long an authorization request (state) stays valid. Default 10 min. */
  stateTtlMs: number;
  /** Refresh when the access token expires within this window. Default 60 s. */
  refreshSkewMs: number;
  /** Lifetime of a refresh lease; after it another broker may take over. Default 20 s. */
  refreshLeaseMs: number;
  /** Timeout of one token-endpoint request; kept well below the lease lifetime. Default 8 s. */
  tokenRequestTimeoutMs: number;
  /** How long resolveAccessToken waits for another broker's refresh, unless the caller's deadline is shorter. Default 30 s. */
  refreshWaitMs: number;
  /** After a failed refresh (provider down), callers fail fast for this long before the next attempt. Default 5 s. */
  refreshFailureBackoffMs: number;
  /** Extra time granted past a lease's expiry before taking over (clock skew between brokers). Default 1 s. */
  leaseTakeoverGraceMs: number;
  /** Timeout of revocation and account-lookup requests. Default 5 s. */
  providerRequestTimeoutMs: number;
  /**
   * How long the evidence of a refresh whose answer may have been lost (a "refresh sent" marker without a stored
   * result) and the "lost in flight" mark of a dead connection are kept. Default 30 days.
   */
  lostRefreshEvidenceMs: number;
}

export const DEFAULT_TIMINGS: OAuthTimings = {
  stateTtlMs: 10 * 60_000,
  refreshSkewMs: 60_000,
  refreshLeaseMs: 20_000,
  tokenRequestTimeoutMs: 8_000,
  refreshWaitMs: 30_000,
  refreshFailureBackoffMs: 5_000,
  leaseTakeoverGraceMs: 1_000,
  providerRequestTimeoutMs: 5_000,
  lostRefreshEvidenceMs: 30 * 24 * 3600_000,
};

/** What every part of src/oauth shares: storage, the vault, providers, configuration, clock, audit and logs. */
export interface OAuthContext {
  store: Store;
  vault: Vault;
  catalog: ProviderCatalog;
  clients: ProviderClients;
  /** The exact redirect URI registered at every provider; the callback server serves its path. */
  redirectUri: string;
  timings: OAuthTimings;
  /** This broker process's id, written into the leases it takes. */
  holderId: string;
  now(): number;
  onEvent?: OAuthEventSink;
  /** A call joined a refresh already in flight (in this broker, or another broker's lease) instead of sending one. */
  onRefreshWait?: (holder: "this_broker" | "other_broker") => void;
  logger: OAuthLogger;
}
