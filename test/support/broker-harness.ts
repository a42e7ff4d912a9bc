import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { startBroker, type Broker } from "../../src/broker/broker.js";
import { connect, type CapvaultClient } from "../../src/client/index.js";
import { loadConfig } from "../../src/config/load-config.js";
import { CapabilityServiceClient, type Grant, type MintResponse } from "../../src/gen/capvault/v1/capability.js";
import { ConnectionServiceClient, type BeginConnectResponse } from "../../src/gen/capvault/v1/connection.js";
import { createLogger } from "../../src/log/logger.js";
import { followToCallback, openCallback } from "../oauth/support/authorize-driver.js";
import { startOidcServer, type OidcServer } from "../oauth/support/oidc-server.js";
import { startRecordingUpstream, TEST_CA, type RecordingUpstream, type UpstreamHandler } from "../proxy/recording-upstream.js";
import { openTestDatabase, type TestDatabase } from "./mongo.js";

export interface TestBrokerOptions {
  /** Organisation policy files, by name. */
  policies?: Record<string, string>;
  /** The upstream API's behaviour (default: 200 with a JSON echo of method and path). */
  upstream?: UpstreamHandler;
  /** Access-token lifetime at the authorization server, seconds. */
  accessTokenTtl?: number;
  /** Use the in-memory store instead of the FerretDB test server. */
  memory?: boolean;
}

/**
 * A whole broker in this process, wired exactly as `capvault dev` wires it, against real peers: the FerretDB test
 * server, oidc-provider as the user's OAuth provider ("gh"), and a recording HTTPS API upstream on loopback
 * (https://localhost:<port>, trusted through the test CA, private addresses allowed for this provider only).
 */
export interface TestBroker {
  broker: Broker;
  address: string;
  operatorToken: string;
  tenant: string;
  idp: OidcServer;
  upstream: RecordingUpstream;
  /** Every log line the broker wrote. */
  logs: string[];
  db?: TestDatabase;
  /** Connect a user's account through the real authorization-code flow; returns the connection id. */
  connectAccount(user?: string): Promise<string>;
  /** Mint an agent capability through the RPC, as the operator. */
  mint(grants: Grant[], ttlSeconds?: number, subject?: string): Promise<MintResponse>;
  /** The agent client for a token. */
  client(token: string): CapvaultClient;
  /** The access token currently stored for a connection (to search outputs for it). */
  accessTokenOf(connectionId: string): Promise<string>;
  close(): Promise<void>;
}

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const upstream = await startRecordingUpstream(
    "127.0.0.1",
    options.upstream ??
      ((req, res, body) => {
        res.setHeader("content-type", "application/json");
        res.setHeader("set-cookie", "session=upstream-secret");
        res.end(JSON.stringify({ method: req.method, url: req.url, bodyBytes: body.length }));
      }),
  );
  const dir = await mkdtemp(join(tmpdir(), "capvault-broker-"));
  const providersDir = join(dir, "providers");
  const policiesDir = join(dir, "policies");
  await writeFile(join(dir, "ca.pem"), TEST_CA);
  const { mkdir } = await import("node:fs/promises");
  await mkdir(providersDir);
  await mkdir(policiesDir);
  for (const [name, source] of Object.entries(options.policies ?? {})) await writeFile(join(policiesDir, name), source);

  const httpPort = await freePort();
  const idp = await startOidcServer({
    redirectUris: [`http://127.0.0.1:${httpPort}/oauth/callback`],
    ...(options.accessTokenTtl ? { accessTokenTtl: options.accessTokenTtl } : {}),
  });
  const envPrefix = `CAPVAULT_TEST_${randomBytes(4).toString("hex").toUpperCase()}`;
  process.env[`${envPrefix}_ID`] = idp.clientId;
  process.env[`${envPrefix}_SECRET`] = idp.clientSecret;
  await writeFile(
    join(providersDir, "gh.json"),
    JSON.stringify({
      id: "gh",
      displayName: "GitHub (test)",
      issuer: idp.issuer,
      discovery: true,
      defaultScopes: ["openid", "email", "offline_access"],
      scopeSeparator: " ",
      pkce: "S256",
      authorizationParams: { prompt: "consent" },
      tokenResponse: "standard",
      tokenEndpointAuthMethod: "client_secret_basic",
      revocation: "rfc7009",
      account: "oidc",
      client: { idEnv: `${envPrefix}_ID`, secretEnv: `${envPrefix}_SECRET` },
      api: {
        baseUrl: `https://localhost:${upstream.port}`,
        allowedHosts: ["localhost"],
        credentialHeader: { name: "Authorization", scheme: "Bearer" },
        allowPrivateAddresses: true,
        caFile: join(dir, "ca.pem"),
      },
    }),
  );

  const db = options.memory ? undefined : await openTestDatabase("broker");
  const config = loadConfig({
    env: {},
    overrides: {
      dev: true,
      "grpc.addr": "127.0.0.1:0",
      "http.addr": `127.0.0.1:${httpPort}`,
      providersDir,
      policiesDir: options.policies ? policiesDir : undefined,
      "oauth.allowInsecureLoopback": true,
      "grpc.shutdownGraceMs": 2000,
      devTenant: "acme",
      ...(db ? { "mongodb.uri": db.uri, "mongodb.database": db.name } : {}),
    },
  });
  const logs: string[] = [];
  const logger = createLogger("debug", { write: (line: string) => void logs.push(line) });
  const broker = await startBroker(config, logger);
  const address = broker.grpcAddress;
  const operatorToken = broker.devOperatorToken!;
  const md = () => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${operatorToken}`);
    return m;
  };
  const connections = new ConnectionServiceClient(address, credentials.createInsecure());
  const capabilities = new CapabilityServiceClient(address, credentials.createInsecure());
  const clients: CapvaultClient[] = [];

  return {
    broker,
    address,
    operatorToken,
    tenant: "acme",
    idp,
    upstream,
    logs,
    db,
    async connectAccount(user = "alice") {
      const begun = await new Promise<BeginConnectResponse>((ok, no) =>
        connections.beginConnect({ tenant: "acme", user, provider: "gh", scopes: [] }, md(), (e, r) => (e ? no(e) : ok(r))),
      );
      const callback = await followToCallback(begun.authorizationUrl, `http://127.0.0.1:${httpPort}/oauth/callback`);
      const page = await openCallback(callback);
      if (!page.text.includes("is now connected")) throw new Error(`connect failed: ${page.text}`);
      return begun.connectionId;
    },
    mint(grants, ttlSeconds = 3600, subject = "agent-1") {
      return new Promise<MintResponse>((ok, no) =>
        capabilities.mint(
          { tenant: "acme", subject, grants, ttl: { seconds: ttlSeconds, nanos: 0 }, operator: false },
          md(),
          (e: ServiceError | null, r: MintResponse) => (e ? no(e) : ok(r)),
        ),
      );
    },
    client(token) {
      const c = connect(address, token);
      clients.push(c);
      return c;
    },
    async accessTokenOf(connectionId) {
      return (await broker.oauth.resolveAccessToken("acme", connectionId)).accessToken;
    },
    async close() {
      for (const c of clients) c.close();
      connections.close();
      capabilities.close();
      await broker.stop();
      await idp.close();
      await upstream.close();
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
      delete process.env[`${envPrefix}_ID`];
      delete process.env[`${envPrefix}_SECRET`];
    },
  };
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
