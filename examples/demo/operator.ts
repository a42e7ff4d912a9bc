import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CapvaultClientError } from "../../src/client/index.js";
import {
  AdminServiceClient,
  type ListAuditEventsResponse,
  type VerifyAuditResponse,
} from "../../src/gen/capvault/v1/admin.js";
import {
  CapabilityServiceClient,
  type Grant,
  type MintResponse,
  type RevokeResponse,
} from "../../src/gen/capvault/v1/capability.js";
import {
  ConnectionServiceClient,
  type BeginConnectResponse,
  type GetConnectionResponse,
} from "../../src/gen/capvault/v1/connection.js";

/**
 * What the operator does, over the broker's gRPC API, with the dev operator capability in `authorization: Bearer`.
 * (Agents use the client library in src/client instead; operators have no client library yet.)
 */
export interface Operator {
  beginConnect(user: string, provider: string): Promise<BeginConnectResponse>;
  getConnection(id: string): Promise<GetConnectionResponse>;
  mint(subject: string, grants: Grant[], ttlSeconds: number): Promise<MintResponse>;
  revoke(revocationIds: string[], reason: string): Promise<RevokeResponse>;
  listAuditEvents(): Promise<ListAuditEventsResponse>;
  verifyAudit(): Promise<VerifyAuditResponse>;
  close(): void;
}

export function operator(address: string, token: string, tenant: string): Operator {
  const insecure = credentials.createInsecure();
  const caps = new CapabilityServiceClient(address, insecure);
  const conns = new ConnectionServiceClient(address, insecure);
  const admin = new AdminServiceClient(address, insecure);
  const md = () => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
    return m;
  };
  const opts = () => ({ deadline: Date.now() + 15_000 });
  const call = <Res>(fn: (cb: (err: ServiceError | null, res: Res) => void) => void) =>
    new Promise<Res>((resolve, reject) => fn((err, res) => (err ? reject(CapvaultClientError.fromServiceError(err)) : resolve(res))));

  return {
    beginConnect: (user, provider) => call((cb) => conns.beginConnect({ tenant, user, provider, scopes: [] }, md(), opts(), cb)),
    getConnection: (connectionId) => call((cb) => conns.getConnection({ tenant, connectionId }, md(), opts(), cb)),
    mint: (subject, grants, ttlSeconds) =>
      call((cb) => caps.mint({ tenant, subject, grants, ttl: { seconds: ttlSeconds, nanos: 0 }, operator: false, allowUnknownConnections: false }, md(), opts(), cb)),
    revoke: (revocationIds, reason) => call((cb) => caps.revoke({ revocationIds, reason }, md(), opts(), cb)),
    listAuditEvents: () => call((cb) => admin.listAuditEvents({ tenant, afterSequence: 0, limit: 1000, writer: "", pageToken: "" }, md(), opts(), cb)),
    verifyAudit: () => call((cb) => admin.verifyAudit({ tenant }, md(), opts(), cb)),
    close() {
      caps.close();
      conns.close();
      admin.close();
    },
  };
}
