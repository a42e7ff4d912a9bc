import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, connect } from "../../src/client/index.js";
import { readErrorDetails } from "../../src/errors/grpc-status.js";
import {
  CapabilityServiceClient,
  type AttenuateResponse,
  type AuthorizeResponse,
  type InspectResponse,
  type MintResponse,
  type Restriction,
  type RevokeResponse,
} from "../../src/gen/capvault/v1/capability.js";
import { openMongoStore } from "../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../src/store/store.js";
import { runCli, startBrokerProcess, type BrokerProcess } from "../support/broker-process.js";
import { openTestDatabase, type TestDatabase } from "../support/mongo.js";
import { storedAuditEvents } from "../support/audit-documents.js";

/**
 * Revocation across processes: two `capvault serve` processes share one FerretDB database and one key-encryption key.
 * The first operator comes from `capvault token bootstrap-operator` (run locally against the same database and key).
 * A block revoked on broker 1 is refused on broker 2 within 2 s (its poller reads the insert-only revocations
 * collection every 500 ms), together with every token derived from it, while a sibling token keeps working.
 */

/** A fixed test key-encryption key (base64 of 32 bytes): both brokers and the bootstrap command must share it. */
const TEST_KEK = Buffer.alloc(32, 0x5a).toString("base64");

let db: TestDatabase;
let store: Store;
let env: NodeJS.ProcessEnv;
let b1: BrokerProcess;
let b2: BrokerProcess;
let c1: CapabilityServiceClient;
let c2: CapabilityServiceClient;
let operator: string;
const CONNECTION = "conn_revocation_test_1";

/** Run the built CLI against this test's database and key. */
const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => runCli(args, { env: { ...env, ...extraEnv } });

function call<Res>(client: CapabilityServiceClient, method: "mint" | "attenuate" | "inspect" | "authorize" | "revoke", request: object, bearer?: string): Promise<Res> {
  const md = new Metadata();
  if (bearer) md.set("authorization", `Bearer ${bearer}`);
  return new Promise<Res>((resolve, reject) =>
    (client[method] as (r: object, m: Metadata, o: object, cb: (e: ServiceError | null, r: Res) => void) => void).call(
      client,
      request,
      md,
      { deadline: Date.now() + 10_000 },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

const restriction = (r: Partial<Restriction>): Restriction => ({ connections: [], methods: [], pathPrefix: "", query: [], body: [], checks: [], approvalMethods: [], ...r });
const attenuate = async (client: CapabilityServiceClient, token: string, r: Partial<Restriction>) =>
  call<AttenuateResponse>(client, "attenuate", { token, restriction: restriction(r) });
const authorize = (client: CapabilityServiceClient, token: string, path: string) =>
  call<AuthorizeResponse>(client, "authorize", {
    token,
    request: { connection: CONNECTION, method: "GET", path, query: [], headers: [], body: Buffer.alloc(0) },
  });

/** The reason a call failed with, or "ALLOWED"/"DENIED" when it answered. */
async function outcome(client: CapabilityServiceClient, token: string, path: string): Promise<string> {
  try {
    return (await authorize(client, token, path)).allowed ? "ALLOWED" : "DENIED";
  } catch (err) {
    return readErrorDetails(err as ServiceError).reason ?? "UNKNOWN";
  }
}

beforeAll(async () => {
  db = await openTestDatabase("revocation");
  env = {
    ...process.env,
    CAPVAULT_MONGODB_URI: db.uri,
    CAPVAULT_MONGODB_DATABASE: db.name,
    CAPVAULT_KEK: TEST_KEK,
    CAPVAULT_KEYRING_FILE: "",
    CAPVAULT_TOKEN: "",
    CAPVAULT_GRPC_ADDR: "",
    CAPVAULT_DEV: "",
    CAPVAULT_POLICIES_DIR: "",
  };
  const args = ["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"];
  b1 = await startBrokerProcess(args, env);
  b2 = await startBrokerProcess(args, env);
  c1 = new CapabilityServiceClient(b1.address, credentials.createInsecure());
  c2 = new CapabilityServiceClient(b2.address, credentials.createInsecure());
  // Authorize needs the connection's route (tenant, provider); nothing here calls upstream before the token is refused.
  store = await openMongoStore(db.uri, db.name);
  const now = new Date();
  await store.connections.insert({ id: CONNECTION, tenant: "acme", user: "alice", provider: "github", scopes: ["repo"], status: "active", createdAt: now, updatedAt: now });
}, 120_000);

afterAll(async () => {
  c1?.close();
  c2?.close();
  for (const b of [b1, b2]) {
    if (b && b.child.exitCode === null && b.child.signalCode === null) {
      b.child.kill("SIGTERM");
      const timer = setTimeout(() => b.child.kill("SIGKILL"), 10_000);
      await b.exited;
      clearTimeout(timer);
    }
  }
  await store?.close();
  await db?.drop();
});

describe("the first operator: capvault token bootstrap-operator", () => {
  it("mints an operator capability locally that both brokers accept", async () => {
    const r = await cli(["token", "bootstrap-operator", "--tenant", "acme", "--subject", "ops@acme", "--ttl", "1h"]);
    expect(r.stderr).toContain("minted an operator capability for ops@acme in tenant acme");
    expect(r.code).toBe(0);
    operator = r.stdout.trim();
    expect(operator).toMatch(/^[A-Za-z0-9_-]+=*$/);
    for (const client of [c1, c2]) {
      const ins = await call<InspectResponse>(client, "inspect", { token: operator });
      expect(ins).toMatchObject({ tenant: "acme", subject: "ops@acme", revoked: false });
      expect(ins.blocks[0].facts).toContainEqual({ name: "operator", terms: [{ boolean: true }] });
    }
    // It is recorded in the tenant's audit trail.
    const audit = await storedAuditEvents(db.db, (e) => e.tenant === "acme" && e.action === "mint");
    expect(audit.map((a) => a.subject)).toContain("capvault token bootstrap-operator (local)");
  });

  it("refuses to run without the broker's database and key", async () => {
    const noDb = await cli(["token", "bootstrap-operator", "--tenant", "acme", "--subject", "x", "--ttl", "1h"], { CAPVAULT_MONGODB_URI: "" });
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toContain("mongodb.uri");
    const noKey = await cli(["token", "bootstrap-operator", "--tenant", "acme", "--subject", "x", "--ttl", "1h"], { CAPVAULT_KEK: "" });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("kek");
    expect(noKey.stdout).toBe("");
    // A different key cannot unseal the root key: nothing is minted.
    const wrongKey = await cli(["token", "bootstrap-operator", "--tenant", "acme", "--subject", "x", "--ttl", "1h"], { CAPVAULT_KEK: Buffer.alloc(32, 1).toString("base64") });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stdout).toBe("");
    expect(wrongKey.stderr).toContain("SECRET_UNDECRYPTABLE");
  });
});

describe("revocation across two broker processes", () => {
  const latencies: number[] = [];

  it("revoking B on broker 1 refuses B and C (derived from B) on broker 2 within 2 s; the sibling B' keeps working", async () => {
    for (let round = 0; round < 3; round++) {
      const A = await call<MintResponse>(c1, "mint", {
        tenant: "acme",
        subject: `agent-${round}`,
        grants: [{ connection: CONNECTION, method: "GET", pathPrefix: "/repos/acme/" }],
        ttl: { seconds: 3600, nanos: 0 },
        operator: false,
      }, operator);
      const B = await attenuate(c1, A.token, { pathPrefix: "/repos/acme/widgets/" }); // A -> B on broker 1
      const C = await attenuate(c2, B.token, { ttl: { seconds: 300, nanos: 0 } }); // B -> C on broker 2
      const sibling = await attenuate(c2, A.token, { pathPrefix: "/repos/acme/gadgets/" }); // A -> B'
      expect(C.revocationIds.slice(0, 2)).toEqual(B.revocationIds);
      expect(sibling.revocationIds[0]).toBe(A.revocationIds[0]);

      // Before: everything works on broker 2 (routes and parsed tokens are warm).
      expect(await outcome(c2, C.token, "/repos/acme/widgets/issues")).toBe("ALLOWED");
      expect(await outcome(c2, B.token, "/repos/acme/widgets/issues")).toBe("ALLOWED");
      expect(await outcome(c2, sibling.token, "/repos/acme/gadgets/issues")).toBe("ALLOWED");

      const revoked = await call<RevokeResponse>(c1, "revoke", { revocationIds: [B.revocationIds[1]], reason: `round ${round}` }, operator);
      const revokedAt = performance.now();
      expect(revoked.revoked).toBe(1);
      // Broker 1 knows at once.
      expect(await outcome(c1, C.token, "/repos/acme/widgets/issues")).toBe("CAPABILITY_REVOKED");

      let seen = "";
      while (performance.now() - revokedAt < 5000) {
        seen = await outcome(c2, C.token, "/repos/acme/widgets/issues");
        if (seen !== "ALLOWED") break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const latency = performance.now() - revokedAt;
      latencies.push(latency);
      expect(seen).toBe("CAPABILITY_REVOKED");
      expect(latency).toBeLessThan(2000);

      // On broker 2: B and C are refused everywhere (Authorize, Attenuate, Proxy); B' and A still work.
      expect(await outcome(c2, B.token, "/repos/acme/widgets/issues")).toBe("CAPABILITY_REVOKED");
      const att = await attenuate(c2, C.token, { methods: ["GET"] }).catch((e: ServiceError) => readErrorDetails(e));
      expect(att).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_REVOKED" });
      const agent = connect(b2.address, C.token);
      const err = await agent.fetch(CONNECTION, { path: "/repos/acme/widgets/issues" }).catch((e) => e);
      agent.close();
      expect(err).toBeInstanceOf(CapvaultClientError);
      expect(err).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_REVOKED" });
      expect(await outcome(c2, sibling.token, "/repos/acme/gadgets/issues")).toBe("ALLOWED");
      expect(await outcome(c2, A.token, "/repos/acme/x")).toBe("ALLOWED");
      expect((await call<InspectResponse>(c2, "inspect", { token: C.token })).revoked).toBe(true);
    }
    console.log(`[revocation] broker 1 Revoke returned -> broker 2 refuses: ${latencies.map((l) => `${Math.round(l)} ms`).join(", ")}`);
  });

  it("an operator revoked on one broker can no longer act on the other", async () => {
    const second = await call<MintResponse>(c1, "mint", { tenant: "acme", subject: "ops-2", grants: [], ttl: { seconds: 600, nanos: 0 }, operator: true }, operator);
    await call<RevokeResponse>(c2, "revoke", { revocationIds: second.revocationIds, reason: "left the team" }, operator);
    const deadline = performance.now() + 2000;
    let reason = "";
    while (performance.now() < deadline) {
      reason = await call(c1, "mint", { tenant: "acme", subject: "x", grants: [], ttl: { seconds: 60, nanos: 0 }, operator: true }, second.token).then(
        () => "MINTED",
        (e: ServiceError) => readErrorDetails(e).reason ?? "",
      );
      if (reason !== "MINTED") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(reason).toBe("CAPABILITY_REVOKED");
  });

  it("a revocation counts only in the revoking operator's tenant: another tenant's operator cannot revoke acme's token", async () => {
    const boot = await cli(["token", "bootstrap-operator", "--tenant", "globex", "--subject", "ops@globex", "--ttl", "1h"]);
    expect(boot.code, boot.stderr).toBe(0);
    const globexOperator = boot.stdout.trim();
    const A = await call<MintResponse>(c1, "mint", {
      tenant: "acme",
      subject: "agent-cross-tenant",
      grants: [{ connection: CONNECTION, method: "GET", pathPrefix: "/repos/acme/" }],
      ttl: { seconds: 3600, nanos: 0 },
      operator: false,
    }, operator);
    // globex's operator learned acme's revocation id: the revocation is recorded, for globex only.
    const byGlobex = await call<RevokeResponse>(c1, "revoke", { revocationIds: A.revocationIds, reason: "not ours" }, globexOperator);
    expect(byGlobex.revoked).toBe(1);
    await new Promise((r) => setTimeout(r, 1500)); // three poll intervals: broker 2 has read it too
    for (const client of [c1, c2]) {
      expect(await outcome(client, A.token, "/repos/acme/widgets/issues")).toBe("ALLOWED");
      expect((await call<InspectResponse>(client, "inspect", { token: A.token })).revoked).toBe(false);
    }
    // acme's own operator revokes it: refused.
    expect((await call<RevokeResponse>(c1, "revoke", { revocationIds: A.revocationIds, reason: "ours" }, operator)).revoked).toBe(1);
    expect(await outcome(c1, A.token, "/repos/acme/widgets/issues")).toBe("CAPABILITY_REVOKED");
  });

  it("root keys rotate and retire with the CLI: new tokens use the new key, a retired key's tokens stop verifying", async () => {
    const before = await call<MintResponse>(c1, "mint", {
      tenant: "acme",
      subject: "agent-before-rotation",
      grants: [{ connection: CONNECTION, method: "GET", pathPrefix: "/repos/acme/" }],
      ttl: { seconds: 3600, nanos: 0 },
      operator: false,
    }, operator);
    const rotated = await cli(["token", "rotate-root-key", "--json"]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const { keyId } = JSON.parse(rotated.stdout) as { keyId: number; publicKey: string };
    const oldKey = Number(before.rootKeyId);
    expect(keyId).toBeGreaterThan(oldKey);
    expect((await store.rootKeys.list()).map((k) => k.id)).toContain(keyId);
    // The signing key cannot be retired; an unknown id neither.
    const signing = await cli(["token", "retire-root-key", "--id", String(keyId)]);
    expect(signing.code).toBe(1);
    expect(signing.stderr).toContain("rotate-root-key");
    expect((await cli(["token", "retire-root-key", "--id", "999"])).code).toBe(1);
    expect((await cli(["token", "retire-root-key", "--id", "x"])).code).toBe(2);

    // A broker started now (its first load) signs with the new key and still verifies the old one...
    const b3 = await startBrokerProcess(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"], env);
    const c3 = new CapabilityServiceClient(b3.address, credentials.createInsecure());
    try {
      const after = await call<MintResponse>(c3, "mint", {
        tenant: "acme",
        subject: "agent-after-rotation",
        grants: [{ connection: CONNECTION, method: "GET", pathPrefix: "/repos/acme/" }],
        ttl: { seconds: 3600, nanos: 0 },
        operator: false,
      }, operator);
      expect(Number(after.rootKeyId)).toBe(keyId);
      expect(await outcome(c3, before.token, "/repos/acme/x")).toBe("ALLOWED");

      // ...until the old key is retired: then its tokens (the operator's too) are refused, the new ones are not.
      const retired = await cli(["token", "retire-root-key", "--id", String(oldKey)]);
      expect(retired.code, retired.stderr).toBe(0);
      expect((await store.rootKeys.list()).find((k) => k.id === oldKey)?.retiredAt).toBeInstanceOf(Date);
      // Key operations are audited in the _system trail: the intent before, the outcome after.
      const keyEvents = await storedAuditEvents(db.db, (e) => e.tenant === "_system");
      const trail = keyEvents.sort((a, b) => a.time.getTime() - b.time.getTime() || a.sequence - b.sequence).map((e) => `${e.action} ${e.decision}`);
      expect(trail).toEqual(expect.arrayContaining(["rotate-root-key intent", "rotate-root-key ok", "retire-root-key intent", "retire-root-key ok"]));
      const b4 = await startBrokerProcess(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"], env);
      const c4 = new CapabilityServiceClient(b4.address, credentials.createInsecure());
      try {
        expect(await outcome(c4, before.token, "/repos/acme/x")).toBe("CAPABILITY_UNKNOWN_ROOT_KEY");
        expect(await outcome(c4, after.token, "/repos/acme/x")).toBe("ALLOWED");
      } finally {
        c4.close();
        b4.child.kill("SIGTERM");
        await b4.exited;
      }
    } finally {
      c3.close();
      b3.child.kill("SIGTERM");
      await b3.exited;
    }
  }, 120_000);

  it("both brokers stop cleanly", async () => {
    for (const b of [b1, b2]) b.child.kill("SIGTERM");
    expect(await Promise.all([b1.exited, b2.exited])).toEqual([0, 0]);
  });
});
