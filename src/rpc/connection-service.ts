import { CapvaultError } from "../errors/capvault-error.js";
import {
  ConnectionStatus,
  type BeginConnectRequest,
  type BeginConnectResponse,
  type Connection,
  type ConnectionServiceServer,
  type DisconnectRequest,
  type DisconnectResponse,
  type GetConnectionRequest,
  type GetConnectionResponse,
  type ImportConnectionsRequest,
  type ImportConnectionsResponse,
  type ListConnectionsRequest,
  type ListConnectionsResponse,
} from "../gen/capvault/v1/connection.js";
import type { OAuthModule } from "../oauth/oauth-module.js";
import type { CallContext } from "../server/call-context.js";
import { clientStream, unary } from "../server/rpc-handlers.js";
import type { ImportRecord } from "../oauth/import-connections.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { ConnectionRecord } from "../store/records.js";

/** The OAuth operations ConnectionService needs (an OAuthModule satisfies it). */
export type ConnectionOperations = Pick<OAuthModule, "beginConnect" | "listConnections" | "getConnection" | "disconnect" | "importConnections">;

const STATUS: Record<ConnectionRecord["status"], ConnectionStatus> = {
  pending: ConnectionStatus.CONNECTION_STATUS_PENDING,
  active: ConnectionStatus.CONNECTION_STATUS_ACTIVE,
  needs_reauth: ConnectionStatus.CONNECTION_STATUS_NEEDS_REAUTH,
};

/** Connection metadata as the API shows it. Built field by field from metadata only: no secret can slip in. */
export function toConnectionMessage(c: ConnectionRecord): Connection {
  return {
    id: c.id,
    tenant: c.tenant,
    user: c.user,
    provider: c.provider,
    account: c.account ?? "",
    scopes: [...c.scopes],
    status: STATUS[c.status] ?? ConnectionStatus.CONNECTION_STATUS_UNSPECIFIED,
    expiresAt: c.expiresAt,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

function required(value: string, name: string): string {
  if (!value) throw new CapvaultError("INVALID_REQUEST", `${name} is required`);
  return value;
}

/** Checks that the caller is an operator of `tenant` (see CapabilityAuthority.requireOperator). */
export type OperatorCheck = (ctx: CallContext, tenant: string, operation: string) => Promise<{ subject?: string; revocationIds?: string[] } | void>;

/**
 * The gRPC ConnectionService: a thin adapter over the OAuth module. Every RPC needs an operator capability for the
 * tenant. No response carries a token. `onDisconnected` lets the Proxy forget cached routes and tokens at once.
 */
export function createConnectionService(
  oauth: ConnectionOperations,
  requireOperator: OperatorCheck,
  onDisconnected: (tenant: string, connectionId: string) => void = () => {},
  audit?: Pick<AuditLog, "recordAndWait">,
): ConnectionServiceServer {
  return {
    beginConnect: unary<BeginConnectRequest, BeginConnectResponse>("BeginConnect", async (req, ctx) => {
      await requireOperator(ctx, req.tenant, "connect");
      const r = await oauth.beginConnect({
        tenant: required(req.tenant, "tenant"),
        user: required(req.user, "user"),
        provider: required(req.provider, "provider"),
        scopes: req.scopes,
      });
      return { authorizationUrl: r.authorizationUrl, connectionId: r.connectionId, expiresAt: r.expiresAt };
    }),
    listConnections: unary<ListConnectionsRequest, ListConnectionsResponse>("ListConnections", async (req, ctx) => {
      await requireOperator(ctx, req.tenant, "connections-read");
      const list = await oauth.listConnections(required(req.tenant, "tenant"), req.user || undefined);
      return { connections: list.map(toConnectionMessage) };
    }),
    getConnection: unary<GetConnectionRequest, GetConnectionResponse>("GetConnection", async (req, ctx) => {
      await requireOperator(ctx, req.tenant, "connections-read");
      const c = await oauth.getConnection(required(req.tenant, "tenant"), required(req.connectionId, "connection_id"));
      return { connection: toConnectionMessage(c) };
    }),
    disconnect: unary<DisconnectRequest, DisconnectResponse>("Disconnect", async (req, ctx) => {
      const op = (await requireOperator(ctx, req.tenant, "disconnect")) ?? undefined;
      const [tenant, connectionId] = [required(req.tenant, "tenant"), required(req.connectionId, "connection_id")];
      // Audited before it takes effect (the OAuth module records the outcome): no unaudited disconnect.
      await audit?.recordAndWait({
        tenant,
        action: "disconnect",
        subject: op?.subject ?? "",
        delegationChain: op?.revocationIds ?? [],
        connection: connectionId,
        decision: "intent",
      });
      const r = await oauth.disconnect(tenant, connectionId);
      onDisconnected(req.tenant, req.connectionId);
      return { revokedAtProvider: r.revokedAtProvider };
    }),
    importConnections: clientStream<ImportConnectionsRequest, ImportConnectionsResponse>("ImportConnections", async (requests, ctx) => {
      const stream = requests[Symbol.asyncIterator]();
      const first = await stream.next();
      if (first.done) throw new CapvaultError("INVALID_REQUEST", "no records to import");
      const tenant = required(first.value.tenant, "tenant");
      const op = (await requireOperator(ctx, tenant, "import")) ?? undefined;
      const who = { tenant, action: "import", subject: op?.subject ?? "", delegationChain: op?.revocationIds ?? [] };
      // Audited before it takes effect, then with its outcome (counts only: never a token, user or account).
      await audit?.recordAndWait({ ...who, decision: "intent" });
      async function* batches(): AsyncGenerator<ImportRecord[]> {
        for (let next: IteratorResult<ImportConnectionsRequest> = first; !next.done; next = await stream.next()) {
          if (next.value.tenant && next.value.tenant !== tenant) throw new CapvaultError("INVALID_REQUEST", "every message must name the same tenant");
          yield next.value.connections.map((c) => ({
            line: c.line,
            user: c.user,
            provider: c.provider,
            account: c.account,
            accessToken: c.accessToken,
            ...(c.refreshToken ? { refreshToken: c.refreshToken } : {}),
            ...(c.expiresAt ? { expiresAt: c.expiresAt } : {}),
            scopes: c.scopes,
          }));
        }
      }
      const summary = await oauth.importConnections(tenant, batches());
      await audit?.recordAndWait({
        ...who,
        decision: "ok",
        detail: `imported ${summary.imported}, updated ${summary.updated}, unchanged ${summary.unchanged}, refused ${summary.refused.length}`,
      });
      // Updated connections have new tokens: the Proxy must not keep serving the cached ones.
      for (const connection of summary.changed) onDisconnected(tenant, connection);
      return { imported: summary.imported, updated: summary.updated, unchanged: summary.unchanged, refused: summary.refused };
    }),
  };
}
