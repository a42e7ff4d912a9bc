import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readErrorDetails } from "../../src/errors/grpc-status.js";
import { CapabilityServiceClient, type AuthorizeResponse, type InspectResponse, type MintResponse, type RevokeResponse } from "../../src/gen/capvault/v1/capability.js";
import { openMongoStore } from "../../src/store/mongodb/mongodb-store.js";
import type { Store } from "../../src/store/store.js";
import { runCli, startBrokerProcess, type BrokerProcess } from "../support/broker-process.js";
import { startPrivateFerretDB, type PrivateFerretDB } from "../support/test-database-server.js";

/**
 * Revocation fails closed. Two `capvault serve` processes share a FerretDB of this test's own, which the test stalls
 * with SIGSTOP (never the shared test server: other files use it concurrently). A broker whose revocation view is older
 * than its bound (capabilities.maxRevocationStalenessMs, 2 s by default) cannot know what was revoked meanwhile, so it
 * refuses every capability with UNAVAILABLE REVOCATIONS_STALE until a poll succeeds again. Root key retirement travels
 * through the same revocation log, so a RUNNING broker drops a retired key within the same bound.
 */

const TEST_KEK = Buffer.alloc(32, 0x3c).toString("base64");
const BOUND_MS = 2000;
/** Slack for one RPC round trip and the scheduling of a loaded 2-core machine on top of the bound. */
const SLACK_MS = 600;
const CONNECTION = "conn_stale_test_1";

let ferret: PrivateFerretDB;
let store: Store;
let env: NodeJS.ProcessEnv;
let b1: BrokerProcess;
let b2: BrokerProcess;
let c1: CapabilityServiceClient;
let c2: CapabilityServiceClient;
let operator: string;

const cli = (args: string[]) => runCli(args, { env });

function call<Res>(client: CapabilityServiceClient, method: "mint" | "inspect" | "authorize" | "revoke", request: object, bearer?: string): Promise<Res> {
  const md = new Metadata();
  if (bearer) md.set("authorization", `Bearer ${bearer}`);
  return new Promise<Res>((resolve, reject) =>
    (client[method] as (r: object, m: Metadata, o: object, cb: (e: ServiceError | null, r: Res) => void) => void).call(
      client,
      request,
      md,
      { deadline: Date.now() + 5_000 },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

const mintAgent = (client: CapabilityServiceClient, subject: string, bearer = operator) =>
  call<MintResponse>(client, "mint", {
    tenant: "acme",
    subject,
    grants: [{ connection: CONNECTION, method: "GET", pathPrefix: "/repos/acme/" }],
    ttl: { seconds: 3600, nanos: 0 },
    operator: false,
  }, bearer);

/** "ALLOWED"/"DENIED", or "<gRPC code> <reason>" when the call failed. */
async function outcome(client: CapabilityServiceClient, token: string): Promise<string> {
  try {
    const res = await call<AuthorizeResponse>(client, "authorize", {
      token,
      request: { connection: CONNECTION, method: "GET", path: "/repos/acme/widgets", query: [], headers: [], body: Buffer.alloc(0) },
    });
    return res.allowed ? "ALLOWED" : "DENIED";
  } catch (err) {
    const d = readErrorDetails(err as ServiceError);
    return `${status[d.code]} ${d.reason ?? ""}`;
  }
}

async function inspectOutcome(client: CapabilityServiceClient, token: string): Promise<string> {
  try {
    return (await call<InspectResponse>(client, "inspect", { token })).revoked ? "REVOKED" : "NOT_REVOKED";
  } catch (err) {
    const d = readErrorDetails(err as ServiceError);
    return `${status[d.code]} ${d.reason ?? ""}`;
  }
}

/** Poll `probe` every 25 ms until `done`; returns the last value and when it was seen (ms after `from`). */
async function waitFor<T>(probe: () => Promise<T>, done: (v: T) => boolean, from: number, limitMs: number): Promise<{ value: T; afterMs: number }> {
  let value = await probe();
  while (!done(value) && performance.now() - from < limitMs) {
    await new Promise((r) => setTimeout(r, 25));
    value = await probe();
  }
  return { value, afterMs: performance.now() - from };
}

beforeAll(async () => {
  ferret = await startPrivateFerretDB();
  env = {
    ...process.env,
    CAPVAULT_MONGODB_URI: ferret.uri,
    CAPVAULT_MONGODB_DATABASE: "stale",
    CAPVAULT_KEK: TEST_KEK,
    CAPVAULT_KEYRING_FILE: "",
    CAPVAULT_TOKEN: "",
    CAPVAULT_GRPC_ADDR: "",
    CAPVAULT_DEV: "",
    CAPVAULT_POLICIES_DIR: "",
    CAPVAULT_MAX_REVOCATION_STALENESS_MS: String(BOUND_MS),
  };
  const boot = await cli(["token", "bootstrap-operator", "--tenant", "acme", "--subject", "ops@acme", "--ttl", "1h"]);
  if (boot.code !== 0) throw new Error(`bootstrap-operator failed: ${boot.stderr}`);
  operator = boot.stdout.trim();
  const args = ["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"];
  [b1, b2] = await Promise.all([startBrokerProcess(args, env), startBrokerProcess(args, env)]);
  c1 = new CapabilityServiceClient(b1.address, credentials.createInsecure());
  c2 = new CapabilityServiceClient(b2.address, credentials.createInsecure());
  store = await openMongoStore(ferret.uri, "stale");
  const now = new Date();
  await store.connections.insert({ id: CONNECTION, tenant: "acme", user: "alice", provider: "github", scopes: ["repo"], status: "active", createdAt: now, updatedAt: now });
}, 180_000);

afterAll(async () => {
  ferret?.process.kill("SIGCONT");
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
  await ferret?.stop();
}, 60_000);

describe("a broker that cannot see revocations refuses capabilities", () => {
  it("database stalled after a revocation on broker 1: broker 2 refuses the revoked and every other capability (UNAVAILABLE) within the bound, and recovers after", async () => {
    const kept = await mintAgent(c1, "agent-kept");
    const revoked = await mintAgent(c1, "agent-revoked");
    // Warm broker 2: the connection's route and both tokens are known there.
    expect(await outcome(c2, kept.token)).toBe("ALLOWED");
    expect(await outcome(c2, revoked.token)).toBe("ALLOWED");

    const r = await call<RevokeResponse>(c1, "revoke", { revocationIds: [revoked.revocationIds[0]], reason: "stall test" }, operator);
    expect(r.revoked).toBe(1);
    expect(await outcome(c1, revoked.token)).toBe("UNAUTHENTICATED CAPABILITY_REVOKED");

    ferret.process.kill("SIGSTOP");
    const stalledAt = performance.now();
    let refusedAfterMs = Number.NaN;
    try {
      // Within the bound (the view's age counts from the start of the last successful poll, which was before the
      // stall), broker 2 refuses both tokens: it cannot know whether they were revoked.
      const stale = "UNAVAILABLE REVOCATIONS_STALE";
      const kept2 = await waitFor(() => outcome(c2, kept.token), (v) => v === stale, stalledAt, BOUND_MS + 3000);
      expect(kept2.value).toBe(stale);
      refusedAfterMs = kept2.afterMs;
      expect(kept2.afterMs).toBeLessThan(BOUND_MS + SLACK_MS);
      expect(await outcome(c2, revoked.token)).toBe(stale);
      expect(await inspectOutcome(c2, kept.token)).toBe(stale);
      // So does broker 1, within its own bound (its last poll may have started after broker 2's): its own revocation
      // is known, but not anyone else's.
      const kept1 = await waitFor(() => outcome(c1, kept.token), (v) => v === stale, stalledAt, BOUND_MS + 3000);
      expect(kept1.value).toBe(stale);
      expect(kept1.afterMs).toBeLessThan(BOUND_MS + SLACK_MS);
      // Polls stuck on the stalled database are abandoned and retried, never counted as fresh: still refused later.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await outcome(c2, kept.token)).toBe(stale);
      expect(await outcome(c2, revoked.token)).toBe(stale);
    } finally {
      ferret.process.kill("SIGCONT");
    }
    const resumedAt = performance.now();
    const back = await waitFor(() => outcome(c2, kept.token), (v) => v === "ALLOWED", resumedAt, 15_000);
    expect(back.value).toBe("ALLOWED");
    console.log(`[revocation-stale] broker 2 refused ${Math.round(refusedAfterMs)} ms into the stall; serving again ${Math.round(back.afterMs)} ms after SIGCONT`);
    expect(await outcome(c2, revoked.token)).toBe("UNAUTHENTICATED CAPABILITY_REVOKED");
    expect(await inspectOutcome(c2, revoked.token)).toBe("REVOKED");
  }, 60_000);

  it("a root key retired with the CLI stops verifying on a RUNNING broker within the bound", async () => {
    const oldToken = await mintAgent(c2, "agent-old-key");
    const rotated = await cli(["token", "rotate-root-key", "--json"]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const { keyId } = JSON.parse(rotated.stdout) as { keyId: number };
    expect(keyId).toBeGreaterThan(Number(oldToken.rootKeyId));
    // An operator signed by the new key (bootstrap signs with the current key), to mint after the old key is gone.
    const boot = await cli(["token", "bootstrap-operator", "--tenant", "acme", "--subject", "ops2@acme", "--ttl", "1h"]);
    expect(boot.code, boot.stderr).toBe(0);
    const newOperator = boot.stdout.trim();
    // The running broker picks up the new signing key from the log too.
    const signsNew = await waitFor(() => mintAgent(c2, "agent-new-key", newOperator), (m) => Number(m.rootKeyId) === keyId, performance.now(), BOUND_MS + 1000);
    expect(Number(signsNew.value.rootKeyId)).toBe(keyId);
    expect(await outcome(c2, oldToken.token)).toBe("ALLOWED");

    const retired = await cli(["token", "retire-root-key", "--id", oldToken.rootKeyId]);
    const retiredAt = performance.now();
    expect(retired.code, retired.stderr).toBe(0);
    const refused = await waitFor(() => outcome(c2, oldToken.token), (v) => v !== "ALLOWED", retiredAt, 10_000);
    console.log(`[revocation-stale] retire-root-key returned -> running broker refuses the old key's token: ${Math.round(refused.afterMs)} ms`);
    expect(refused.value).toBe("UNAUTHENTICATED CAPABILITY_UNKNOWN_ROOT_KEY");
    expect(refused.afterMs).toBeLessThan(BOUND_MS);
    expect(await outcome(c2, signsNew.value.token)).toBe("ALLOWED");
  }, 60_000);
});
