import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Capabilities } from "../../src/capabilities/capabilities.js";
import { loadNativeBiscuit } from "../../src/capabilities/binding/native-loader.js";
import { nextRunAverage } from "../../src/capabilities/native-authorizer.js";
import type { AuthorizeOptions } from "../../src/capabilities/authorize.js";
import type { PolicySet } from "../../src/capabilities/policies.js";
import { generateRootKey, toPublicKey } from "../../src/capabilities/root-keys.js";
import { RevocationSet } from "../../src/capabilities/revocation-set.js";
import type { AccessRequest } from "../../src/capabilities/vocabulary.js";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { githubRequest, mintAcmeToken, type Harness } from "./fixtures.js";

/**
 * The native runtime (native/capvault-biscuit.node, biscuit-auth through Node-API) must decide exactly as the wasm
 * worker path: the same corpus of tokens and requests through both, compared field by field. CI builds the native
 * runtime (`.ci/run`), so these tests run there; a checkout without cargo has only the wasm path and says so.
 */
const native = loadNativeBiscuit();
const NOW = new Date("2030-01-15T12:00:00Z");
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);

const rootKey = generateRootKey(1);
const publicKeys = [toPublicKey(rootKey)];
const onNative: Harness = { caps: new Capabilities({ workers: 1, runtime: "native" }), rootKey, publicKeys };
const onWasm = new Capabilities({ workers: 1, runtime: "wasm" });
afterAll(() => Promise.all([onNative.caps.close(), onWasm.close()]));

/** A decision, or the reason it was refused with. */
async function decide(caps: Capabilities, token: string, request: AccessRequest, options: Partial<AuthorizeOptions>) {
  try {
    return { decision: await caps.authorize(token, request, { publicKeys, now: at(60), ...options }) };
  } catch (err) {
    if (err instanceof CapvaultError) return { reason: err.reason, metadata: { ...err.metadata } };
    throw err;
  }
}

describe.runIf(native)("the native runtime decides exactly as the wasm worker path", () => {
  const tokens: Record<string, string> = {};
  let policies: PolicySet;

  beforeAll(async () => {
    const caps = onNative.caps;
    const root = await mintAcmeToken(onNative, NOW);
    const narrow = async (t: string, r: Parameters<Capabilities["attenuate"]>[1]) => (await caps.attenuate(t, r, publicKeys, NOW)).token;
    tokens.root = root;
    tokens.path = await narrow(root, { pathPrefix: "/repos/acme/widgets/" });
    tokens.ttl = await narrow(tokens.path, { ttlSeconds: 300 });
    tokens.query = await narrow(root, { query: [{ name: "state", values: ["open", "all"] }] });
    tokens.raw = await narrow(root, { checks: ['check if method("GET");', { code: "check if host({h})", params: { h: "api.github.com" } }] });
    const poster = (
      await caps.mint({
        rootKey,
        tenant: "acme",
        subject: "agent-9",
        grants: [{ connection: "conn-slack-1", method: "POST", pathPrefix: "/api/" }],
        ttlSeconds: 3600,
        now: NOW,
      })
    ).token;
    tokens.body = await narrow(poster, { body: [{ name: "channel", values: ["C0123"] }] });
    // Values that JSON writes with escapes (a quote, a backslash, a control-free non-ASCII pair): the native runtime
    // reads its parameters from JSON text and must decode them exactly as written.
    tokens.escapes = await narrow(poster, { body: [{ name: "channel", values: ['C"0\\1\u00e9\ud83d\ude00'] }] });
    let deep = root;
    for (let i = 0; i < 7; i++) deep = await narrow(deep, { pathPrefix: "/repos/acme/widgets/" });
    tokens.deep = deep;
    tokens.foreign = await mintAcmeToken({ caps, rootKey: generateRootKey(1), publicKeys }, NOW);
    policies = await caps.policiesFromSources({
      "10-no-delete.datalog": 'deny if method("DELETE");',
      "20-host.datalog": 'check if host("api.github.com") or host("slack.com");',
    });
  });

  const slack = (body: AccessRequest["body"]): AccessRequest => ({
    tenant: "acme",
    connection: "conn-slack-1",
    provider: "slack",
    host: "slack.com",
    method: "POST",
    path: "/api/chat.postMessage",
    body,
  });
  const requests: Array<[string, AccessRequest, Partial<AuthorizeOptions>]> = [
    ["allowed", githubRequest(), {}],
    ["distinct paths", githubRequest({ path: "/repos/acme/widgets/issues/42" }), {}],
    ["outside the prefix", githubRequest({ path: "/repos/acme/gadgets" }), {}],
    ["sibling prefix", githubRequest({ path: "/repos/acme-evil" }), {}],
    ["another method", githubRequest({ method: "POST" }), {}],
    ["another connection", githubRequest({ connection: "conn-github-2" }), {}],
    ["another tenant", githubRequest({ tenant: "globex" }), {}],
    ["after expiry", githubRequest(), { now: at(7200) }],
    ["after the 5-minute block", githubRequest(), { now: at(600) }],
    ["query allowed", githubRequest({ query: [{ name: "state", value: "open" }, { name: "page", value: "2" }] }), {}],
    ["query refused", githubRequest({ query: [{ name: "state", value: "closed" }] }), {}],
    ["query smuggled", githubRequest({ query: [{ name: "state", value: "open" }, { name: "state", value: "closed" }] }), {}],
    ["other host", githubRequest({ host: "evil.example" }), {}],
    ["body allowed", slack(Buffer.from(JSON.stringify({ channel: "C0123", text: "hi" }))), {}],
    ["body refused", slack(Buffer.from(JSON.stringify({ channel: "C9999", text: "hi" }))), {}],
    ["body missing", slack(Buffer.from("not json")), {}],
    ["body with escapes", slack(Buffer.from(JSON.stringify({ channel: 'C"0\\1\u00e9\ud83d\ude00' }))), {}],
    ["body with its escapes written out", slack(Buffer.from(JSON.stringify({ channel: 'C\\"0\\\\1\\u00e9' }))), {}],
    ["query with escapes", githubRequest({ query: [{ name: "state", value: 'op"en\\' }] }), {}],
    ["policies allow", githubRequest(), { policies: undefined }],
    ["policies deny DELETE", githubRequest({ method: "DELETE" }), { policies: undefined }],
    ["policy check fails", githubRequest({ host: "api.gitlab.com" }), { policies: undefined }],
  ];

  it("on every token of the corpus, for every request, with and without organisation policies", async () => {
    let compared = 0;
    let allowed = 0;
    for (const [tokenName, token] of Object.entries(tokens)) {
      for (const [name, request, options] of requests) {
        const opts = "policies" in options ? { ...options, policies } : options;
        const [n, w] = await Promise.all([decide(onNative.caps, token, request, opts), decide(onWasm, token, request, opts)]);
        expect(n, `${tokenName} / ${name}`).toEqual(w);
        compared++;
        if (n.decision?.allowed) allowed++;
      }
    }
    expect(compared).toBe(Object.keys(tokens).length * requests.length);
    // The corpus exercises both sides of the decision.
    expect(allowed).toBeGreaterThan(10);
    expect(compared - allowed).toBeGreaterThan(50);
  });

  it("revoked, tampered, truncated, random and too-deep tokens are refused with the same reasons", async () => {
    const revoked = new RevocationSet();
    const { decision } = await decide(onNative.caps, tokens.path, githubRequest(), {});
    revoked.add([{ tenant: "acme", id: decision!.revocationIds[1] }]);
    const bytes = Buffer.from(tokens.ttl, "base64url");
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 10] ^= 0xff;
    const cases: Array<[string, string, Partial<AuthorizeOptions>]> = [
      ["revoked block", tokens.ttl, { revocations: revoked }],
      ["tampered", tampered.toString("base64url"), {}],
      ["truncated", bytes.subarray(0, bytes.length - 40).toString("base64url"), {}],
      ["random", randomBytes(300).toString("base64url"), {}],
      ["signed by another root key", tokens.foreign, {}],
    ];
    for (const [name, token, options] of cases) {
      const [n, w] = await Promise.all([decide(onNative.caps, token, githubRequest(), options), decide(onWasm, token, githubRequest(), options)]);
      expect(n, name).toEqual(w);
      expect(n.reason, name).toBeDefined();
    }
    const shallow = new Capabilities({ workers: 1, runtime: "native", limits: { maxBlocks: 4 } });
    const shallowWasm = new Capabilities({ workers: 1, runtime: "wasm", limits: { maxBlocks: 4 } });
    try {
      const [n, w] = await Promise.all([decide(shallow, tokens.deep, githubRequest(), {}), decide(shallowWasm, tokens.deep, githubRequest(), {})]);
      expect(n).toEqual(w);
      expect(n.reason).toBe("CAPABILITY_TOO_DEEP");
    } finally {
      await Promise.all([shallow.close(), shallowWasm.close()]);
    }
  });

  it("runs authorizations on the native runtime, not in the worker pool", async () => {
    expect(onNative.caps.runtime).toBe("native");
    expect(onWasm.runtime).toBe("wasm");
    const poolBefore = onNative.caps.pool.stats().completed;
    const nativeBefore = onNative.caps.native!.completed;
    await onNative.caps.authorize(tokens.root, githubRequest({ path: "/repos/acme/widgets/issues/7" }), { publicKeys, now: at(60) });
    expect(onNative.caps.pool.stats().completed).toBe(poolBefore);
    expect(onNative.caps.native!.completed).toBe(nativeBefore + 1);
  });

  it("a token is verified once, then reused by later requests (and by concurrent first uses)", async () => {
    const caps = new Capabilities({ workers: 1, runtime: "native", decisionCacheSize: 0 });
    try {
      const token = await mintAcmeToken({ caps, rootKey, publicKeys }, NOW);
      const calls = Array.from({ length: 20 }, (_, i) =>
        caps.authorize(token, githubRequest({ path: `/repos/acme/widgets/issues/${i}` }), { publicKeys, now: at(60) }),
      );
      const decisions = await Promise.all(calls);
      expect(decisions.every((d) => d.allowed)).toBe(true);
      expect(caps.native!.misses).toBe(1);
      expect(caps.native!.hits).toBe(19);
    } finally {
      await caps.close();
    }
  });
});

describe.runIf(native)("the verified-token cache", () => {
  it("keeps a token for the root key that verified it: under another key with the same id it is verified again, and refused", async () => {
    const caps = new Capabilities({ workers: 1, runtime: "native", decisionCacheSize: 0 });
    try {
      const token = await mintAcmeToken({ caps, rootKey, publicKeys }, NOW);
      const request = githubRequest({ path: "/repos/acme/widgets/issues/7" });
      expect((await caps.authorize(token, request, { publicKeys, now: at(60) })).allowed).toBe(true);
      const impostor = [{ ...toPublicKey(generateRootKey(rootKey.id)), id: publicKeys[0].id }];
      expect(impostor[0].publicKeyHex).not.toBe(publicKeys[0].publicKeyHex);
      await expect(caps.authorize(token, request, { publicKeys: impostor, now: at(60) })).rejects.toMatchObject({ reason: "CAPABILITY_SIGNATURE_INVALID" });
      expect((await caps.authorize(token, request, { publicKeys, now: at(60) })).allowed).toBe(true);
      expect(caps.native!.misses).toBe(3);
    } finally {
      await caps.close();
    }
  });
});

describe.runIf(native)("where authorizations run", () => {
  it("a token in capvault's own vocabulary runs inline from its first use; one with many checks is measured off the event loop first", async () => {
    const caps = new Capabilities({ workers: 1, runtime: "native", decisionCacheSize: 0 });
    try {
      const plain = await mintAcmeToken({ caps, rootKey, publicKeys }, NOW);
      const request = (i: number) => githubRequest({ path: `/repos/acme/widgets/issues/${i}` });
      await caps.authorize(plain, request(1), { publicKeys, now: at(60) });
      expect({ inline: caps.native!.inline, offloaded: caps.native!.offloaded }).toEqual({ inline: 1, offloaded: 0 });

      // 3 blocks of 16 checks each: more than a short run's 32, so the first run is measured on a libuv thread.
      const checks = Array.from({ length: 16 }, (_, i) => `check if method($m), $m != "M${i}"`);
      let heavy = plain;
      for (let b = 0; b < 3; b++) heavy = (await caps.attenuate(heavy, { checks }, publicKeys, NOW)).token;
      const first = await caps.authorize(heavy, request(2), { publicKeys, now: at(60) });
      expect(first.allowed).toBe(true);
      expect({ inline: caps.native!.inline, offloaded: caps.native!.offloaded }).toEqual({ inline: 1, offloaded: 1 });
      // The plain token stays inline.
      await caps.authorize(plain, request(3), { publicKeys, now: at(60) });
      expect(caps.native!.inline).toBe(2);
    } finally {
      await caps.close();
    }
  });
});

describe.runIf(native)("a token's prepared authorizer (built once, cloned per request)", () => {
  it("carries nothing from one request to the next, and follows the policy set it runs under", async () => {
    const caps = new Capabilities({ workers: 1, runtime: "native", decisionCacheSize: 0 });
    try {
      const plain = await mintAcmeToken({ caps, rootKey, publicKeys }, NOW);
      const token = (await caps.attenuate(plain, { pathPrefix: "/repos/acme/widgets/" }, publicKeys, NOW)).token;
      const strict = await caps.policiesFromSources({ "10-no-issue-7.datalog": 'deny if path("/repos/acme/widgets/issues/7");' });
      const inside = (n: number) => githubRequest({ path: `/repos/acme/widgets/issues/${n}` });
      const steps: Array<[AccessRequest, Partial<AuthorizeOptions>]> = [
        [inside(7), {}],
        [githubRequest({ path: "/repos/acme/gadgets" }), {}],
        [inside(7), {}],
        [inside(7), { policies: strict }],
        [inside(8), { policies: strict }],
        [inside(7), {}],
        [githubRequest({ path: "/repos/acme/gadgets" }), { policies: strict }],
        [inside(7), { now: at(7200) }],
        [inside(7), {}],
      ];
      const outcomes = [];
      for (const [request, options] of steps) {
        const [n, w] = await Promise.all([decide(caps, token, request, options), decide(onWasm, token, request, options)]);
        expect(n).toEqual(w);
        outcomes.push(n.decision ? (n.decision.allowed ? "allow" : n.decision.reason) : n.reason);
      }
      expect(outcomes).toEqual([
        "allow",
        "CAPABILITY_CHECK_FAILED",
        "allow",
        "POLICY_DENIED",
        "allow",
        "allow",
        "CAPABILITY_CHECK_FAILED",
        "CAPABILITY_EXPIRED",
        "allow",
      ]);
    } finally {
      await caps.close();
    }
  });
});

describe.runIf(native)("the native runtime under faults", () => {
  it("a Rust panic rejects that call only: the process and later authorizations go on", async () => {
    await expect(native!.diagnosticPanic()).rejects.toThrow(/"kind":"panic"/);
    const token = await mintAcmeToken(onNative, NOW);
    const d = await onNative.caps.authorize(token, githubRequest(), { publicKeys, now: at(60) });
    expect(d.allowed).toBe(true);
  });

  it("bad parameters reach no Datalog: refused before the runtime, as on the worker path", async () => {
    const token = await mintAcmeToken(onNative, NOW);
    for (const path of ["/repos/acme/\u0000", "/repos/acme/%ZZ"]) {
      const [n, w] = await Promise.all([
        decide(onNative.caps, token, githubRequest({ path }), {}),
        decide(onWasm, token, githubRequest({ path }), {}),
      ]);
      expect(n).toEqual(w);
      expect(n.reason).toBeDefined();
    }
  });
});

describe("choosing the runtime", () => {
  it("runtime wasm runs authorizations in the worker pool", async () => {
    const caps = new Capabilities({ workers: 1, runtime: "wasm" });
    try {
      const token = await mintAcmeToken({ caps, rootKey, publicKeys }, NOW);
      const before = caps.pool.stats().completed;
      expect((await caps.authorize(token, githubRequest(), { publicKeys, now: at(60) })).allowed).toBe(true);
      expect(caps.native).toBeUndefined();
      expect(caps.pool.stats().completed).toBe(before + 1);
    } finally {
      await caps.close();
    }
  });
});

describe("a token's average run time (where its next authorization runs)", () => {
  const BOUND = 150; // INLINE_BELOW_MICROS
  const runAll = (start: number, runs: number[]) => runs.reduce((avg, us, i) => nextRunAverage(avg, us, i === 0), start);

  it("one run stretched by the machine leaves a short token on the event loop", () => {
    const settled = runAll(0, [20, 20, 20, 20, 20, 20]);
    expect(settled).toBeLessThan(25);
    const afterSpike = nextRunAverage(settled, 5000, false); // a preempted thread
    expect(afterSpike).toBeLessThan(BOUND);
    expect(nextRunAverage(afterSpike, 5000, false)).toBeLessThan(BOUND); // even a second one in a row
  });

  it("a token whose runs turn long moves off within a few calls; one long from its first run at once", () => {
    let avg = runAll(0, [20, 20, 20, 20]);
    let calls = 0;
    while (avg < BOUND) {
      avg = nextRunAverage(avg, 400, false);
      calls++;
    }
    expect(calls).toBeLessThanOrEqual(6);
    expect(nextRunAverage(0, 2000, true)).toBeGreaterThanOrEqual(BOUND); // a short-looking token's heavy first run
    expect(nextRunAverage(Number.POSITIVE_INFINITY, 90, true)).toBe(90); // measured off the loop first: taken as is
  });
});
