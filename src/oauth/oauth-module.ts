import { randomBytes } from "node:crypto";
import { importConnections, type ImportRecord, type ImportSummary } from "./import-connections.js";
import { hostname } from "node:os";
import { CapvaultError } from "../errors/capvault-error.js";
import type { DisconnectFailureRecord } from "../store/disconnect-failure-repository.js";
import type { ConnectionRecord } from "../store/records.js";
import type { Store } from "../store/store.js";
import type { Vault } from "../vault/vault.js";
import { completeCallback, type CallbackOutcome } from "./callback.js";
import type { CallbackHandler } from "./callback-server.js";
import { beginConnect, type BeginConnectInput, type BeginConnectResult } from "./connect.js";
import { disconnect, type DisconnectResult } from "./disconnect.js";
import { checkEndpointUrl } from "./endpoint-policy.js";
import { DEFAULT_TIMINGS, type OAuthContext, type OAuthTimings } from "./oauth-context.js";
import { silentLogger, type OAuthEventSink, type OAuthLogger } from "./oauth-events.js";
import { loadProviderCatalog, type ProviderCatalog, type ProviderConfig, type ProviderOverride } from "./provider-catalog.js";
import { ProviderClients, type ClientCredentials } from "./provider-client.js";
import { purgeExpired, startPurgeJob } from "./purge.js";
import { Refresher, type ResolveOptions, type ResolvedAccessToken } from "./refresher.js";
import { startRefreshSweeper, type BackgroundJob, type SweeperOptions } from "./sweeper.js";

/** The OAuth section of capvault's configuration. */
export interface OAuthConfig {
  /**
   * The exact redirect URI registered at every provider, as the browser reaches the callback server.
   * https, or http on loopback. Default "http://127.0.0.1:8080/oauth/callback".
   */
  redirectUri?: string;
  /** Folder of provider files; default providers/ of this package. */
  catalogDir?: string;
  /** Per-provider endpoint overrides. */
  providerOverrides?: Record<string, ProviderOverride>;
  /** Allow http:// provider endpoints on loopback (tests, local development). */
  allowInsecureLoopback?: boolean;
  /** Client credentials by provider id; otherwise read from the env variables each catalog entry names. */
  clients?: Record<string, ClientCredentials>;
  /** Environment to read client credentials from; default process.env. */
  env?: Record<string, string | undefined>;
  timings?: Partial<OAuthTimings>;
}

export interface CreateOAuthModuleOptions {
  config?: OAuthConfig;
  store: Store;
  vault: Vault;
  /** Audit sink: connect, refresh and disconnect decisions (never a secret). */
  onEvent?: OAuthEventSink;
  /** Observe single-flight waits (metrics). */
  onRefreshWait?: OAuthContext["onRefreshWait"];
  logger?: OAuthLogger;
  /** An already loaded catalog (else loaded from `config.catalogDir`). */
  catalog?: ProviderCatalog;
  /** Clock, ms since the epoch (tests). */
  now?: () => number;
  /** This broker's id in leases; default `<hostname>:<pid>:<random>`. */
  holderId?: string;
}

/** Everything OAuth in capvault: connect, callback, refresh, disconnect, metadata, background jobs. */
export interface OAuthModule extends CallbackHandler {
  readonly catalog: ProviderCatalog;
  readonly redirectUri: string;
  /** Start connecting an account; see {@link beginConnect}. */
  beginConnect(input: BeginConnectInput): Promise<BeginConnectResult>;
  /** Complete an authorization response (the callback server calls this). */
  handleCallback(params: URLSearchParams): Promise<CallbackOutcome>;
  /** A usable access token for the Proxy; see {@link Refresher.resolveAccessToken}. Never send it to a client. */
  resolveAccessToken(tenant: string, connectionId: string, options?: ResolveOptions): Promise<ResolvedAccessToken>;
  /** Revoke at the provider (best effort) and always delete locally. */
  disconnect(tenant: string, connectionId: string): Promise<DisconnectResult>;
  /** Connection metadata (never a secret); CONNECTION_NOT_FOUND if absent. */
  getConnection(tenant: string, connectionId: string): Promise<ConnectionRecord>;
  listConnections(tenant: string, user?: string): Promise<ConnectionRecord[]>;
  listDisconnectFailures(tenant: string): Promise<DisconnectFailureRecord[]>;
  /** Import already-issued tokens into the vault; see {@link importConnections}. */
  importConnections(tenant: string, batches: AsyncIterable<ImportRecord[]>): Promise<ImportSummary>;
  /** A provider's catalog entry (the Proxy reads `api`). */
  provider(id: string): ProviderConfig;
  /** Start the proactive refresh sweeper. */
  startSweeper(options?: SweeperOptions): BackgroundJob;
  /** Start the purge job for expired states and leases. */
  startPurgeJob(intervalMs?: number): BackgroundJob;
  purgeExpired(): Promise<number>;
}

/**
 * Build the OAuth module from configuration, a Store and a Vault:
 *
 * ```ts
 * const oauth = await createOAuthModule({ config: cfg.oauth, store, vault, onEvent: audit, logger });
 * const callback = await startCallbackServer({ addr: "127.0.0.1:8080", oauth });
 * const sweeper = oauth.startSweeper();  const purge = oauth.startPurgeJob();
 * const { accessToken } = await oauth.resolveAccessToken(tenant, connectionId);
 * ```
 */
export async function createOAuthModule(options: CreateOAuthModuleOptions): Promise<OAuthModule> {
  const config = options.config ?? {};
  const redirectUri = config.redirectUri ?? "http://127.0.0.1:8080/oauth/callback";
  const checked = checkEndpointUrl(redirectUri, true, "oauth.redirectUri");
  if (checked.search) throw new CapvaultError("CONFIG_INVALID", "oauth.redirectUri must not contain a query");
  const catalog =
    options.catalog ??
    (await loadProviderCatalog({ dir: config.catalogDir, overrides: config.providerOverrides, allowInsecureLoopback: config.allowInsecureLoopback }));
  const timings = { ...DEFAULT_TIMINGS, ...config.timings };
  if (timings.tokenRequestTimeoutMs >= timings.refreshLeaseMs * 0.75) {
    throw new CapvaultError("CONFIG_INVALID", "oauth timings: tokenRequestTimeoutMs must be well below refreshLeaseMs (under 3/4 of it)");
  }
  const ctx: OAuthContext = {
    store: options.store,
    vault: options.vault,
    catalog,
    clients: new ProviderClients({ catalog, vault: options.vault, clients: config.clients, env: config.env }),
    redirectUri,
    timings,
    holderId: options.holderId ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`,
    now: options.now ?? Date.now,
    onEvent: options.onEvent,
    onRefreshWait: options.onRefreshWait,
    logger: options.logger ?? silentLogger,
  };
  const refresher = new Refresher(ctx);

  return {
    catalog,
    redirectUri,
    beginConnect: (input) => beginConnect(ctx, input),
    handleCallback: (params) => completeCallback(ctx, params, redirectUri),
    resolveAccessToken: (tenant, id, opts) => refresher.resolveAccessToken(tenant, id, opts),
    disconnect: (tenant, id) => disconnect(ctx, tenant, id),
    async getConnection(tenant, id) {
      const c = await ctx.store.connections.get(tenant, id);
      if (!c) throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: id } });
      return c;
    },
    listConnections: (tenant, user) => ctx.store.connections.list(tenant, user || undefined),
    listDisconnectFailures: (tenant) => ctx.store.disconnectFailures.list(tenant),
    importConnections: (tenant, batches) => importConnections(ctx, tenant, batches),
    provider: (id) => catalog.get(id),
    startSweeper: (opts) => startRefreshSweeper(ctx, refresher, opts),
    startPurgeJob: (ms) => startPurgeJob(ctx, ms),
    purgeExpired: () => purgeExpired(ctx),
  };
}
