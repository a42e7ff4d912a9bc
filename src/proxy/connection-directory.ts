import { CapvaultError } from "../errors/capvault-error.js";
import type { ProviderConfig } from "../oauth/provider-catalog.js";
import type { ConnectionRepository } from "../store/repositories.js";
import { providerUpstreamTarget } from "./provider-upstream-target.js";
import type { UpstreamTarget } from "./upstream-target.js";

/** What Proxy needs to know about a connection before authorizing: whose it is and where its token may go. */
export interface ConnectionRoute {
  id: string;
  tenant: string;
  provider: string;
  target: UpstreamTarget;
}

/**
 * Connection id → route. A connection's tenant and provider never change, so routes are cached for the life of the
 * process (bounded); whether the connection is still usable is the credential's business, checked on every call.
 */
export class ConnectionDirectory {
  private readonly routes = new Map<string, ConnectionRoute>();
  private readonly targets = new Map<string, UpstreamTarget>();

  constructor(
    private readonly connections: ConnectionRepository,
    private readonly provider: (id: string) => ProviderConfig,
    private readonly catalogDir: string,
    private readonly maxEntries = 10_000,
  ) {}

  async route(connectionId: string): Promise<ConnectionRoute> {
    const cached = this.routes.get(connectionId);
    if (cached) return cached;
    if (!connectionId) throw new CapvaultError("INVALID_REQUEST", "request.connection is required");
    const record = await this.connections.findById(connectionId);
    if (!record) throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: connectionId } });
    const route = { id: record.id, tenant: record.tenant, provider: record.provider, target: this.targetOf(record.provider) };
    if (this.routes.size >= this.maxEntries) this.routes.delete(this.routes.keys().next().value!);
    this.routes.set(connectionId, route);
    return route;
  }

  /**
   * Check every provider's `api` section now, at start-up (https only, host allowlisted, usable headers, a readable CA
   * file), so that a bad one stops the broker with CONFIG_INVALID naming the provider and field instead of failing an
   * agent's first call. The checked targets are kept: no file is read during a call.
   */
  checkProviders(providerIds: Iterable<string>): void {
    for (const id of providerIds) this.targetOf(id);
  }

  /** Forget a route (after Disconnect). */
  forget(connectionId: string): void {
    this.routes.delete(connectionId);
  }

  private targetOf(providerId: string): UpstreamTarget {
    let target = this.targets.get(providerId);
    if (!target) {
      target = providerUpstreamTarget(this.provider(providerId), this.catalogDir);
      this.targets.set(providerId, target);
    }
    return target;
  }
}
