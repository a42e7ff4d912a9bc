import { randomBytes } from "node:crypto";
import { lookup } from "node:dns/promises";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { startBroker, type Broker, type BrokerOptions } from "../../src/broker/broker.js";
import { connect, type CapvaultClient } from "../../src/client/index.js";
import { loadConfig } from "../../src/config/load-config.js";
import { CapabilityServiceClient, type Grant, type MintResponse } from "../../src/gen/capvault/v1/capability.js";
import { ConnectionServiceClient, type BeginConnectResponse } from "../../src/gen/capvault/v1/connection.js";
import { AdminServiceClient } from "../../src/gen/capvault/v1/admin.js";
import { createLogger } from "../../src/log/logger.js";
import type { CredentialRecord } from "../../src/store/credential-repository.js";
import { openVault } from "../../src/vault/open-vault.js";
import type { Vault } from "../../src/vault/vault.js";
import { followToCallback, openCallback } from "../oauth/support/authorize-driver.js";
import { startOidcServer, type OidcServer } from "../oauth/support/oidc-server.js";
import { startRecordingUpstream, TEST_CA, UNRELATED_CA, type RecordingUpstream, type UpstreamHandler } from "../proxy/recording-upstream.js";
import { startBrokerProcess, type BrokerProcess } from "./broker-process.js";
import { freePort } from "./free-port.js";
import { openTestDatabase, type TestDatabase } from "./mongo.js";
import { testProviderFile } from "./test-provider.js";

export interface TestBrokerOptions {
  /** Organisation policy files, by name. */
  policies?: Record<string, string>;
  /** The upstream API's behaviour (default: 200 with a JSON echo of method and path). */
  upstream?: UpstreamHandler;
  /** Access-token lifetime at the authorization server, seconds. */
  accessTokenTtl?: number;
  /** Use the in-memory store instead of the FerretDB test server. */
  memory?: boolean;
  /**
   * More providers on the same authorization server, by id: each is "gh" with its `api` section changed by the
   * function's result (merged over gh's; a key set to `undefined` is removed). Connect with `connectAccount(user, id)`.
   */
  providers?: Record<string, ProviderApiVariant>;
  /**
   * Run with a key-encryption key known to the test (instead of a generated dev key), so that `secretsOf` can open
   * the stored OAuth tokens, e.g. to search every output for them.
   */
  exposeSecrets?: boolean;
  /** Extra configuration values (config paths, e.g. `"grpc.maxMessageBytes"`), applied last. */
  config?: Record<string, unknown>;
  /** How the broker is started besides its configuration (a span exporter, worker fault injection). */
  brokerOptions?: BrokerOptions;
}

/** What a provider variant can build its `api` section from. */
export interface ProviderVariantContext {
  /** The recording upstream's port (its certificate names `localhost`). */
  upstreamPort: number;
  /** The test CA that signed the upstream's certificate. */
  caFile: string;
  /** A CA that signed nothing here: TLS to the upstream fails with it. */
  unrelatedCaFile: string;
}

/** A provider's `api` section as a change to "gh"'s. */
export type ProviderApiVariant = (ctx: ProviderVariantContext) => Record<string, unknown>;

/** Every OAuth secret stored for a connection, over all its stored generations. */
export interface StoredSecrets {
  accessTokens: string[];
  refreshTokens: string[];
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
  /** Connect a user's account through the real authorization-code flow (provider "gh" unless named); returns the connection id. */
  connectAccount(user?: string, provider?: string): Promise<string>;
  /** Mint an agent capability through the RPC, as the operator. */
  mint(grants: Grant[], ttlSeconds?: number, subject?: string): Promise<MintResponse>;
  /** The agent client for a token. */
  client(token: string): CapvaultClient;
  /** The access token currently stored for a connection (to search outputs for it). */
  accessTokenOf(connectionId: string): Promise<string>;
  /** With `exposeSecrets`: every access and refresh token stored for the connection (every generation still stored). */
  secretsOf(connectionId: string): Promise<StoredSecrets>;
  /** Raw gRPC clients acting with the operator token in metadata (see `operatorMetadata`). */
  rpc: { capabilities: CapabilityServiceClient; connections: ConnectionServiceClient; admin: AdminServiceClient };
  /** `authorization: Bearer <operator token>` (or another token). */
  operatorMetadata(token?: string): Metadata;
  /** Directory holding providers/, policies/ and the CA files of this broker. */
  dir: string;
  close(): Promise<void>;
}

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  await assertLocalhostIsLoopback();
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
  await writeFile(join(dir, "unrelated-ca.pem"), UNRELATED_CA);
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
  const ghApi = {
    baseUrl: `https://localhost:${upstream.port}`,
    allowedHosts: ["localhost"],
    credentialHeader: { name: "Authorization", scheme: "Bearer" },
    allowPrivateAddresses: true,
    caFile: join(dir, "ca.pem"),
  };
  const variantContext: ProviderVariantContext = {
    upstreamPort: upstream.port,
    caFile: join(dir, "ca.pem"),
    unrelatedCaFile: join(dir, "unrelated-ca.pem"),
  };
  await writeFile(join(providersDir, "gh.json"), JSON.stringify(testProviderFile("gh", idp.issuer, envPrefix, ghApi)));
  for (const [id, variant] of Object.entries(options.providers ?? {})) {
    await writeFile(join(providersDir, `${id}.json`), JSON.stringify(testProviderFile(id, idp.issuer, envPrefix, { ...ghApi, ...variant(variantContext) })));
  }

  const db = options.memory ? undefined : await openTestDatabase("broker");
  const kek = options.exposeSecrets ? randomBytes(32).toString("base64") : undefined;
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
      ...(kek ? { "kek.key": kek } : {}),
      ...options.config,
    },
  });
  const logs: string[] = [];
  const logger = createLogger("debug", { write: (line: string) => void logs.push(line) });
  let broker: Broker;
  try {
    broker = await startBroker(config, logger, options.brokerOptions);
  } catch (err) {
    await Promise.all([idp.close(), upstream.close(), db?.drop(), rm(dir, { recursive: true, force: true })]);
    delete process.env[`${envPrefix}_ID`];
    delete process.env[`${envPrefix}_SECRET`];
    throw err;
  }
  const address = broker.grpcAddress;
  const operatorToken = broker.devOperatorToken!;
  const md = () => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${operatorToken}`);
    return m;
  };
  const connections = new ConnectionServiceClient(address, credentials.createInsecure());
  const capabilities = new CapabilityServiceClient(address, credentials.createInsecure());
  const admin = new AdminServiceClient(address, credentials.createInsecure());
  const clients: CapvaultClient[] = [];
  let vault: Vault | undefined;

  return {
    broker,
    address,
    operatorToken,
    tenant: "acme",
    idp,
    upstream,
    logs,
    db,
    connectAccount(user = "alice", provider = "gh") {
      return connectThroughOAuth(connections, md(), { tenant: "acme", user, provider }, `http://127.0.0.1:${httpPort}/oauth/callback`, (e) =>
        withBrokerErrors(e, logs),
      );
    },
    mint(grants, ttlSeconds = 3600, subject = "agent-1") {
      return mintAgent(capabilities, md(), { tenant: "acme", subject, grants, ttlSeconds });
    },
    client(token) {
      const c = connect(address, token);
      clients.push(c);
      return c;
    },
    async accessTokenOf(connectionId) {
      return (await broker.oauth.resolveAccessToken("acme", connectionId)).accessToken;
    },
    async secretsOf(connectionId) {
      if (!kek) throw new Error("secretsOf needs startTestBroker({ exposeSecrets: true })");
      vault ??= await openVault({ dataKeys: broker.store.dataKeys, keyring: { source: "env", key: kek } });
      const generations: CredentialRecord[] = db
        ? ((await db.db.collection("credentials").find({ connection: connectionId }).toArray()) as unknown as CredentialRecord[])
        : [await broker.store.credentials.latest("acme", connectionId)].filter((c): c is CredentialRecord => c !== undefined);
      const out: StoredSecrets = { accessTokens: [], refreshTokens: [] };
      for (const g of generations) {
        const context = (field: "access_token" | "refresh_token") => ({ tenant: g.tenant, record: g.connection, provider: g.provider, field });
        if (g.accessToken) out.accessTokens.push((await vault.open(g.accessToken, context("access_token"))).toString("utf8"));
        if (g.refreshToken) out.refreshTokens.push((await vault.open(g.refreshToken, context("refresh_token"))).toString("utf8"));
      }
      return out;
    },
    rpc: { capabilities, connections, admin },
    operatorMetadata(token = operatorToken) {
      const m = new Metadata();
      m.set("authorization", `Bearer ${token}`);
      return m;
    },
    dir,
    async close() {
      for (const c of clients) c.close();
      connections.close();
      capabilities.close();
      admin.close();
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

/** Add the broker's error and warning log lines to an error (an INTERNAL answer says nothing by design). */
function withBrokerErrors(err: Error, logs: string[]): Error {
  const lines = logs.filter((l) => /"level":(40|50|60)/.test(l));
  if (lines.length) err.message += `\nbroker log (warn and above):\n${lines.join("\n")}`;
  return err;
}

/**
 * The upstreams of these brokers are reached as `localhost` (with private addresses allowed for those providers
 * only). Refuse to run at all unless that name resolves to loopback addresses only, so no test can send a request
 * off the machine.
 */
async function assertLocalhostIsLoopback(): Promise<void> {
  const all = await lookup("localhost", { all: true });
  const bad = all.filter((a) => !(/^127\.\d+\.\d+\.\d+$/.test(a.address) || a.address === "::1"));
  if (all.length === 0 || bad.length) throw new Error(`test guard: localhost resolves to ${JSON.stringify(all)}, not only to loopback`);
}

/** A `capvault dev` process (the built CLI) with its audit trail and credentials in the FerretDB test database. */
export interface DevBroker {
  process: BrokerProcess;
  address: string;
  /** The dev operator capability the process printed (tenant "dev"). */
  operatorToken: string;
  tenant: string;
  idp: OidcServer;
  upstream: RecordingUpstream;
  db: TestDatabase;
  /** Environment for running `capvault` commands against this broker (CAPVAULT_GRPC_ADDR). */
  cliEnv: NodeJS.ProcessEnv;
  connectAccount(user?: string): Promise<string>;
  mint(grants: Grant[], ttlSeconds?: number, subject?: string): Promise<MintResponse>;
  rpc: { capabilities: CapabilityServiceClient; connections: ConnectionServiceClient; admin: AdminServiceClient };
  operatorMetadata(token?: string): Metadata;
  /** SIGTERM, then wait for the exit code. */
  stop(): Promise<number | null>;
  close(): Promise<void>;
}

/**
 * Start `capvault dev` as a real process against real peers: CAPVAULT_MONGODB_URI on a fresh FerretDB test database,
 * oidc-provider (in this process) as provider "gh", and a recording HTTPS upstream on loopback. `npm run build` first.
 */
export async function startDevBroker(options: { upstream?: UpstreamHandler } = {}): Promise<DevBroker> {
  await assertLocalhostIsLoopback();
  const upstream = await startRecordingUpstream(
    "127.0.0.1",
    options.upstream ??
      ((req, res, body) => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ method: req.method, url: req.url, bodyBytes: body.length }));
      }),
  );
  const dir = await mkdtemp(join(tmpdir(), "capvault-dev-"));
  const providersDir = join(dir, "providers");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(providersDir);
  await writeFile(join(dir, "ca.pem"), TEST_CA);
  const httpPort = await freePort();
  const callbackUrl = `http://127.0.0.1:${httpPort}/oauth/callback`;
  const idp = await startOidcServer({ redirectUris: [callbackUrl] });
  const envPrefix = `CAPVAULT_TEST_${randomBytes(4).toString("hex").toUpperCase()}`;
  await writeFile(
    join(providersDir, "gh.json"),
    JSON.stringify(
      testProviderFile("gh", idp.issuer, envPrefix, {
        baseUrl: `https://localhost:${upstream.port}`,
        allowedHosts: ["localhost"],
        credentialHeader: { name: "Authorization", scheme: "Bearer" },
        allowPrivateAddresses: true,
        caFile: join(dir, "ca.pem"),
      }),
    ),
  );
  const db = await openTestDatabase("devproc");
  let child: BrokerProcess;
  try {
    // The harness sets up its own provider and data: no sandbox (whose connection and events would be in tenant dev).
    child = await startBrokerProcess(["dev", "--no-sandbox", "--grpc-addr", "127.0.0.1:0", "--http-addr", `127.0.0.1:${httpPort}`, "--providers-dir", providersDir], {
      CAPVAULT_MONGODB_URI: db.uri,
      CAPVAULT_MONGODB_DATABASE: db.name,
      CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: "true",
      CAPVAULT_TOKEN: "",
      [`${envPrefix}_ID`]: idp.clientId,
      [`${envPrefix}_SECRET`]: idp.clientSecret,
    });
  } catch (err) {
    await Promise.all([idp.close(), upstream.close(), db.drop()]);
    throw err;
  }
  const operatorToken = /export CAPVAULT_TOKEN=(\S+)/.exec(child.stdout())?.[1];
  if (!operatorToken) throw new Error(`capvault dev printed no operator token:\n${child.stdout()}`);
  const address = child.address;
  const capabilities = new CapabilityServiceClient(address, credentials.createInsecure());
  const connections = new ConnectionServiceClient(address, credentials.createInsecure());
  const admin = new AdminServiceClient(address, credentials.createInsecure());
  const md = (token = operatorToken) => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
    return m;
  };
  const stop = async () => {
    if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill("SIGTERM");
    return child.exited;
  };
  return {
    process: child,
    address,
    operatorToken,
    tenant: "dev",
    idp,
    upstream,
    db,
    cliEnv: { CAPVAULT_GRPC_ADDR: address },
    connectAccount(user = "alice") {
      return connectThroughOAuth(connections, md(), { tenant: "dev", user, provider: "gh" }, callbackUrl);
    },
    mint(grants, ttlSeconds = 3600, subject = "agent-1") {
      return mintAgent(capabilities, md(), { tenant: "dev", subject, grants, ttlSeconds });
    },
    rpc: { capabilities, connections, admin },
    operatorMetadata: md,
    stop,
    async close() {
      capabilities.close();
      connections.close();
      admin.close();
      const timer = setTimeout(() => child.child.kill("SIGKILL"), 10_000);
      await stop();
      clearTimeout(timer);
      await idp.close();
      await upstream.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The real authorization-code flow, as an operator: BeginConnect, the provider's pages, the broker's callback. */
export async function connectThroughOAuth(
  connections: ConnectionServiceClient,
  md: Metadata,
  who: { tenant: string; user: string; provider: string },
  callbackUrl: string,
  mapError: (e: ServiceError) => Error = (e) => e,
): Promise<string> {
  const begun = await new Promise<BeginConnectResponse>((ok, no) =>
    connections.beginConnect({ ...who, scopes: [] }, md, (e, r) => (e ? no(mapError(e)) : ok(r))),
  );
  const callback = await followToCallback(begun.authorizationUrl, callbackUrl);
  const page = await openCallback(callback);
  if (!page.text.includes("is now connected")) throw new Error(`connect failed: ${page.text}`);
  return begun.connectionId;
}

/** Mint an agent (non-operator) capability through the RPC, as the operator. */
export function mintAgent(
  capabilities: CapabilityServiceClient,
  md: Metadata,
  m: { tenant: string; subject: string; grants: Grant[]; ttlSeconds: number },
): Promise<MintResponse> {
  return new Promise<MintResponse>((ok, no) =>
    capabilities.mint(
      { tenant: m.tenant, subject: m.subject, grants: m.grants, ttl: { seconds: m.ttlSeconds, nanos: 0 }, operator: false, allowUnknownConnections: false },
      md,
      (e: ServiceError | null, r: MintResponse) => (e ? no(e) : ok(r)),
    ),
  );
}
