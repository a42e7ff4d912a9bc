import { credentials, Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConnectionService } from "../../src/rpc/connection-service.js";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { readErrorDetails } from "../../src/errors/grpc-status.js";
import {
  ConnectionServiceClient,
  ConnectionServiceService,
  ConnectionStatus,
  type BeginConnectRequest,
  type BeginConnectResponse,
  type DisconnectRequest,
  type DisconnectResponse,
  type GetConnectionRequest,
  type GetConnectionResponse,
  type ListConnectionsRequest,
  type ListConnectionsResponse,
} from "../../src/gen/capvault/v1/connection.js";
import { openMemoryStore } from "../../src/store/memory/memory-store.js";
import { connectThroughFlow } from "../oauth/support/connect-helper.js";
import { startFakeGitHub, type FakeGitHub } from "../oauth/support/fake-github.js";
import { startBroker, testVault, type Broker } from "../oauth/support/oauth-harness.js";

/** ConnectionService over a real gRPC server on loopback, backed by the OAuth module and a GitHub-shaped provider. */
describe("ConnectionService (gRPC)", () => {
  let github: FakeGitHub;
  let broker: Broker;
  let server: Server;
  let client: ConnectionServiceClient;
  const checks: string[] = [];

  beforeAll(async () => {
    const store = openMemoryStore();
    github = await startFakeGitHub();
    broker = await startBroker(store, await testVault(store), {
      providerOverrides: {
        github: {
          authorizationEndpoint: `${github.url}/login/oauth/authorize`,
          tokenEndpoint: `${github.url}/login/oauth/access_token`,
          revocationEndpoint: `${github.url}/applications/{client_id}/token`,
          apiBaseUrl: github.url,
        },
      },
      clients: { github: { clientId: github.clientId, clientSecret: github.clientSecret } },
    });
    server = new Server();
    // Operator authentication is the broker's (see test/broker); here a recording check that refuses tenant "evil".
    const requireOperator = async (_ctx: unknown, tenant: string, operation: string) => {
      checks.push(`${tenant}:${operation}`);
      if (tenant === "evil") throw new CapvaultError("OPERATOR_REQUIRED");
    };
    server.addService(ConnectionServiceService, createConnectionService(broker.oauth, requireOperator));
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    client = new ConnectionServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await new Promise<void>((r) => (server ? server.tryShutdown(() => r()) : r()));
    await broker?.close();
    await github?.close();
  });

  const done = <Res>(resolve: (r: Res) => void, reject: (e: unknown) => void) => (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res));
  const rpc = {
    beginConnect: (req: BeginConnectRequest) => new Promise<BeginConnectResponse>((ok, no) => client.beginConnect(req, done(ok, no))),
    listConnections: (req: ListConnectionsRequest) => new Promise<ListConnectionsResponse>((ok, no) => client.listConnections(req, done(ok, no))),
    getConnection: (req: GetConnectionRequest) => new Promise<GetConnectionResponse>((ok, no) => client.getConnection(req, done(ok, no))),
    disconnect: (req: DisconnectRequest) => new Promise<DisconnectResponse>((ok, no) => client.disconnect(req, done(ok, no))),
  };

  it("BeginConnect returns the authorization URL and a pending connection", async () => {
    const res = await rpc.beginConnect({ tenant: "acme", user: "u1", provider: "github", scopes: [] });
    expect(new URL(res.authorizationUrl).searchParams.get("code_challenge_method")).toBe("S256");
    expect(res.connectionId).toMatch(/^conn_/);
    const got = await rpc.getConnection({ tenant: "acme", connectionId: res.connectionId });
    expect(got.connection?.status).toBe(ConnectionStatus.CONNECTION_STATUS_PENDING);
  });

  it("List/Get return metadata only; Disconnect reports revocation", async () => {
    const id = await connectThroughFlow(broker, "github", "acme", "u2");
    const token = (await broker.oauth.resolveAccessToken("acme", id)).accessToken;
    const list = await rpc.listConnections({ tenant: "acme", user: "u2" });
    expect(list.connections).toHaveLength(1);
    expect(list.connections[0]).toMatchObject({ id, account: "octocat", scopes: ["read:user", "repo"], status: ConnectionStatus.CONNECTION_STATUS_ACTIVE });
    expect(JSON.stringify(list)).not.toContain(token);
    const res = await rpc.disconnect({ tenant: "acme", connectionId: id });
    expect(res.revokedAtProvider).toBe(true);
  });

  it("maps errors to gRPC statuses with a reason", async () => {
    const notFound = await rpc.getConnection({ tenant: "acme", connectionId: "conn_nope" }).catch((e: ServiceError) => e);
    expect((notFound as ServiceError).code).toBe(status.NOT_FOUND);
    expect(readErrorDetails(notFound as ServiceError).reason).toBe("CONNECTION_NOT_FOUND");
    const unknown = await rpc.beginConnect({ tenant: "acme", user: "u", provider: "myspace", scopes: [] }).catch((e: ServiceError) => e);
    expect(readErrorDetails(unknown as ServiceError)).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "PROVIDER_UNKNOWN" });
    const missing = await rpc.beginConnect({ tenant: "", user: "u", provider: "github", scopes: [] }).catch((e: ServiceError) => e);
    expect(readErrorDetails(missing as ServiceError).reason).toBe("INVALID_REQUEST");
  });

  it("asks for an operator of the request's tenant before every RPC", async () => {
    checks.length = 0;
    await rpc.listConnections({ tenant: "acme", user: "" });
    expect(checks).toEqual(["acme:connections-read"]);
    const refused = await rpc.beginConnect({ tenant: "evil", user: "u", provider: "github", scopes: [] }).catch((e: ServiceError) => e);
    expect(readErrorDetails(refused as ServiceError)).toMatchObject({ code: status.PERMISSION_DENIED, reason: "OPERATOR_REQUIRED" });
    expect(checks).toEqual(["acme:connections-read", "evil:connect"]);
  });
});
