import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError } from "../../src/client/index.js";
import { readErrorDetails } from "../../src/errors/grpc-status.js";
import type { ListAuditEventsResponse } from "../../src/gen/capvault/v1/admin.js";
import type { AttenuateResponse, MintResponse, Restriction, RevokeResponse } from "../../src/gen/capvault/v1/capability.js";
import type { ListConnectionsResponse } from "../../src/gen/capvault/v1/connection.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * Minting never widens: a capability cannot mint a capability wider than itself. An operator capability narrowed to
 * "Mint only, for 2 minutes" used to mint a fresh 12-hour operator capability with none of the narrowing (which then
 * listed audit, listed connections and revoked), and agent capabilities outliving it by hours.
 */

let t: TestBroker;
let connection: string;

beforeAll(async () => {
  t = await startTestBroker({ memory: true });
  connection = await t.connectAccount("alice");
});
afterAll(async () => t?.close());

const md = (token: string) => {
  const m = new Metadata();
  m.set("authorization", `Bearer ${token}`);
  return m;
};
const restriction = (r: Partial<Restriction>): Restriction => ({ connections: [], methods: [], pathPrefix: "", query: [], body: [], checks: [], approvalMethods: [], ...r });

function unaryCall<Res>(invoke: (cb: (e: ServiceError | null, r: Res) => void) => void): Promise<Res> {
  return new Promise((resolve, reject) => invoke((e, r) => (e ? reject(e) : resolve(r))));
}
const reasonOf = (err: unknown) => ({ code: (err as ServiceError).code, reason: readErrorDetails(err as ServiceError).reason });

async function narrowOperator(r: Partial<Restriction>): Promise<string> {
  const res = await unaryCall<AttenuateResponse>((cb) => t.rpc.capabilities.attenuate({ token: t.operatorToken, restriction: restriction(r) }, cb));
  return res.token;
}

function mintWith(minter: string, request: { subject: string; operator: boolean; ttlSeconds: number; grants?: { connection: string; method: string; pathPrefix: string }[] }) {
  return unaryCall<MintResponse>((cb) =>
    t.rpc.capabilities.mint(
      { tenant: t.tenant, subject: request.subject, grants: request.grants ?? [], ttl: { seconds: request.ttlSeconds, nanos: 0 }, operator: request.operator, allowUnknownConnections: false },
      md(minter),
      cb,
    ),
  );
}

describe("Minting never widens", () => {
  it("an operator narrowed to Mint-only for 2 minutes cannot mint an operator capability", async () => {
    const mintOnly = await narrowOperator({ checks: ['check if operation("mint")'], ttl: { seconds: 120, nanos: 0 } });
    const err = await mintWith(mintOnly, { subject: "escalated", operator: true, ttlSeconds: 12 * 3600 }).catch((e: unknown) => e);
    expect(reasonOf(err)).toEqual({ code: status.PERMISSION_DENIED, reason: "MINT_WIDER_THAN_MINTER" });
  });

  it("what a narrowed operator mints expires no later than it, and carries its restrictions", async () => {
    const started = Date.now();
    const narrowed = await narrowOperator({ checks: ['check if operation($op), ["mint", "proxy", "authorize"].contains($op)'], ttl: { seconds: 120, nanos: 0 } });
    const minted = await mintWith(narrowed, { subject: "agent-x", operator: false, ttlSeconds: 12 * 3600, grants: [{ connection, method: "GET", pathPrefix: "/" }] });
    expect(minted.expiresAt!.getTime()).toBeLessThanOrEqual(started + 121_000);
    expect(minted.revocationIds).toHaveLength(2); // the minter's narrowing block travels with it
    const agent = t.client(minted.token);
    expect((await agent.fetch(connection, { method: "GET", path: "/repos/acme/widgets" })).status).toBe(200);
  });

  it("a token minted by a Mint-only operator carries the Mint-only check: it cannot list audit, list connections, revoke or proxy", async () => {
    const mintOnly = await narrowOperator({ checks: ['check if operation("mint")'], ttl: { seconds: 120, nanos: 0 } });
    const minted = await mintWith(mintOnly, { subject: "agent-y", operator: false, ttlSeconds: 3600, grants: [{ connection, method: "GET", pathPrefix: "/" }] });
    const denied = (p: Promise<unknown>) => p.then(() => "ALLOWED", (e: unknown) => (e instanceof CapvaultClientError ? e.reason : readErrorDetails(e as ServiceError).reason));
    expect(await denied(t.client(minted.token).fetch(connection, { method: "GET", path: "/repos/acme/widgets" }))).toBe("CAPABILITY_CHECK_FAILED");
    for (const token of [mintOnly, minted.token]) {
      expect(await denied(unaryCall<ListAuditEventsResponse>((cb) => t.rpc.admin.listAuditEvents({ tenant: t.tenant, afterSequence: 0, limit: 10, writer: "", pageToken: "" }, md(token), cb)))).not.toBe("ALLOWED");
      expect(await denied(unaryCall<ListConnectionsResponse>((cb) => t.rpc.connections.listConnections({ tenant: t.tenant, user: "" }, md(token), cb)))).not.toBe("ALLOWED");
      expect(await denied(unaryCall<RevokeResponse>((cb) => t.rpc.capabilities.revoke({ revocationIds: [minted.revocationIds[0]], reason: "" }, md(token), cb)))).not.toBe("ALLOWED");
    }
  });

  it("a minter narrowed to a connection, method and path cannot mint a grant outside them", async () => {
    const narrowed = await narrowOperator({ connections: [connection], methods: ["GET"], pathPrefix: "/repos/acme/" });
    const err = await mintWith(narrowed, { subject: "agent-z", operator: false, ttlSeconds: 600, grants: [{ connection, method: "POST", pathPrefix: "/" }] }).catch((e: unknown) => e);
    expect((err as ServiceError).code).toBe(status.PERMISSION_DENIED);
  });

  it("an un-narrowed operator still mints operators and agents as asked", async () => {
    const op = await mintWith(t.operatorToken, { subject: "second-operator", operator: true, ttlSeconds: 3600 });
    expect(op.revocationIds).toHaveLength(1);
    const agent = await mintWith(t.operatorToken, { subject: "agent", operator: false, ttlSeconds: 6 * 3600, grants: [{ connection, method: "GET", pathPrefix: "/" }] });
    expect(agent.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 5 * 3600_000);
  });
});
