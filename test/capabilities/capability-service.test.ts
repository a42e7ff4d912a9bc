import { credentials, loadPackageDefinition, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateRootKey } from "../../src/capabilities/root-keys.js";
import { loadBiscuit, type BiscuitBinding } from "../../src/capabilities/binding/wasm-loader.js";
import { CapvaultClientError, type FetchRequest } from "../../src/client/index.js";
import { readErrorDetails, type ErrorDetails } from "../../src/errors/grpc-status.js";
import {
  CapabilityServiceClient,
  type AttenuateResponse,
  type AuthorizeResponse,
  type InspectResponse,
  type ListPublicKeysResponse,
  type MintRequest,
  type MintResponse,
  type Restriction,
  type RevokeResponse,
} from "../../src/gen/capvault/v1/capability.js";
import { ConnectionServiceClient, type BeginConnectResponse } from "../../src/gen/capvault/v1/connection.js";
import type { HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { followToCallback, openCallback } from "../oauth/support/authorize-driver.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * CapabilityService over real gRPC against a whole in-process broker (FerretDB, oidc-provider, an HTTPS upstream):
 * who may mint, the attenuation chain of the "Capabilities" issue through the RPCs and the Biscuit library offline,
 * real Proxy calls, hostile tokens and values.
 */

let t: TestBroker;
let caps: CapabilityServiceClient;
let B: BiscuitBinding;
let conn: string; // alice's connection (tenant acme)
let bobConn: string; // a second account in acme
let globexConn: string; // a connection in another tenant
let globexOperator: string;
let publicKeyHex: string;

type Method = "mint" | "attenuate" | "inspect" | "authorize" | "revoke" | "listPublicKeys";

/** Call a CapabilityService RPC with an optional bearer token. */
function rpc<Res>(method: Method, request: object, bearer?: string): Promise<Res> {
  const md = new Metadata();
  if (bearer) md.set("authorization", `Bearer ${bearer}`);
  return new Promise<Res>((resolve, reject) =>
    (caps[method] as (r: object, m: Metadata, o: object, cb: (e: ServiceError | null, r: Res) => void) => void).call(
      caps,
      request,
      md,
      { deadline: Date.now() + 20_000 },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

/** The rich error of a failed call (gRPC code, ErrorInfo reason and metadata). */
async function failure(promise: Promise<unknown>): Promise<ErrorDetails> {
  try {
    await promise;
  } catch (err) {
    return readErrorDetails(err as ServiceError);
  }
  throw new Error("expected the call to fail");
}

const mintRequest = (over: Partial<MintRequest> = {}): MintRequest => ({
  tenant: "acme",
  subject: "agent-1",
  grants: [{ connection: conn, method: "GET", pathPrefix: "/repos/acme/" }],
  ttl: { seconds: 3600, nanos: 0 },
  operator: false,
  allowUnknownConnections: false,
  ...over,
});

const restriction = (r: Partial<Restriction>): Restriction => ({ connections: [], methods: [], pathPrefix: "", query: [], body: [], checks: [], approvalMethods: [], ...r });

const attenuateRpc = async (token: string, r: Partial<Restriction>) => (await rpc<AttenuateResponse>("attenuate", { token, restriction: restriction(r) })).token;

const httpRequest = (r: Partial<HttpRequest> = {}): HttpRequest => ({
  connection: conn,
  method: "GET",
  path: "/repos/acme/widgets/issues",
  query: [],
  headers: [],
  body: Buffer.alloc(0),
  ...r,
});

const authorizeRpc = (token: string, r: Partial<HttpRequest> = {}) => rpc<AuthorizeResponse>("authorize", { token, request: httpRequest(r) });

/** Append a block with the Biscuit library directly (what an agent does offline): verify, add code with parameters, sign. */
function appendOffline(base: string, code: string, params: Record<string, unknown> = {}): string {
  const pk = B.PublicKey.fromString(publicKeyHex, B.SignatureAlgorithm.Ed25519);
  const parsed = B.Biscuit.fromBase64(base, pk);
  const block = B.Biscuit.block_builder();
  block.addCodeWithParameters(code, params, {});
  const derived = parsed.appendBlock(block);
  const out = derived.toBase64();
  for (const o of [pk, parsed, block, derived]) o.free();
  return out;
}

const iso = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString();

/** Proxy through the agent client; resolves with the error (CapvaultClientError) or the response. */
async function proxy(token: string, connection: string, request: FetchRequest) {
  const before = t.upstream.requests.length;
  try {
    const res = await t.client(token).fetch(connection, request);
    return { ok: true as const, status: res.status, json: res.json<{ method: string; url: string }>(), sent: t.upstream.requests.length - before };
  } catch (err) {
    expect(err).toBeInstanceOf(CapvaultClientError);
    return { ok: false as const, error: err as CapvaultClientError, sent: t.upstream.requests.length - before };
  }
}

async function connectGlobex(): Promise<string> {
  const connections = new ConnectionServiceClient(t.address, credentials.createInsecure());
  try {
    const md = new Metadata();
    md.set("authorization", `Bearer ${globexOperator}`);
    const begun = await new Promise<BeginConnectResponse>((ok, no) =>
      connections.beginConnect({ tenant: "globex", user: "carol", provider: "gh", scopes: [] }, md, (e, r) => (e ? no(e) : ok(r))),
    );
    const callback = await followToCallback(begun.authorizationUrl, `${t.broker.httpUrl}/oauth/callback`);
    const page = await openCallback(callback);
    if (!page.text.includes("is now connected")) throw new Error(`connect failed: ${page.text}`);
    return begun.connectionId;
  } finally {
    connections.close();
  }
}

beforeAll(async () => {
  t = await startTestBroker();
  caps = new CapabilityServiceClient(t.address, credentials.createInsecure());
  B = (await loadBiscuit()).binding;
  conn = await t.connectAccount("alice");
  bobConn = await t.connectAccount("bob");
  // An operator of another tenant, signed with the broker's own root key (as a Mint by that tenant's operator would be).
  globexOperator = (
    await t.broker.authority.caps.mint({ rootKey: t.broker.authority.keys.signingKey(), tenant: "globex", subject: "globex-op", grants: [], ttlSeconds: 3600, operator: true })
  ).token;
  globexConn = await connectGlobex();
  const keys = await rpc<ListPublicKeysResponse>("listPublicKeys", {});
  publicKeyHex = keys.keys.find((k) => !k.retired)!.publicKey;
}, 120_000);
afterAll(async () => {
  caps?.close();
  await t?.close();
});

describe("Mint is for operators of the tenant", () => {
  it("without a token: UNAUTHENTICATED CAPABILITY_MISSING", async () => {
    const e = await failure(rpc("mint", mintRequest()));
    expect(e).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_MISSING" });
  });

  it("with an agent token: PERMISSION_DENIED OPERATOR_REQUIRED, naming the operation", async () => {
    const agent = (await rpc<MintResponse>("mint", mintRequest(), t.operatorToken)).token;
    const e = await failure(rpc("mint", mintRequest({ subject: "agent-2" }), agent));
    expect(e).toMatchObject({ code: status.PERMISSION_DENIED, reason: "OPERATOR_REQUIRED", metadata: { operation: "mint" } });
    // An agent token can neither mint an operator nor revoke.
    expect((await failure(rpc("mint", mintRequest({ operator: true, grants: [] }), agent))).reason).toBe("OPERATOR_REQUIRED");
    expect((await failure(rpc("revoke", { revocationIds: ["ab".repeat(32)], reason: "" }, agent))).reason).toBe("OPERATOR_REQUIRED");
  });

  it("with an operator token of another tenant: refused either way", async () => {
    const intoAcme = await failure(rpc("mint", mintRequest(), globexOperator));
    expect(intoAcme).toMatchObject({ code: status.PERMISSION_DENIED, reason: "CAPABILITY_TENANT_MISMATCH" });
    const intoGlobex = await failure(rpc("mint", mintRequest({ tenant: "globex" }), t.operatorToken));
    expect(intoGlobex).toMatchObject({ code: status.PERMISSION_DENIED, reason: "CAPABILITY_TENANT_MISMATCH" });
    // ... while each operator mints in its own tenant.
    const own = await rpc<MintResponse>("mint", mintRequest({ tenant: "globex", grants: [{ connection: globexConn, method: "GET", pathPrefix: "/" }] }), globexOperator);
    expect(own.revocationIds).toHaveLength(1);
  });

  it("an operator token narrowed to one operation can do only that one", async () => {
    const revokeOnly = appendOffline(t.operatorToken, "check if operation({op});", { op: "revoke" });
    const e = await failure(rpc("mint", mintRequest(), revokeOnly));
    expect(e).toMatchObject({ code: status.PERMISSION_DENIED, reason: "CAPABILITY_CHECK_FAILED", metadata: { block: "1", check: "0" } });
    const ok = await rpc<RevokeResponse>("revoke", { revocationIds: ["cd".repeat(32)], reason: "test" }, revokeOnly);
    expect(ok.revoked).toBe(1);
  });
});

describe("the attenuation chain through the RPCs: only requests inside every block pass", () => {
  let A: MintResponse; // GET under /repos/acme/ on alice's connection, 1 h
  let Bt: string; // + Attenuate RPC: /repos/acme/widgets/
  let C: string; // + offline block: 5 minutes
  let cExpiry: string;

  beforeAll(async () => {
    A = await rpc<MintResponse>("mint", mintRequest(), t.operatorToken);
    Bt = await attenuateRpc(A.token, { pathPrefix: "/repos/acme/widgets/" });
    cExpiry = iso(Date.now() + 5 * 60_000);
    C = appendOffline(Bt, "check if time($time), $time <= {exp};", { exp: { date: cExpiry } });
  });

  it("C is allowed inside every block: Authorize dry run and a real Proxy call", async () => {
    const d = await authorizeRpc(C, { path: "/repos/acme/widgets/issues" });
    expect(d).toMatchObject({ allowed: true, denials: [], canonicalMethod: "GET", canonicalPath: "/repos/acme/widgets/issues" });
    const res = await proxy(C, conn, { path: "/repos/acme/widgets/issues", query: { state: "open" } });
    expect(res).toMatchObject({ ok: true, status: 200, sent: 1, json: { method: "GET", url: "/repos/acme/widgets/issues?state=open" } });
    // (the prefix itself, without the trailing slash, is inside it)
    expect((await authorizeRpc(C, { path: "/repos/acme/widgets" })).allowed).toBe(true);
  });

  it("Inspect and Attenuate take the capability from the authorization metadata too, like every other RPC", async () => {
    const byField = await rpc<InspectResponse>("inspect", { token: C });
    expect(await rpc<InspectResponse>("inspect", { token: "" }, C)).toEqual(byField);
    const narrowed = await rpc<AttenuateResponse>("attenuate", { token: "", restriction: { connections: [], methods: ["GET"], pathPrefix: "", query: [], body: [], checks: [], approvalMethods: [] } }, C);
    expect((await rpc<InspectResponse>("inspect", { token: narrowed.token })).blocks).toHaveLength(4);
    expect((await failure(rpc("inspect", { token: "" }))).reason).toBe("CAPABILITY_MISSING");
  });

  it("Inspect shows three blocks as structured data; the earliest expiry wins", async () => {
    const ins = await rpc<InspectResponse>("inspect", { token: C });
    expect(ins).toMatchObject({ tenant: "acme", subject: "agent-1", revoked: false, rootKeyId: A.rootKeyId });
    expect(ins.blocks.map((b) => b.index)).toEqual([0, 1, 2]);
    expect(ins.revocationIds).toEqual(ins.blocks.map((b) => b.revocationId));
    expect(ins.revocationIds.slice(0, 1)).toEqual(A.revocationIds);
    expect(ins.blocks[0].facts).toEqual([
      { name: "tenant", terms: [{ string: "acme" }] },
      { name: "subject", terms: [{ string: "agent-1" }] },
      { name: "right", terms: [{ string: conn }, { string: "GET" }, { string: "/repos/acme/" }] },
    ]);
    expect(ins.blocks[0].expiresAt?.toISOString()).toBe(A.expiresAt?.toISOString());
    expect(ins.blocks[1].facts).toEqual([]);
    expect(ins.blocks[1].checks).toEqual(['check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")']);
    expect(ins.blocks[2].checks).toEqual([`check if time($time), $time <= ${cExpiry.replace(".000Z", "Z")}`]);
    expect(ins.blocks[2].expiresAt?.toISOString()).toBe(cExpiry);
    expect(ins.expiresAt?.toISOString()).toBe(cExpiry);
  });

  it("ListPublicKeys lets anyone verify a token offline with the Biscuit library", async () => {
    const { keys } = await rpc<ListPublicKeysResponse>("listPublicKeys", {});
    const key = keys.find((k) => String(k.keyId) === A.rootKeyId)!;
    expect(key).toMatchObject({ algorithm: "ed25519", retired: false, createdAt: expect.any(Date) });
    expect(key.createdAt!.getTime()).toBeLessThanOrEqual(Date.now());
    expect(key.publicKey).toMatch(/^[0-9a-f]{64}$/);
    const pk = B.PublicKey.fromString(key.publicKey, B.SignatureAlgorithm.Ed25519);
    const verified = B.Biscuit.fromBase64(C, pk);
    expect(verified.countBlocks()).toBe(3);
    const ids = (await rpc<InspectResponse>("inspect", { token: C })).revocationIds;
    expect(verified.getRevocationIdentifiers()).toEqual(ids);
    verified.free();
    // A token signed by any other key does not verify against it.
    const stranger = await t.broker.authority.caps.mint({ rootKey: generateRootKey(1), tenant: "acme", subject: "x", grants: [{ connection: conn, method: "GET", pathPrefix: "/" }], ttlSeconds: 60 });
    expect(() => B.Biscuit.fromBase64(stranger.token, pk)).toThrow();
    pk.free();
  });

  it("a grant right(...) appended offline grants nothing (nor operator(true) or tenant(...))", async () => {
    const widened = appendOffline(C, "right({c}, {m}, {p}); right({c}, {g}, {p}); operator(true); tenant({t});", { c: conn, m: "DELETE", g: "GET", p: "/", t: "globex" });
    const del = await authorizeRpc(widened, { method: "DELETE", path: "/repos/acme/widgets/x" });
    expect(del).toMatchObject({ allowed: false, denials: [expect.objectContaining({ reason: "NO_MATCHING_GRANT", rule: expect.stringContaining("allow if right(") })] });
    const outside = await authorizeRpc(widened, { path: "/orgs/acme" });
    expect(outside.allowed).toBe(false);
    expect(outside.denials).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 0 }),
        expect.objectContaining({ reason: "NO_MATCHING_GRANT" }),
      ]),
    );
    const viaProxy = await proxy(widened, conn, { method: "DELETE", path: "/repos/acme/widgets/x" });
    expect(viaProxy).toMatchObject({ ok: false, sent: 0 });
    if (!viaProxy.ok) expect(viaProxy.error).toMatchObject({ code: status.PERMISSION_DENIED, reason: "NO_MATCHING_GRANT" });
    // Its operator(true) does not make it an operator either.
    expect((await failure(rpc("mint", mintRequest(), widened))).reason).toBe("OPERATOR_REQUIRED");
  });

  it("a second method is denied, even when a later block lists it", async () => {
    const both = await attenuateRpc(C, { methods: ["GET", "POST"] });
    for (const token of [C, both]) {
      const d = await authorizeRpc(token, { method: "POST", path: "/repos/acme/widgets/issues", body: Buffer.from("{}"), headers: [{ name: "content-type", value: "application/json" }] });
      expect(d.allowed).toBe(false);
      expect(d.denials).toEqual([expect.objectContaining({ reason: "NO_MATCHING_GRANT", blockIndex: -1 })]);
      const res = await proxy(token, conn, { method: "POST", path: "/repos/acme/widgets/issues", body: {} });
      expect(res).toMatchObject({ ok: false, sent: 0 });
      if (!res.ok) expect(res.error.reason).toBe("NO_MATCHING_GRANT");
    }
    // And a block that allows only POST leaves nothing at all.
    const postOnly = await attenuateRpc(C, { methods: ["POST"] });
    const get = await authorizeRpc(postOnly);
    expect(get.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 3, checkIndex: 0, rule: 'check if method($m), {"POST"}.contains($m)' })]);
  });

  it("a path outside the prefix is denied by block 1, naming its check", async () => {
    const d = await authorizeRpc(C, { path: "/repos/acme/gadgets" });
    expect(d).toMatchObject({ allowed: false, canonicalPath: "/repos/acme/gadgets" });
    expect(d.denials).toEqual([
      { reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 0, rule: 'check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")', policy: "" },
    ]);
    const res = await proxy(C, conn, { path: "/repos/acme/gadgets" });
    expect(res).toMatchObject({ ok: false, sent: 0 });
    if (!res.ok) expect(res.error).toMatchObject({ code: status.PERMISSION_DENIED, reason: "CAPABILITY_CHECK_FAILED", metadata: { block: "1", check: "0" } });
  });

  it("`..` and `%2e%2e` segments are resolved before authorizing, so they cannot climb out of the prefix", async () => {
    for (const path of ["/repos/acme/widgets/../gadgets", "/repos/acme/widgets/%2e%2e/gadgets", "/repos/acme/widgets/%2E%2E/gadgets/", "/repos/acme/widgets/./../gadgets"]) {
      const d = await authorizeRpc(C, { path });
      expect(d.canonicalPath).toMatch(/^\/repos\/acme\/gadgets\/?$/);
      expect(d.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 0 })]);
      const res = await proxy(C, conn, { path });
      expect(res).toMatchObject({ ok: false, sent: 0 });
      if (!res.ok) expect(res.error).toMatchObject({ reason: "CAPABILITY_CHECK_FAILED", metadata: { block: "1", check: "0" } });
    }
    // Climbing above the root, or an encoded slash, is refused outright.
    for (const path of ["/repos/acme/widgets/../../../../etc", "/repos/acme/widgets/..%2f..%2fgadgets"]) {
      const e = await failure(authorizeRpc(C, { path }));
      expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "PATH_INVALID" });
    }
  });

  it("/repos/acme-evil is not under /repos/acme/ (segment boundaries)", async () => {
    const fromA = await authorizeRpc(A.token, { path: "/repos/acme-evil/x" });
    expect(fromA.denials).toEqual([expect.objectContaining({ reason: "NO_MATCHING_GRANT" })]);
    const fromC = await authorizeRpc(C, { path: "/repos/acme-evil" });
    expect(fromC.denials).toEqual(
      expect.arrayContaining([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 0 }), expect.objectContaining({ reason: "NO_MATCHING_GRANT" })]),
    );
    const res = await proxy(A.token, conn, { path: "/repos/acme-evil/x" });
    expect(res).toMatchObject({ ok: false, sent: 0 });
    if (!res.ok) expect(res.error.reason).toBe("NO_MATCHING_GRANT");
    // (and /repos/acme/widgets-evil is not under /repos/acme/widgets/)
    expect((await authorizeRpc(C, { path: "/repos/acme/widgets-evil" })).denials[0]).toMatchObject({ blockIndex: 1, checkIndex: 0 });
  });

  it("an appended block with a later expiry does not extend the token", async () => {
    const later = iso(Date.now() + 3600_000);
    const extended = appendOffline(C, "check if time($time), $time <= {exp};", { exp: { date: later } });
    const ins = await rpc<InspectResponse>("inspect", { token: extended });
    expect(ins.blocks[3].expiresAt?.toISOString()).toBe(later);
    expect(ins.expiresAt?.toISOString()).toBe(cExpiry);
    // Seen after the earlier expiry: a token that expires in 2 s, then "extended" by an hour, offline and via the RPC.
    const soon = appendOffline(Bt, "check if time($time), $time <= {exp};", { exp: { date: iso(Date.now() + 2000) } });
    const offline = appendOffline(soon, "check if time($time), $time <= {exp};", { exp: { date: later } });
    const viaRpc = await attenuateRpc(soon, { ttl: { seconds: 3600, nanos: 0 } });
    expect((await authorizeRpc(offline)).allowed).toBe(true);
    await new Promise((r) => setTimeout(r, 3100));
    for (const token of [offline, viaRpc]) {
      const d = await authorizeRpc(token);
      expect(d.allowed).toBe(false);
      expect(d.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_EXPIRED", blockIndex: 2, checkIndex: 0 })]);
      const res = await proxy(token, conn, { path: "/repos/acme/widgets/issues" });
      expect(res).toMatchObject({ ok: false, sent: 0 });
      if (!res.ok) expect(res.error).toMatchObject({ reason: "CAPABILITY_EXPIRED", metadata: { block: "2", check: "0" } });
    }
  });

  it("another connection (a second account in the same tenant) is denied, even if a block names it", async () => {
    const naming = await attenuateRpc(C, { connections: [conn, bobConn] });
    for (const token of [C, naming]) {
      const d = await authorizeRpc(token, { connection: bobConn });
      expect(d.allowed).toBe(false);
      expect(d.denials).toEqual([expect.objectContaining({ reason: "NO_MATCHING_GRANT" })]);
      const res = await proxy(token, bobConn, { path: "/repos/acme/widgets/issues" });
      expect(res).toMatchObject({ ok: false, sent: 0 });
      if (!res.ok) expect(res.error.reason).toBe("NO_MATCHING_GRANT");
    }
    // A block restricted to alice's connection refuses bob's by its own check, too.
    const onlyAlice = await attenuateRpc(A.token, { connections: [conn] });
    const d = await authorizeRpc(onlyAlice, { connection: bobConn });
    expect(d.denials).toEqual(expect.arrayContaining([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, rule: expect.stringContaining("connection($c)") })]));
  });

  it("another tenant's connection is denied as a tenant mismatch", async () => {
    const d = await authorizeRpc(C, { connection: globexConn });
    expect(d.allowed).toBe(false);
    expect(d.denials).toEqual(expect.arrayContaining([expect.objectContaining({ reason: "CAPABILITY_TENANT_MISMATCH", blockIndex: -1 })]));
    const res = await proxy(C, globexConn, { path: "/repos/acme/widgets/issues" });
    expect(res).toMatchObject({ ok: false, sent: 0 });
    if (!res.ok) expect(res.error).toMatchObject({ code: status.PERMISSION_DENIED, reason: "CAPABILITY_TENANT_MISMATCH" });
    // Mint refuses a grant for a connection that is not acme's...
    const refused = await failure(rpc("mint", mintRequest({ grants: [{ connection: globexConn, method: "GET", pathPrefix: "/" }] }), t.operatorToken));
    expect(refused).toMatchObject({ code: status.NOT_FOUND, reason: "CONNECTION_NOT_FOUND" });
    // ...and even a token whose grant names it (minted with allow_unknown_connections) is refused on globex's connection.
    const naming = await rpc<MintResponse>("mint", mintRequest({ grants: [{ connection: globexConn, method: "GET", pathPrefix: "/" }], allowUnknownConnections: true }), t.operatorToken);
    const e = await proxy(naming.token, globexConn, { path: "/repos/globex/x" });
    expect(e).toMatchObject({ ok: false, sent: 0 });
    if (!e.ok) expect(e.error.reason).toBe("CAPABILITY_TENANT_MISMATCH");
  });

  it("Attenuate validates what it is given", async () => {
    const bad = await failure(rpc("attenuate", { token: C, restriction: restriction({}) }));
    expect(bad).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST" });
    const notCheck = await failure(rpc("attenuate", { token: C, restriction: restriction({ checks: ['right("c", "GET", "/")'] }) }));
    expect(notCheck).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "DATALOG_INVALID" });
    const smuggled = await failure(rpc("attenuate", { token: C, restriction: restriction({ checks: ['check if true; right("c", "GET", "/")'] }) }));
    expect(smuggled).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "DATALOG_INVALID" });
    const path = await failure(rpc("attenuate", { token: C, restriction: restriction({ pathPrefix: "/repos/../etc/" }) }));
    expect(path).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "PATH_INVALID" });
  });
});

describe("hostile tokens and values: a stable reason, and the broker keeps serving", () => {
  let good: string;
  beforeAll(async () => {
    good = (await rpc<MintResponse>("mint", mintRequest(), t.operatorToken)).token;
  });

  /** The same bad token through Inspect, Attenuate, Authorize, Proxy, and as an operator bearer on Mint. */
  async function refusedEverywhere(token: string, code: number, reason: string) {
    expect(await failure(rpc("inspect", { token }))).toMatchObject({ code, reason });
    expect(await failure(rpc("attenuate", { token, restriction: restriction({ methods: ["GET"] }) }))).toMatchObject({ code, reason });
    expect(await failure(authorizeRpc(token))).toMatchObject({ code, reason });
    expect(await failure(rpc("mint", mintRequest(), token))).toMatchObject({ code, reason });
    const res = await proxy(token, conn, { path: "/repos/acme/widgets/issues" });
    expect(res).toMatchObject({ ok: false, sent: 0 });
    if (!res.ok) expect(res.error).toMatchObject({ code, reason });
  }

  it("malformed: not base64url, or not a Biscuit", async () => {
    await refusedEverywhere("not-a-token!", status.UNAUTHENTICATED, "CAPABILITY_MALFORMED");
    await refusedEverywhere(Buffer.from("hello, I am not a biscuit").toString("base64url"), status.UNAUTHENTICATED, "CAPABILITY_MALFORMED");
  });

  it("truncated", async () => {
    await refusedEverywhere(good.slice(0, Math.floor(good.length / 2)), status.UNAUTHENTICATED, "CAPABILITY_MALFORMED");
    await refusedEverywhere(good.slice(0, good.length - 12), status.UNAUTHENTICATED, "CAPABILITY_MALFORMED");
  });

  it("tampered: one byte of the signed block changed", async () => {
    const bytes = Buffer.from(good, "base64url");
    const at = bytes.indexOf(Buffer.from("agent-1"));
    expect(at).toBeGreaterThan(0);
    bytes[at + 6] = "9".charCodeAt(0); // agent-1 -> agent-9
    await refusedEverywhere(bytes.toString("base64url"), status.UNAUTHENTICATED, "CAPABILITY_SIGNATURE_INVALID");
  });

  it("signed with the wrong key (same key id), or an unknown key id", async () => {
    const mint = (id: number) =>
      t.broker.authority.caps.mint({ rootKey: generateRootKey(id), tenant: "acme", subject: "agent-1", grants: [{ connection: conn, method: "GET", pathPrefix: "/" }], ttlSeconds: 600, operator: true });
    await refusedEverywhere((await mint(1)).token, status.UNAUTHENTICATED, "CAPABILITY_SIGNATURE_INVALID");
    await refusedEverywhere((await mint(77)).token, status.UNAUTHENTICATED, "CAPABILITY_UNKNOWN_ROOT_KEY");
  });

  it("oversized (a real Biscuit over 16 KiB, and junk of that size)", async () => {
    const big = appendOffline(good, "note({s});", { s: "x".repeat(17 * 1024) });
    await refusedEverywhere(big, status.INVALID_ARGUMENT, "CAPABILITY_TOO_LARGE");
    await refusedEverywhere("A".repeat(40_000), status.INVALID_ARGUMENT, "CAPABILITY_TOO_LARGE");
    // Just under the limit is fine, as a bearer header too.
    const large = appendOffline(good, "note({s});", { s: "x".repeat(15 * 1024) });
    expect((await proxy(large, conn, { path: "/repos/acme/x" })).ok).toBe(true);
  });

  it("too deep: more than 16 blocks", async () => {
    let deep = good;
    for (let i = 0; i < 16; i++) deep = appendOffline(deep, "check if method({m});", { m: "GET" });
    await refusedEverywhere(deep, status.INVALID_ARGUMENT, "CAPABILITY_TOO_DEEP");
    // 16 blocks are still fine.
    let sixteen = good;
    for (let i = 0; i < 15; i++) sixteen = appendOffline(sixteen, "check if method({m});", { m: "GET" });
    expect((await authorizeRpc(sixteen, { path: "/repos/acme/x" })).allowed).toBe(true);
  });

  it("Datalog injection in subject, tenant and grant values stays one string", async () => {
    const evil = 'agent"); right("' + conn + '", "DELETE", "/"); operator(true); subject("x';
    const minted = await rpc<MintResponse>("mint", mintRequest({ subject: evil }), t.operatorToken);
    const ins = await rpc<InspectResponse>("inspect", { token: minted.token });
    expect(ins.subject).toBe(evil);
    expect(ins.blocks[0].facts.map((f) => f.name)).toEqual(["tenant", "subject", "right"]);
    expect((await authorizeRpc(minted.token, { method: "DELETE", path: "/repos/acme/x" })).denials).toEqual([expect.objectContaining({ reason: "NO_MATCHING_GRANT" })]);
    expect((await failure(rpc("mint", mintRequest(), minted.token))).reason).toBe("OPERATOR_REQUIRED");

    // A tenant value trying to close the fact: it is just another (foreign) tenant.
    const tenant = await failure(rpc("mint", mintRequest({ tenant: 'acme"); operator(true); tenant("acme' }), t.operatorToken));
    expect(tenant).toMatchObject({ code: status.PERMISSION_DENIED, reason: "CAPABILITY_TENANT_MISMATCH" });

    // A connection value in a grant: one odd connection id that matches no real connection.
    const connEvil = `${conn}", "DELETE", "/"); right("${conn}`;
    expect((await failure(rpc("mint", mintRequest({ grants: [{ connection: connEvil, method: "GET", pathPrefix: "/" }] }), t.operatorToken))).reason).toBe("CONNECTION_NOT_FOUND");
    const g = await rpc<MintResponse>("mint", mintRequest({ grants: [{ connection: connEvil, method: "GET", pathPrefix: "/" }], allowUnknownConnections: true }), t.operatorToken);
    expect((await rpc<InspectResponse>("inspect", { token: g.token })).blocks[0].facts[2].terms[0]).toEqual({ string: connEvil });
    expect((await authorizeRpc(g.token, { method: "DELETE", path: "/repos/acme/x" })).denials).toEqual([expect.objectContaining({ reason: "NO_MATCHING_GRANT" })]);

    // Values the binding would choke on are refused in JS first.
    const nul = await failure(rpc("mint", mintRequest({ subject: "agent\u0000x" }), t.operatorToken));
    expect(nul).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST" });
    const long = await failure(rpc("mint", mintRequest({ subject: "s".repeat(300) }), t.operatorToken));
    expect(long).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST" });
  });

  it("Datalog injection in the request's connection, path, query and body changes nothing", async () => {
    const pinned = await attenuateRpc(good, {
      pathPrefix: "/repos/acme/widgets/",
      query: [{ name: "state", values: ["open"] }],
      body: [{ name: "title", values: ["hi"] }],
    });
    // connection: no such connection (looked up as one opaque id)
    const c = await failure(authorizeRpc(pinned, { connection: `${conn}"); connection("${conn}` }));
    expect(c).toMatchObject({ code: status.NOT_FOUND, reason: "CONNECTION_NOT_FOUND" });
    // path: quotes and spaces are not path characters
    const p = await failure(authorizeRpc(pinned, { path: '/repos/acme/widgets/x"); path("/repos/acme/widgets/' }));
    expect(p).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "PATH_INVALID" });
    // ... percent-encoded, they are literal path bytes: DELETE stays ungranted
    const enc = await authorizeRpc(pinned, { method: "DELETE", path: "/repos/acme/widgets/x%22);right(%22c%22,%22DELETE%22,%22/%22);path(%22" });
    expect(enc.allowed).toBe(false);
    expect(enc.denials).toEqual(expect.arrayContaining([expect.objectContaining({ reason: "NO_MATCHING_GRANT" })]));

    const json = [{ name: "content-type", value: "application/json" }];
    const ok = await authorizeRpc(pinned, { query: [{ name: "state", value: "open" }], headers: json, body: Buffer.from('{"title":"hi"}') });
    expect(ok.allowed).toBe(true);
    // query value and name
    for (const query of [
      [{ name: "state", value: 'open"); query("state", "open' }],
      [{ name: 'state", "open"); query("x', value: "open" }],
    ]) {
      const d = await authorizeRpc(pinned, { query, headers: json, body: Buffer.from('{"title":"hi"}') });
      expect(d.allowed).toBe(false);
      expect(d.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1 })]);
    }
    // body value and field name
    for (const body of ['{"title":"hi\\"); body(\\"title\\", \\"hi"}', '{"title\\", \\"hi\\"); body(\\"x":"hi"}']) {
      const d = await authorizeRpc(pinned, { query: [{ name: "state", value: "open" }], headers: json, body: Buffer.from(body) });
      expect(d.allowed).toBe(false);
      expect(d.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1 })]);
    }
  });

  it("after all of it the broker is SERVING and still answers", async () => {
    const pkg = loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as any;
    const health = new pkg.grpc.health.v1.Health(t.address, credentials.createInsecure());
    const st = await new Promise<string>((ok, no) => health.check({ service: "" }, (e: Error | null, r: { status: string }) => (e ? no(e) : ok(r.status))));
    health.close();
    expect(st).toBe("SERVING");
    expect((await authorizeRpc(good)).allowed).toBe(true);
    expect((await proxy(good, conn, { path: "/repos/acme/widgets/issues" })).ok).toBe(true);
  });
});

describe("Revoke", () => {
  it("revokes a block and everything derived from it, at once on this broker", async () => {
    const A = await rpc<MintResponse>("mint", mintRequest(), t.operatorToken);
    const child = await attenuateRpc(A.token, { pathPrefix: "/repos/acme/widgets/" });
    const sibling = await attenuateRpc(A.token, { pathPrefix: "/repos/acme/gadgets/" });
    const childId = (await rpc<InspectResponse>("inspect", { token: child })).revocationIds[1];
    const grandchild = appendOffline(child, "check if method({m});", { m: "GET" });

    const ids = ["AB".repeat(32), childId.toUpperCase()];
    expect((await rpc<RevokeResponse>("revoke", { revocationIds: ids, reason: "test" }, t.operatorToken)).revoked).toBe(2);
    // Revoking again counts nothing new.
    expect((await rpc<RevokeResponse>("revoke", { revocationIds: [childId], reason: "" }, t.operatorToken)).revoked).toBe(0);

    for (const token of [child, grandchild]) {
      expect(await failure(authorizeRpc(token))).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_REVOKED" });
      expect(await failure(rpc("attenuate", { token, restriction: restriction({ methods: ["GET"] }) }))).toMatchObject({ reason: "CAPABILITY_REVOKED" });
      expect((await rpc<InspectResponse>("inspect", { token })).revoked).toBe(true);
      const res = await proxy(token, conn, { path: "/repos/acme/widgets/issues" });
      expect(res).toMatchObject({ ok: false, sent: 0 });
      if (!res.ok) expect(res.error).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_REVOKED" });
    }
    expect((await authorizeRpc(sibling, { path: "/repos/acme/gadgets/x" })).allowed).toBe(true);
    expect((await authorizeRpc(A.token)).allowed).toBe(true);
  });

  it("refuses ids that are not hex revocation ids", async () => {
    for (const revocationIds of [[], ["not-hex"], ["abc"], ["ab".repeat(200)]]) {
      expect(await failure(rpc("revoke", { revocationIds, reason: "" }, t.operatorToken))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST" });
    }
    expect(await failure(rpc("revoke", { revocationIds: ["ab".repeat(32)], reason: "" }))).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CAPABILITY_MISSING" });
  });
});
