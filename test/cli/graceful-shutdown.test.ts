import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type CapvaultClientError } from "../../src/client/index.js";
import { CapabilityServiceClient, type MintResponse } from "../../src/gen/capvault/v1/capability.js";
import { ConnectionServiceClient, type BeginConnectResponse } from "../../src/gen/capvault/v1/connection.js";
import { followToCallback, openCallback } from "../oauth/support/authorize-driver.js";
import { startOidcServer, type OidcServer } from "../oauth/support/oidc-server.js";
import { startRecordingUpstream, type RecordingUpstream } from "../proxy/recording-upstream.js";
import { startBrokerProcess, type BrokerProcess } from "../support/broker-process.js";
import { freePort } from "../support/free-port.js";
import { writeTestProviderCatalog } from "../support/test-provider.js";

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  cleanup = [];
});

const call = <T>(fn: (cb: (e: ServiceError | null, r: T) => void) => void) =>
  new Promise<T>((ok, no) => fn((e, r) => (e ? no(e) : ok(r))));

describe("graceful shutdown of a real broker process", () => {
  it("SIGTERM while a Proxy call is in flight: the call completes, new calls are refused, the process exits 0", async () => {
    const root = await mkdtemp(join(tmpdir(), "capvault-shutdown-"));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const slowArrived = new Promise<void>((r) => (arrived = r));
    const upstream: RecordingUpstream = await startRecordingUpstream("127.0.0.1", (req, res) => {
      const answer = () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ path: req.url }));
      };
      if (req.url?.startsWith("/slow")) {
        arrived();
        void released.then(answer);
      } else answer();
    });
    cleanup.push(() => upstream.close());
    const httpPort = await freePort();
    const idp: OidcServer = await startOidcServer({ redirectUris: [`http://127.0.0.1:${httpPort}/oauth/callback`] });
    cleanup.push(() => idp.close());
    const catalog = await writeTestProviderCatalog(root, idp, upstream);

    const broker: BrokerProcess = await startBrokerProcess(["dev", "--grpc-addr", "127.0.0.1:0"], {
      ...catalog.clientEnv,
      CAPVAULT_PROVIDERS_DIR: catalog.dir,
      CAPVAULT_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: "true",
      CAPVAULT_DEV_TENANT: "acme",
      CAPVAULT_SHUTDOWN_GRACE_MS: "15000",
    });
    cleanup.push(async () => {
      if (broker.child.exitCode === null) broker.child.kill("SIGKILL");
      await broker.exited;
    });
    const operator = /export CAPVAULT_TOKEN=(\S+)/.exec(broker.stdout())![1];
    const md = new Metadata();
    md.set("authorization", `Bearer ${operator}`);

    const connections = new ConnectionServiceClient(broker.address, credentials.createInsecure());
    const caps = new CapabilityServiceClient(broker.address, credentials.createInsecure());
    cleanup.push(async () => {
      connections.close();
      caps.close();
    });
    const begun = await call<BeginConnectResponse>((cb) => connections.beginConnect({ tenant: "acme", user: "alice", provider: "gh", scopes: [] }, md, cb));
    const page = await openCallback(await followToCallback(begun.authorizationUrl, `http://127.0.0.1:${httpPort}/oauth/callback`));
    expect(page.text).toContain("is now connected");
    const minted = await call<MintResponse>((cb) =>
      caps.mint({ tenant: "acme", subject: "agent", grants: [{ connection: begun.connectionId, method: "GET", pathPrefix: "/" }], ttl: { seconds: 600, nanos: 0 }, operator: false }, md, cb),
    );
    const agent = connect(broker.address, minted.token);
    cleanup.push(async () => agent.close());

    const inFlight = agent.fetch(begun.connectionId, { path: "/slow", timeoutMs: 20_000 });
    await slowArrived;
    broker.child.kill("SIGTERM");
    // Wait until the broker has stopped accepting calls, then show a new call is refused.
    await waitFor(() => broker.stderr().includes("shutting down"));
    const refused = (await agent.fetch(begun.connectionId, { path: "/fast", timeoutMs: 3000 }).catch((e) => e)) as CapvaultClientError;
    expect([status.UNAVAILABLE, status.CANCELLED]).toContain(refused.code);

    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ path: "/slow" });
    expect(await broker.exited).toBe(0);
    expect(broker.stderr()).toContain('"forced":false');
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
