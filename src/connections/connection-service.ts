import type { sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import { CapvaultError } from "../errors/capvault-error.js";
import { toServiceError } from "../errors/grpc-status.js";
import {
  ConnectionStatus,
  type Connection,
  type ConnectionServiceServer,
} from "../gen/capvault/v1/connection.js";
import type { OAuthModule } from "../oauth/oauth-module.js";
import type { ConnectionRecord } from "../store/records.js";

/** The OAuth operations ConnectionService needs (an OAuthModule satisfies it). */
export type ConnectionOperations = Pick<OAuthModule, "beginConnect" | "listConnections" | "getConnection" | "disconnect">;

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

/** Run a handler body and answer through the callback, mapping every failure with toServiceError. */
function unary<Req, Res>(body: (req: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    body(call.request).then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err)),
    );
  };
}

/**
 * The gRPC ConnectionService: a thin adapter over the OAuth module. Authentication (the operator capability) is the
 * server's job before these handlers run. No response carries a token.
 */
export function createConnectionService(oauth: ConnectionOperations): ConnectionServiceServer {
  return {
    beginConnect: unary(async (req) => {
      const r = await oauth.beginConnect({
        tenant: required(req.tenant, "tenant"),
        user: required(req.user, "user"),
        provider: required(req.provider, "provider"),
        scopes: req.scopes,
      });
      return { authorizationUrl: r.authorizationUrl, connectionId: r.connectionId, expiresAt: r.expiresAt };
    }),
    listConnections: unary(async (req) => {
      const list = await oauth.listConnections(required(req.tenant, "tenant"), req.user || undefined);
      return { connections: list.map(toConnectionMessage) };
    }),
    getConnection: unary(async (req) => {
      const c = await oauth.getConnection(required(req.tenant, "tenant"), required(req.connectionId, "connection_id"));
      return { connection: toConnectionMessage(c) };
    }),
    disconnect: unary(async (req) => {
      const r = await oauth.disconnect(required(req.tenant, "tenant"), required(req.connectionId, "connection_id"));
      return { revokedAtProvider: r.revokedAtProvider };
    }),
  };
}
