import { createServer } from "node:net";
import { resolve } from "node:path";
import { AuditLog } from "../audit/audit-log.js";
import { createAdminService } from "../rpc/admin-service.js";
import { CapabilityAuthority } from "../capabilities/capability-authority.js";
import { createCapabilityService } from "../rpc/capability-service.js";
import { Capabilities } from "../capabilities/capabilities.js";
import { RevocationPoller } from "../capabilities/revocation-poller.js";
import { RootKeyRing } from "../capabilities/root-key-ring.js";
import type { Config } from "../config/schema.js";
import { createConnectionService } from "../rpc/connection-service.js";
import type { Logger } from "../log/logger.js";
import { AccessTokenCache } from "../oauth/access-token-cache.js";
import { startCallbackServer } from "../oauth/callback-server.js";
import { approvalPages } from "../approvals/approval-page.js";
import { Approvals } from "../approvals/approvals.js";
import { ApprovalWebhook } from "../approvals/approval-webhook.js";
import { createApprovalService } from "../rpc/approval-service.js";
import { describeReadiness, providerReadiness, type ProviderReadiness } from "../oauth/provider-readiness.js";
import { createOAuthModule, type OAuthModule } from "../oauth/oauth-module.js";
import { ConnectionDirectory } from "../proxy/connection-directory.js";
import { UpstreamDispatchers } from "../proxy/fenced-dispatcher.js";
import type { ProxyDependencies } from "../proxy/proxy-pipeline.js";
import { createProxyService } from "../proxy/proxy-service.js";
import { CanonicalRequestMemo } from "../proxy/canonical-request-memo.js";
import { startGrpcServer, type GrpcServerHandle } from "../server/grpc-server.js";
import { monitorReadiness } from "./readiness.js";
import { setFailureReporter } from "../server/rpc-handlers.js";
import { openStore } from "../store/open-store.js";
import type { Store } from "../store/store.js";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import { BrokerMetrics } from "../observability/metrics.js";
import { startMetricsServer, type MetricsServer } from "../observability/metrics-server.js";
import { logPoolEvent } from "../observability/pool-event-log.js";
import { startTracing } from "../observability/tracing.js";
import { setAccessLog } from "../observability/access-log.js";
import { keyringConfigOf } from "../vault/keyring-config.js";
import { openLocalKeyring } from "../vault/local-keyring.js";
import { openVault } from "../vault/open-vault.js";

/** A running broker: its addresses and how to stop it. */
export interface Broker {
  grpcAddress: string;
  /** Base URL of the OAuth callback listener. */
  httpUrl: string;
  store: Store;
  oauth: OAuthModule;
  authority: CapabilityAuthority;
  capabilities: Capabilities;
  grpc: GrpcServerHandle;
  /** Where Prometheus scrapes this broker (metrics.addr), if it serves metrics. */
  metricsUrl?: string;
  /** Dev mode only: an operator capability for `config.devTenant`. */
  devOperatorToken?: string;
  /** Which catalog providers can connect accounts (client id and secret configured), and what the others miss. */
  providers: ProviderReadiness[];
  /** Graceful stop: new calls refused, in-flight calls finish (up to the grace period), resources closed. */
  stop(): Promise<void>;
}

/** How a broker is started besides its configuration (the CLI and tests). */
export interface BrokerOptions {
  /** Send spans to this exporter (tests: the SDK's InMemorySpanExporter) instead of OTLP; turns tracing on. */
  spanExporter?: SpanExporter;
  /** Allow fault-injection jobs in the capability workers (tests only). */
  workerDiagnostics?: boolean;
  /** metrics.addr is a default (`capvault dev`): if its port is taken, serve on a free port instead of failing. */
  metricsPortIsDefault?: boolean;
}

/** The composition root: storage, vault, capabilities, OAuth, the Proxy pipeline, then the listeners. */
export async function startBroker(config: Config, logger: Logger, options: BrokerOptions = {}): Promise<Broker> {
  setFailureReporter((method, err) => logger.error({ method, reason: err.reason, err: err.cause ?? err }, "rpc failed"));
  setAccessLog(config.log.access ? logger : undefined);

  const tracing = config.tracing.enabled || options.spanExporter ? startTracing(options.spanExporter) : undefined;
  const metrics = new BrokerMetrics();
  const store = await openStore(config);
  store.onCommandFailed?.((command) => metrics.mongoCommandFailed(command));
  const kms = await openLocalKeyring(keyringConfigOf(config));
  const vault = await openVault({ dataKeys: store.dataKeys, keyring: kms });
  const audit = new AuditLog(store.audit, {
    maxQueued: config.audit.maxQueued,
    commitTimeoutMs: config.audit.commitTimeoutMs,
    onWriteError: (err) => {
      metrics.auditWriteFailed();
      logger.error({ err }, "audit write failed; retrying");
    },
  });

  const caps = new Capabilities({
    runtime: config.capabilities.runtime,
    decisionCacheSize: config.capabilities.decisionCacheSize,
    diagnostics: options.workerDiagnostics ?? false,
    onEvent: (event) => {
      metrics.poolEvent(event);
      logPoolEvent(logger, event);
    },
  });
  await caps.ready();
  const keys = await RootKeyRing.open(store, vault);
  const revocations = new RevocationPoller(store.revocations, {
    // The in-memory store has one writer, this process: its view cannot fall behind.
    maxStalenessMs: store.kind === "memory" ? Number.POSITIVE_INFINITY : config.capabilities.maxRevocationStalenessMs,
    intervalMs: config.capabilities.revocationPollMs,
    // Root keys added or retired elsewhere (`capvault token rotate-root-key`/`retire-root-key`) arrive on the same poll.
    onRootKeysChanged: async () => {
      await keys.reload();
      logger.info({ keys: keys.keys().length }, "root keys reloaded: a change was announced in the revocation log");
    },
    onError: (err) => logger.warn({ err }, "revocation poll failed"),
  });
  await revocations.start();
  // A safety net for root key changes not announced in the revocation log: a full reload every rootKeyReloadMs.
  const keyReload = setInterval(
    () =>
      keys.reload().then(
        () => logger.debug({ keys: keys.keys().length }, "root keys reloaded"),
        (err) => logger.warn({ err }, "root key reload failed"),
      ),
    config.capabilities.rootKeyReloadMs,
  );
  keyReload.unref();
  const policies = config.policiesDir ? await caps.loadPolicies(resolve(config.policiesDir)) : undefined;
  const authority = new CapabilityAuthority(caps, keys, revocations, policies);

  const catalogDir = resolve(config.providersDir);
  const httpAddr = await withConcretePort(config.http.addr);
  const publicUrl = config.http.publicUrl ?? `http://${httpAddr}`;
  const oauth = await createOAuthModule({
    config: {
      redirectUri: new URL("/oauth/callback", publicUrl).href,
      catalogDir,
      allowInsecureLoopback: config.oauth.allowInsecureLoopback,
    },
    store,
    vault,
    logger,
    onRefreshWait: (holder) => metrics.refreshWait(holder),
    onEvent: (e) => {
      if (e.action === "refresh") metrics.refresh(e.provider, e.decision, e.reason);
      return audit.record({ tenant: e.tenant, action: e.action, connection: e.connection, provider: e.provider, decision: e.decision, reason: e.reason });
    },
  });
  const providers = providerReadiness(oauth.catalog);
  logger.info(
    { usable: providers.filter((p) => p.usable).map((p) => p.id), missing: Object.fromEntries(providers.filter((p) => !p.usable).map((p) => [p.id, p.missing])) },
    `providers: ${describeReadiness(providers)}`,
  );
  const webhook = config.approvals.webhookUrl
    ? new ApprovalWebhook({ url: config.approvals.webhookUrl, secret: config.approvals.webhookSecret!, logger })
    : undefined;
  const approvals = new Approvals({
    store: store.approvals,
    audit,
    ttlMs: config.approvals.ttlSeconds * 1000,
    pageBaseUrl: () => publicUrl.replace(/\/+$/, ""),
    onEvent: (event) => metrics.approval(event),
    ...(webhook ? { notifier: webhook } : {}),
  });
  const callback = await startCallbackServer({ addr: httpAddr, oauth, logger, pages: approvalPages(approvals) });
  const sweeper = oauth.startSweeper();
  const purge = oauth.startPurgeJob();

  const tokens = new AccessTokenCache((tenant, id, resolveOptions) => oauth.resolveAccessToken(tenant, id, resolveOptions), {
    ttlMs: config.oauth.accessTokenCacheMs,
  });
  const connections = new ConnectionDirectory(store.connections, (id) => oauth.provider(id), catalogDir);
  connections.checkProviders(oauth.catalog.list().map((p) => p.id));
  const dispatchers = new UpstreamDispatchers();
  // Frozen: the Proxy merges them with the defaults once (canonical-request.ts, upstream-call.ts), not on every call.
  const canonicalLimits = Object.freeze({ maxBodyBytes: config.proxy.maxBodyBytes });
  const proxy: ProxyDependencies = {
    authority,
    connections,
    tokens,
    dispatchers,
    audit,
    canonicalLimits,
    canonicalRequests: new CanonicalRequestMemo(canonicalLimits),
    upstreamLimits: Object.freeze({
      maxResponseBytes: config.proxy.maxResponseBytes,
      maxStreamRequestBytes: config.proxy.maxStreamBodyBytes,
      timeoutMs: config.proxy.upstreamTimeoutMs,
    }),
    metrics,
    approvals,
  };

  const grpc = await startGrpcServer({
    addr: config.grpc.addr,
    maxMessageBytes: config.grpc.maxMessageBytes,
    implementations: {
      capability: createCapabilityService({ authority, store, audit, proxy }),
      connection: createConnectionService(
        oauth,
        (ctx, tenant, operation) => authority.requireOperator(ctx, tenant, operation),
        (tenant, id) => {
          tokens.invalidate(tenant, id);
          connections.forget(id);
        },
        audit,
      ),
      proxy: createProxyService(proxy),
      admin: createAdminService({ authority, store, kms }),
      approval: createApprovalService(approvals, authority),
    },
  });

  const readiness = monitorReadiness({
    checks: [
      { name: "database", ready: () => store.ping().then(() => true) },
      { name: "audit", ready: () => audit.healthy, detail: () => audit.state() },
      { name: "revocations", ready: () => config.mongodb.uri === undefined || revocations.ageMs() <= config.capabilities.maxRevocationStalenessMs },
    ],
    setServing: (serving) => grpc.health.setServing(serving),
    logger,
  });

  metrics.observe({
    pool: () => caps.stats(),
    decisionCache: () => caps.decisions,
    native: () => caps.native,
    auditDepth: () => audit.depth,
    revocationAgeMs: () => revocations.ageMs(),
  });
  const metricsServer = config.metrics.addr ? await serveMetrics(config.metrics.addr, metrics, logger, options.metricsPortIsDefault ?? false) : undefined;

  let devOperatorToken: string | undefined;
  if (config.dev) {
    const minted = await caps.mint({
      rootKey: keys.signingKey(),
      tenant: config.devTenant,
      subject: "dev-operator",
      grants: [],
      ttlSeconds: 24 * 3600,
      operator: true,
    });
    devOperatorToken = minted.token;
  }
  logger.info(
    {
      grpc: grpc.address,
      http: callback.url,
      metrics: metricsServer?.url,
      tracing: tracing !== undefined,
      store: store.kind,
      policies: policies?.statements.length ?? 0,
      capabilityRuntime: caps.runtime,
    },
    "broker listening",
  );

  let stopping: Promise<void> | undefined;
  return {
    grpcAddress: grpc.address,
    httpUrl: callback.url,
    store,
    oauth,
    authority,
    capabilities: caps,
    grpc,
    metricsUrl: metricsServer?.url,
    devOperatorToken,
    providers,
    stop() {
      stopping ??= (async () => {
        readiness.stop();
        const { forced } = await grpc.shutdown(config.grpc.shutdownGraceMs);
        logger.info({ forced }, "gRPC server stopped");
        await callback.close();
        await Promise.all([sweeper.stop(), purge.stop()]);
        revocations.stop();
        clearInterval(keyReload);
        if (!(await audit.flush(config.grpc.shutdownGraceMs))) logger.error({ queued: audit.depth }, "audit events not stored at shutdown: the database is unreachable");
        await dispatchers.close();
        await caps.close();
        await store.close();
        await metricsServer?.close();
        await tracing?.stop();
      })();
      return stopping;
    },
  };
}

/** The metrics listener; a default address whose port is taken (another dev broker) falls back to a free port. */
async function serveMetrics(addr: string, metrics: BrokerMetrics, logger: Logger, portIsDefault: boolean): Promise<MetricsServer> {
  try {
    return await startMetricsServer(addr, metrics);
  } catch (err) {
    if (!portIsDefault || (err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    const fallback = `${addr.slice(0, addr.lastIndexOf(":"))}:0`;
    const server = await startMetricsServer(fallback, metrics);
    logger.warn({ wanted: addr, metrics: server.url }, "metrics port taken: serving metrics on a free port instead");
    return server;
  }
}

/** host:0 becomes host:<a free port>, so the OAuth redirect URI can be known before the listener starts. */
async function withConcretePort(addr: string): Promise<string> {
  const colon = addr.lastIndexOf(":");
  const host = addr.slice(0, colon);
  if (addr.slice(colon + 1) !== "0") return addr;
  const port = await new Promise<number>((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, host.replace(/^\[|\]$/g, ""), () => {
      const { port: p } = srv.address() as { port: number };
      srv.close(() => ok(p));
    });
  });
  return `${host}:${port}`;
}
