import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata } from "@grpc/grpc-js";
import { MongoClient } from "mongodb";
import { CapvaultClientError, connect, type CapvaultClient } from "../../src/client/index.js";
import { AdminServiceClient } from "../../src/gen/capvault/v1/admin.js";
import { CapabilityServiceClient } from "../../src/gen/capvault/v1/capability.js";
import { ConnectionServiceClient } from "../../src/gen/capvault/v1/connection.js";
import type { AuditRecord } from "../../src/store/records.js";
import { startOidcServer, type OidcServer } from "../oauth/support/oidc-server.js";
import { startRecordingUpstream, TEST_CA, type RecordingUpstream } from "../proxy/recording-upstream.js";
import { connectThroughOAuth, mintAgent } from "./broker-harness.js";
import { runCli, startBrokerProcess, type BrokerProcess } from "./broker-process.js";
import { freePort } from "./free-port.js";
import { startPrivateDatabase, type PrivateDatabase } from "./private-database.js";
import { testProviderFile } from "./test-provider.js";
import { storedAuditEvents } from "./audit-documents.js";

/**
 * Several `capvault serve` processes on one private FerretDB (which a test may kill, restart or stall), sharing one
 * key-encryption key, one provider ("gh": oidc-provider plus a recording HTTPS upstream) and one connected account.
 */
export interface BrokerCluster {
  db: PrivateDatabase;
  brokers: BrokerProcess[];
  tenant: string;
  operatorToken: string;
  connection: string;
  /** An agent capability for GET anything on the connection. */
  agentToken: string;
  upstream: RecordingUpstream;
  idp: OidcServer;
  env: NodeJS.ProcessEnv;
  operatorMetadata(): Metadata;
  capabilities(broker: number): CapabilityServiceClient;
  admin(broker: number): AdminServiceClient;
  /** Every audit event of the tenant, read straight from the database. */
  auditEvents(): Promise<AuditRecord[]>;
  close(): Promise<void>;
}

export async function startBrokerCluster(options: { brokers: number; env?: NodeJS.ProcessEnv }): Promise<BrokerCluster> {
  const db = await startPrivateDatabase();
  const upstream = await startRecordingUpstream("127.0.0.1", (req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ url: req.url }));
  });
  const dir = await mkdtemp(join(tmpdir(), "capvault-cluster-"));
  await mkdir(join(dir, "providers"));
  await writeFile(join(dir, "ca.pem"), TEST_CA);
  const httpPort = await freePort();
  const callbackUrl = `http://127.0.0.1:${httpPort}/oauth/callback`;
  const idp = await startOidcServer({ redirectUris: [callbackUrl] });
  const envPrefix = `CAPVAULT_CLUSTER_${randomBytes(4).toString("hex").toUpperCase()}`;
  const api = {
    baseUrl: `https://localhost:${upstream.port}`,
    allowedHosts: ["localhost"],
    credentialHeader: { name: "Authorization", scheme: "Bearer" },
    allowPrivateAddresses: true,
    caFile: join(dir, "ca.pem"),
  };
  await writeFile(join(dir, "providers", "gh.json"), JSON.stringify(testProviderFile("gh", idp.issuer, envPrefix, api)));
  const env: NodeJS.ProcessEnv = {
    CAPVAULT_MONGODB_URI: db.uri,
    CAPVAULT_MONGODB_DATABASE: "capvault",
    CAPVAULT_KEK: Buffer.alloc(32, 0x3c).toString("base64"),
    CAPVAULT_KEYRING_FILE: "",
    CAPVAULT_TOKEN: "",
    CAPVAULT_GRPC_ADDR: "",
    CAPVAULT_DEV: "",
    CAPVAULT_POLICIES_DIR: "",
    CAPVAULT_PROVIDERS_DIR: join(dir, "providers"),
    CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: "true",
    CAPVAULT_PUBLIC_URL: `http://127.0.0.1:${httpPort}`,
    [`${envPrefix}_ID`]: idp.clientId,
    [`${envPrefix}_SECRET`]: idp.clientSecret,
    ...options.env,
  };
  const brokers: BrokerProcess[] = [];
  for (let i = 0; i < options.brokers; i++) {
    const http = i === 0 ? `127.0.0.1:${httpPort}` : "127.0.0.1:0";
    brokers.push(await startBrokerProcess(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", http], env));
  }
  const boot = await runCli(["token", "bootstrap-operator", "--tenant", "acme", "--subject", "ops@acme", "--ttl", "2h"], { env: { ...process.env, ...env } });
  if (boot.code !== 0) throw new Error(`bootstrap-operator failed: ${boot.stderr}`);
  const operatorToken = boot.stdout.trim();
  const operatorMetadata = () => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${operatorToken}`);
    return m;
  };
  const capabilityClients = brokers.map((b) => new CapabilityServiceClient(b.address, credentials.createInsecure()));
  const adminClients = brokers.map((b) => new AdminServiceClient(b.address, credentials.createInsecure()));
  const connections = new ConnectionServiceClient(brokers[0].address, credentials.createInsecure());
  const connection = await connectThroughOAuth(connections, operatorMetadata(), { tenant: "acme", user: "alice", provider: "gh" }, callbackUrl);
  connections.close();
  const agent = await mintAgent(capabilityClients[0], operatorMetadata(), {
    tenant: "acme",
    subject: "agent-1",
    grants: [{ connection, method: "GET", pathPrefix: "/" }],
    ttlSeconds: 3600,
  });
  const reader = new MongoClient(db.uri, { serverSelectionTimeoutMS: 20_000 });

  return {
    db,
    brokers,
    tenant: "acme",
    operatorToken,
    connection,
    agentToken: agent.token,
    upstream,
    idp,
    env,
    operatorMetadata,
    capabilities: (i) => capabilityClients[i],
    admin: (i) => adminClients[i],
    async auditEvents() {
      return storedAuditEvents(reader.db("capvault"), (e) => e.tenant === "acme");
    },
    async close() {
      for (const c of [...capabilityClients, ...adminClients]) c.close();
      for (const b of brokers) {
        if (b.child.exitCode === null && b.child.signalCode === null) {
          b.child.kill("SIGTERM");
          const timer = setTimeout(() => b.child.kill("SIGKILL"), 10_000);
          await b.exited;
          clearTimeout(timer);
        }
      }
      await reader.close();
      await db.close();
      await idp.close();
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One agent call's outcome. */
export interface CallResult {
  broker: number;
  path: string;
  ok: boolean;
  reason?: string;
}

/**
 * Agents calling Proxy on the given brokers, `concurrency` calls in flight per broker, every call a distinct path,
 * until `stop()`. Returns every outcome.
 */
export function proxyLoad(cluster: BrokerCluster, brokers: number[], concurrency: number): { stop(): Promise<CallResult[]>; results: CallResult[] } {
  const results: CallResult[] = [];
  let stopped = false;
  let n = 0;
  const run = randomBytes(3).toString("hex");
  const clients: CapvaultClient[] = [];
  const workers = brokers.flatMap((b) => {
    const client = connect(cluster.brokers[b].address, cluster.agentToken);
    clients.push(client);
    return Array.from({ length: concurrency }, async () => {
      while (!stopped) {
        const path = `/repos/acme/load/${run}/${b}-${n++}`;
        try {
          const res = await client.fetch(cluster.connection, { method: "GET", path, timeoutMs: 20_000 });
          results.push({ broker: b, path, ok: res.status === 200 });
        } catch (err) {
          results.push({ broker: b, path, ok: false, reason: err instanceof CapvaultClientError ? err.reason : String(err) });
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
  });
  return {
    results,
    async stop() {
      stopped = true;
      await Promise.all(workers);
      for (const c of clients) c.close();
      return results;
    },
  };
}
