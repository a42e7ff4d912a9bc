import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attenuateOffline,
  attenuateOfflineDetailed,
  CapvaultClientError,
  type CapvaultClient,
  type RootPublicKeyInfo,
} from "../../src/client/index.js";
import { generateRootKey } from "../../src/capabilities/root-keys.js";
import type { AuditEvent } from "../../src/gen/capvault/v1/admin.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * `attenuateOffline(token, restriction)` narrows a capability in the agent's own process, with the capability
 * vocabulary and the Biscuit library (no broker call, no worker, no key), and the broker enforces the result on Proxy
 * like any attenuated token.
 */

let t: TestBroker;
let connection: string;
let parent: string;
let agent: CapvaultClient;
let keys: RootPublicKeyInfo[];

async function refusal(p: Promise<unknown>): Promise<CapvaultClientError> {
  const err = await p.then(
    () => {
      throw new Error("expected a refusal");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CapvaultClientError);
  return err as CapvaultClientError;
}

beforeAll(async () => {
  t = await startTestBroker({ memory: true });
  connection = await t.connectAccount("alice");
  parent = (
    await t.mint([
      { connection, method: "GET", pathPrefix: "/repos/acme/" },
      { connection, method: "POST", pathPrefix: "/repos/acme/" },
    ])
  ).token;
  agent = t.client(parent);
  keys = await agent.publicKeys(); // public: only for the optional early verification
});
afterAll(async () => t?.close());

describe("attenuateOffline", () => {
  it("narrows a token with no broker involved, and the broker enforces every check of the new block", async () => {
    const auditBefore = await auditActions();
    const { token: narrower, revocationIds } = await attenuateOfflineDetailed(
      parent,
      {
        methods: ["GET"],
        pathPrefix: "/repos/acme/widgets/",
        query: [{ name: "state", values: ["open", "closed"] }],
        checks: [{ code: "check if host({h})", params: { h: "localhost" } }],
      },
    );
    expect(revocationIds).toHaveLength(2);
    // Offline means offline: the broker recorded no attenuation.
    expect((await auditActions()).filter((a) => a === "attenuate")).toEqual(auditBefore.filter((a) => a === "attenuate"));

    const sub = agent.withToken(narrower);
    const ok = await sub.fetch(connection, { path: "/repos/acme/widgets/issues", query: { state: "open" } });
    expect(ok.status).toBe(200);
    expect(t.upstream.requests.at(-1)!.url).toBe("/repos/acme/widgets/issues?state=open");

    const cases: Array<[string, Parameters<CapvaultClient["fetch"]>[1], string]> = [
      ["a method the block does not allow", { method: "POST", path: "/repos/acme/widgets/issues", query: { state: "open" }, body: { title: "x" } }, "0"],
      ["a path outside the block's prefix (though inside the parent's)", { path: "/repos/acme/gadgets", query: { state: "open" } }, "1"],
      ["a missing required query parameter", { path: "/repos/acme/widgets/issues" }, "2"],
      ["a query value outside the allowed set", { path: "/repos/acme/widgets/issues", query: { state: "all" } }, "2"],
      ["a repeated query parameter smuggling a second value", { path: "/repos/acme/widgets/issues", query: [["state", "open"], ["state", "all"]] }, "2"],
    ];
    for (const [what, request, check] of cases) {
      const before = t.upstream.requests.length;
      const err = await refusal(sub.fetch(connection, request));
      expect({ what, code: err.code, reason: err.reason, metadata: err.metadata }).toEqual({
        what,
        code: status.PERMISSION_DENIED,
        reason: "CAPABILITY_CHECK_FAILED",
        metadata: { block: "1", check },
      });
      expect(t.upstream.requests.length).toBe(before);
    }
    // The parent token is untouched.
    expect((await agent.fetch(connection, { path: "/repos/acme/gadgets" })).status).toBe(200);

    const inspected = await sub.inspect();
    expect(inspected.blocks).toHaveLength(2);
    expect(inspected.blocks[1].checks).toEqual([
      'check if method($m), {"GET"}.contains($m)',
      'check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")',
      'check all query("state", $v), {"closed", "open"}.contains($v)',
      'check if host("localhost")',
    ]);
    expect(inspected.revocationIds).toEqual(revocationIds);
  });

  it("an expiry set offline is enforced", async () => {
    const expired = await attenuateOffline(parent, { ttlSeconds: 60 }, { now: new Date(Date.now() - 3600_000) });
    const err = await refusal(agent.withToken(expired).fetch(connection, { path: "/repos/acme/x" }));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.reason).toBe("CAPABILITY_EXPIRED");
    const fresh = await attenuateOffline(parent, { ttl: { seconds: 600 } }, { publicKeys: keys }); // verified first, too
    expect((await agent.withToken(fresh).fetch(connection, { path: "/repos/acme/x" })).status).toBe(200);
  });

  it("chains with the broker's Attenuate and with revocation of exactly the offline block", async () => {
    const { token: offline, revocationIds } = await attenuateOfflineDetailed(parent, { pathPrefix: "/repos/acme/widgets/" });
    const online = await agent.withToken(offline).attenuate({ methods: ["GET"] });
    expect((await agent.withToken(online).fetch(connection, { path: "/repos/acme/widgets/x" })).status).toBe(200);
    const offlineAgain = await attenuateOffline(online, { connections: [connection] });
    expect((await agent.withToken(offlineAgain).fetch(connection, { path: "/repos/acme/widgets/y" })).status).toBe(200);

    await new Promise<void>((ok, no) =>
      t.rpc.capabilities.revoke({ revocationIds: [revocationIds[1]], reason: "offline block" }, t.operatorMetadata(), (e) => (e ? no(e) : ok())),
    );
    for (const tok of [offline, online, offlineAgain]) {
      const err = await refusal(agent.withToken(tok).fetch(connection, { path: "/repos/acme/widgets/x" }));
      expect(err).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_REVOKED" });
    }
    expect((await agent.fetch(connection, { path: "/repos/acme/widgets/x" })).status).toBe(200);
  });

  it("refuses what the broker would refuse, with the same reasons", async () => {
    const cases: Array<[Promise<unknown>, string]> = [
      [attenuateOffline(parent, {}), "INVALID_REQUEST"],
      [attenuateOffline(parent, { pathPrefix: "repos/no-leading-slash" }), "PATH_INVALID"],
      [attenuateOffline(parent, { methods: ["GET /x"] }), "METHOD_INVALID"],
      [attenuateOffline(parent, { checks: ['right("c", "DELETE", "/")'] }), "DATALOG_INVALID"],
      [attenuateOffline(parent, { checks: ["check if path({p})"] }), "DATALOG_INVALID"],
      [attenuateOffline("bm90IGEgdG9rZW4", { pathPrefix: "/x/" }), "CAPABILITY_MALFORMED"],
      [attenuateOffline("not base64 at all!", { pathPrefix: "/x/" }), "CAPABILITY_MALFORMED"],
      // With the (optional) public keys, a token that does not verify is reported before anything is appended.
      [attenuateOffline(parent, { pathPrefix: "/x/" }, { publicKeys: generateRootKey(keys[0].keyId).publicKeyHex }), "CAPABILITY_SIGNATURE_INVALID"],
      [attenuateOffline(parent, { pathPrefix: "/x/" }, { publicKeys: [{ keyId: keys[0].keyId + 1, publicKey: keys[0].publicKey }] }), "CAPABILITY_UNKNOWN_ROOT_KEY"],
    ];
    for (const [p, reason] of cases) expect((await refusal(p)).reason).toBe(reason);
  });

  it("cannot launder a forged token: attenuating one offline works, but the broker refuses the result", async () => {
    // Flip one byte inside the authority block's signature.
    const bytes = Buffer.from(parent, "base64url");
    const forged = Buffer.from(bytes);
    const sig = forged.indexOf(Buffer.from((await agent.inspect()).revocationIds[0], "hex"));
    expect(sig).toBeGreaterThan(0);
    forged[sig + 10] ^= 0x01;
    const narrowed = await attenuateOffline(forged.toString("base64url"), { methods: ["GET"] });
    const err = await refusal(agent.withToken(narrowed).fetch(connection, { path: "/repos/acme/x" }));
    expect(err).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_SIGNATURE_INVALID" });
  });

  it("a token at the broker's block limit cannot take another block", async () => {
    let tok = parent;
    for (let i = 1; i < 16; i++) tok = await attenuateOffline(tok, { pathPrefix: "/repos/acme/" });
    expect((await agent.withToken(tok).fetch(connection, { path: "/repos/acme/x" })).status).toBe(200);
    expect((await refusal(attenuateOffline(tok, { pathPrefix: "/repos/acme/" }))).reason).toBe("CAPABILITY_TOO_DEEP");
  });
});

async function auditActions(): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 100));
  const events = await new Promise<AuditEvent[]>((ok, no) =>
    t.rpc.admin.listAuditEvents({ tenant: t.tenant, afterSequence: 0, limit: 1000, writer: "", pageToken: "" }, t.operatorMetadata(), (e, r) => (e ? no(e) : ok(r.events))),
  );
  return events.map((e) => e.action);
}
