import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionCache } from "../../src/capabilities/decision-cache.js";
import { policySetFromSources } from "../../src/capabilities/policies.js";
import type { AuthorizeJobResult, AuthorizerOutcome } from "../../src/capabilities/protocol.js";
import { RevocationSet } from "../../src/capabilities/revocation-set.js";
import { generateRootKey, toPublicKey } from "../../src/capabilities/root-keys.js";
import type { AccessRequest } from "../../src/capabilities/vocabulary.js";
import { expectReason, githubRequest, harness, mintAcmeToken, type Harness } from "./fixtures.js";

/** An AuthorizeJobResult-shaped value with the given outcome. */
function jobResult(outcome: AuthorizerOutcome, tag = "r"): AuthorizeJobResult {
  return {
    revocationIds: [`${tag}-0`],
    identity: { tenant: "acme", subject: "agent-7", operator: false, grants: [] },
    outcome,
  };
}

const ALLOWED: AuthorizerOutcome = { ok: true, policy: 0 };
const UNAUTHORIZED: AuthorizerOutcome = { ok: false, kind: "unauthorized", policy: { allow: false, index: 1 }, checks: [] };
const RUN_LIMIT: AuthorizerOutcome = { ok: false, kind: "run-limit", limit: "timeout" };
const EXECUTION: AuthorizerOutcome = { ok: false, kind: "execution", error: "boom" };

/** A `run` that counts its calls and resolves to a fresh result each time. */
function counter(outcome: AuthorizerOutcome = ALLOWED) {
  const c = {
    calls: 0,
    run: () => {
      c.calls++;
      return Promise.resolve(jobResult(outcome, `call-${c.calls}`));
    },
  };
  return c;
}

/** A promise settled from outside. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("DecisionCache (unit)", () => {
  it("a hit within the same second: run is called once, the same result is returned", async () => {
    const cache = new DecisionCache(16);
    const c = counter();
    const first = await cache.through(100, "k", c.run);
    const second = await cache.through(100, "k", c.run);
    expect(c.calls).toBe(1);
    expect(second).toBe(first);
    expect(cache.size).toBe(1);
    expect(cache.hits).toBe(1);
    expect(cache.misses).toBe(1);
  });

  it("distinct keys in the same second are distinct entries", async () => {
    const cache = new DecisionCache(16);
    const c = counter();
    const a = await cache.through(100, "a", c.run);
    const b = await cache.through(100, "b", c.run);
    expect(c.calls).toBe(2);
    expect(a).not.toBe(b);
    expect(await cache.through(100, "a", c.run)).toBe(a);
    expect(await cache.through(100, "b", c.run)).toBe(b);
    expect(c.calls).toBe(2);
    expect(cache.size).toBe(2);
  });

  it("a miss in the next second: run again, the previous second's entries are dropped", async () => {
    const cache = new DecisionCache(16);
    const c = counter();
    const first = await cache.through(100, "k", c.run);
    await cache.through(100, "other", c.run);
    expect(cache.size).toBe(2);
    const next = await cache.through(101, "k", c.run);
    expect(c.calls).toBe(3);
    expect(next).not.toBe(first);
    expect(cache.size).toBe(1); // only the new second's entry
    expect(await cache.through(101, "k", c.run)).toBe(next); // and it is kept for its second
    expect(c.calls).toBe(3);
    // "other" was dropped with second 100
    await cache.through(101, "other", c.run);
    expect(c.calls).toBe(4);
  });

  it("joins a computation in flight: two calls before the first resolves → run once, same result", async () => {
    const cache = new DecisionCache(16);
    const d = deferred<AuthorizeJobResult>();
    let calls = 0;
    const run = () => {
      calls++;
      return d.promise;
    };
    const p1 = cache.through(100, "k", run);
    const p2 = cache.through(100, "k", run);
    expect(calls).toBe(1);
    expect(cache.size).toBe(1);
    const result = jobResult(ALLOWED);
    d.resolve(result);
    const [r1, r2] = await Promise.all([p1, p2]);
    expect(r1).toBe(result);
    expect(r2).toBe(result);
    expect(cache.hits).toBe(1);
    expect(cache.misses).toBe(1);
  });

  it("a rejected run is not kept (joiners in flight share the rejection; the next call runs again)", async () => {
    const cache = new DecisionCache(16);
    const d = deferred<AuthorizeJobResult>();
    let calls = 0;
    const run = () => {
      calls++;
      return calls === 1 ? d.promise : Promise.resolve(jobResult(ALLOWED, "retry"));
    };
    const p1 = cache.through(100, "k", run);
    const p2 = cache.through(100, "k", run);
    const failure = new Error("worker crashed");
    d.reject(failure);
    await expect(p1).rejects.toBe(failure);
    await expect(p2).rejects.toBe(failure);
    expect(calls).toBe(1);
    expect(cache.size).toBe(0);
    const again = await cache.through(100, "k", run);
    expect(calls).toBe(2);
    expect(again.revocationIds).toEqual(["retry-0"]);
    expect(cache.size).toBe(1);
  });

  it("a run that throws synchronously propagates and keeps nothing", () => {
    const cache = new DecisionCache(16);
    expect(() =>
      cache.through(100, "k", () => {
        throw new Error("sync");
      }),
    ).toThrow("sync");
    expect(cache.size).toBe(0);
  });

  it.each([
    ["run-limit", RUN_LIMIT],
    ["execution", EXECUTION],
  ] as const)("a %s outcome is not kept", async (_name, outcome) => {
    const cache = new DecisionCache(16);
    const c = counter(outcome);
    const first = await cache.through(100, "k", c.run);
    expect(first.outcome).toEqual(outcome);
    expect(cache.size).toBe(0);
    const second = await cache.through(100, "k", c.run);
    expect(c.calls).toBe(2);
    expect(second).not.toBe(first);
    expect(cache.hits).toBe(0);
  });

  it("an unauthorized outcome (a decided refusal) is kept", async () => {
    const cache = new DecisionCache(16);
    const c = counter(UNAUTHORIZED);
    const first = await cache.through(100, "k", c.run);
    const second = await cache.through(100, "k", c.run);
    expect(c.calls).toBe(1);
    expect(second).toBe(first);
    expect(second.outcome).toEqual(UNAUTHORIZED);
    expect(cache.size).toBe(1);
  });

  it("capacity 0 turns caching off: every call runs, nothing is held", async () => {
    const cache = new DecisionCache(0);
    const c = counter();
    for (let i = 0; i < 3; i++) await cache.through(100, "k", c.run);
    expect(c.calls).toBe(3);
    expect(cache.size).toBe(0);
    expect(cache.hits).toBe(0);
    expect(cache.misses).toBe(3);
  });

  it("capacity 1: a second distinct key is not kept, the first one still is", async () => {
    const cache = new DecisionCache(1);
    const c = counter();
    const a = await cache.through(100, "a", c.run);
    await cache.through(100, "b", c.run);
    expect(cache.size).toBe(1);
    await cache.through(100, "b", c.run);
    expect(c.calls).toBe(3); // "b" ran twice
    expect(await cache.through(100, "a", c.run)).toBe(a);
    expect(c.calls).toBe(3);
    expect(cache.size).toBe(1);
  });

  it("capacity frees up when an entry is forgotten (non-decided outcome)", async () => {
    const cache = new DecisionCache(1);
    await cache.through(100, "a", () => Promise.resolve(jobResult(RUN_LIMIT)));
    expect(cache.size).toBe(0);
    const c = counter();
    const b = await cache.through(100, "b", c.run);
    expect(await cache.through(100, "b", c.run)).toBe(b);
    expect(c.calls).toBe(1);
  });

  it("an earlier second (a clock that stepped back) starts over: the later second's entries are dropped", async () => {
    const cache = new DecisionCache(16);
    const c = counter();
    const current = await cache.through(100, "k", c.run);
    const past1 = await cache.through(99, "k", c.run);
    const past2 = await cache.through(99, "k", c.run);
    expect(c.calls).toBe(2);
    expect(past1).not.toBe(current);
    expect(past2).toBe(past1);
    expect(cache.size).toBe(1);
    await cache.through(100, "k", c.run);
    expect(c.calls).toBe(3);
  });
});

describe("Capabilities.authorize through the decision cache", () => {
  const h: Harness = harness();
  const off: Harness = harness({ decisionCacheSize: 0 });
  const NOW = new Date("2030-01-15T12:00:00Z");
  let token: string; // GET under /repos/acme/ on conn-github-1, 1 hour
  let attenuated: string; // + block 1: /repos/acme/widgets/

  // The cache holds one second at a time: every test takes a fresh second of its own.
  let clock = 60;
  const nextSecond = () => new Date(NOW.getTime() + (clock += 10) * 1000);

  const completed = (x: Harness = h) => x.caps.stats().completed;
  const failed = (x: Harness = h) => x.caps.stats().failed;
  const authorize = (t: string, now: Date, overrides: Parameters<typeof githubRequest>[0] = {}, extra: { revocations?: RevocationSet } = {}, x: Harness = h) =>
    x.caps.authorize(t, githubRequest(overrides), { publicKeys: x.publicKeys, now, ...extra });

  beforeAll(async () => {
    token = await mintAcmeToken(h, NOW);
    attenuated = (await h.caps.attenuate(token, { pathPrefix: "/repos/acme/widgets/" }, h.publicKeys, NOW)).token;
  });
  afterAll(async () => {
    await h.caps.close();
    await off.caps.close();
  });

  it("is on by default", async () => {
    // `h` is built without decisionCacheSize: whatever it observes is the default. A repeat must not reach the workers.
    const now = nextSecond();
    const before = completed();
    const hits = h.caps.decisions.hits;
    await authorize(token, now);
    await authorize(token, now);
    expect(completed()).toBe(before + 1);
    expect(h.caps.decisions.hits).toBe(hits + 1);
  });

  it("the same request twice in the same second: the second does not reach the workers and returns an equal decision", async () => {
    const now = nextSecond();
    const before = completed();
    const first = await authorize(token, now);
    expect(completed()).toBe(before + 1);
    const hits = h.caps.decisions.hits;
    const second = await authorize(token, now);
    expect(completed()).toBe(before + 1);
    expect(h.caps.decisions.hits).toBe(hits + 1);
    expect(first).toMatchObject({ allowed: true, denials: [], tenant: "acme", subject: "agent-7" });
    expect(second).toEqual(first);
    // a fresh decision object each time: mutating one does not affect the cache
    expect(second).not.toBe(first);
    expect(second.revocationIds).not.toBe(first.revocationIds);
    const ids = [...first.revocationIds];
    first.revocationIds.push("tampered");
    first.denials.push({ reason: "NO_MATCHING_GRANT", blockIndex: -1, checkIndex: -1, rule: "x", policy: "" });
    const third = await authorize(token, now);
    expect(completed()).toBe(before + 1);
    expect(third.revocationIds).toEqual(ids);
    expect(third.denials).toEqual([]);
  });

  it("a later instant within the same whole second is still a hit (Biscuit time is whole seconds)", async () => {
    const now = nextSecond();
    await authorize(token, now);
    const before = completed();
    const d = await authorize(token, new Date(now.getTime() + 999));
    expect(completed()).toBe(before);
    expect(d.allowed).toBe(true);
  });

  it("concurrent identical requests share one worker job", async () => {
    const now = nextSecond();
    const before = completed();
    const [a, b, c] = await Promise.all([authorize(token, now), authorize(token, now), authorize(token, now)]);
    expect(completed()).toBe(before + 1);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it("a different path reaches the workers", async () => {
    const now = nextSecond();
    await authorize(token, now);
    const before = completed();
    const d = await authorize(token, now, { path: "/repos/acme/gadgets" });
    expect(completed()).toBe(before + 1);
    expect(d).toMatchObject({ allowed: true, canonicalPath: "/repos/acme/gadgets" });
  });

  it("the next second (now + 1000 ms) reaches the workers", async () => {
    const now = nextSecond();
    await authorize(token, now);
    const before = completed();
    await authorize(token, new Date(now.getTime() + 1000));
    expect(completed()).toBe(before + 1);
  });

  it("a different (attenuated) token reaches the workers, and gets its own decision", async () => {
    const now = nextSecond();
    expect((await authorize(token, now, { path: "/repos/acme/gadgets" })).allowed).toBe(true);
    const before = completed();
    const d = await authorize(attenuated, now, { path: "/repos/acme/gadgets" });
    expect(completed()).toBe(before + 1);
    expect(d).toMatchObject({ allowed: false, reason: "CAPABILITY_CHECK_FAILED" });
    expect(d.revocationIds).toHaveLength(2);
  });

  it("revocation is checked on every call: revoking after a cached allow refuses the next identical call", async () => {
    const now = nextSecond();
    const revocations = new RevocationSet();
    const allowed = await authorize(token, now, {}, { revocations });
    expect(allowed.allowed).toBe(true);
    expect(allowed.revocationIds).toHaveLength(1);
    const before = completed();
    expect((await authorize(token, now, {}, { revocations })).allowed).toBe(true); // cached
    expect(completed()).toBe(before);
    revocations.add([{ tenant: "acme", id: allowed.revocationIds[0].toUpperCase() }]);
    await expectReason(authorize(token, now, {}, { revocations }), "CAPABILITY_REVOKED");
    expect(completed()).toBe(before); // still served from the cache, yet refused
    // a token attenuated from the revoked one shares its id: revoked too
    await expectReason(authorize(attenuated, now, {}, { revocations }), "CAPABILITY_REVOKED");
    // a fresh set given on the call is honoured as well
    await expectReason(authorize(token, now, {}, { revocations: new RevocationSet(allowed.revocationIds.map((id) => ({ tenant: "acme", id }))) }), "CAPABILITY_REVOKED");
    // and the cached decision was not poisoned by the refusals
    expect((await authorize(token, now)).allowed).toBe(true);
  });

  it("a refusal (outside the grant) is cached and still returns allowed:false with the same denials", async () => {
    const now = nextSecond();
    const before = completed();
    const first = await authorize(token, now, { path: "/repos/globex/secrets" });
    expect(completed()).toBe(before + 1);
    expect(first).toMatchObject({ allowed: false, reason: "NO_MATCHING_GRANT" });
    expect(first.denials).toHaveLength(1);
    const second = await authorize(token, now, { path: "/repos/globex/secrets" });
    expect(completed()).toBe(before + 1);
    expect(second).toEqual(first);
    expect(second.denials).toEqual(first.denials);
  });

  it("retiring the root key after a cached allow refuses the next identical call", async () => {
    const now = nextSecond();
    expect((await authorize(token, now)).allowed).toBe(true);
    const before = completed();
    await expectReason(
      h.caps.authorize(token, githubRequest(), { publicKeys: [{ ...h.publicKeys[0], retired: true }], now }),
      "CAPABILITY_UNKNOWN_ROOT_KEY",
    );
    expect(completed()).toBe(before);
  });

  it("another public key under the same key id is not served the cached allow", async () => {
    const now = nextSecond();
    expect((await authorize(token, now)).allowed).toBe(true);
    const before = { completed: completed(), failed: failed() };
    const impostor = toPublicKey(generateRootKey(1));
    await expectReason(h.caps.authorize(token, githubRequest(), { publicKeys: [impostor], now }), "CAPABILITY_SIGNATURE_INVALID");
    expect(completed() + failed()).toBe(before.completed + before.failed + 1);
  });

  it("organisation policies are part of the key", async () => {
    const now = nextSecond();
    expect((await authorize(token, now)).allowed).toBe(true);
    const policies = policySetFromSources({ "no-issues.datalog": 'deny if path("/repos/acme/widgets/issues");' });
    const before = completed();
    const d = await h.caps.authorize(token, githubRequest(), { publicKeys: h.publicKeys, policies, now });
    expect(completed()).toBe(before + 1);
    expect(d).toMatchObject({ allowed: false, reason: "POLICY_DENIED" });
    // and the same policy set again is a hit
    const again = await h.caps.authorize(token, githubRequest(), { publicKeys: h.publicKeys, policies, now });
    expect(completed()).toBe(before + 1);
    expect(again).toEqual(d);
  });

  it("failed jobs (a forged token) are never cached", async () => {
    const now = nextSecond();
    const bytes = Buffer.from(token, "base64url");
    const at = bytes.indexOf("/repos/acme/");
    expect(at).toBeGreaterThan(0);
    bytes.write("/repos/acmf/", at); // same length: still a valid envelope, different signed content
    const forged = bytes.toString("base64url");
    const before = failed();
    await expectReason(authorize(forged, now), "CAPABILITY_SIGNATURE_INVALID");
    await expectReason(authorize(forged, now), "CAPABILITY_SIGNATURE_INVALID");
    expect(failed()).toBe(before + 2);
  });

  it("with decisionCacheSize: 0 every call reaches the workers", async () => {
    const t = await mintAcmeToken(off, NOW);
    const now = new Date(NOW.getTime() + 60_000);
    const before = completed(off);
    const first = await authorize(t, now, {}, {}, off);
    const second = await authorize(t, now, {}, {}, off);
    const [c1, c2] = await Promise.all([authorize(t, now, {}, {}, off), authorize(t, now, {}, {}, off)]);
    expect(completed(off)).toBe(before + 4);
    expect(second).toEqual(first);
    expect(c1).toEqual(first);
    expect(c2).toEqual(first);
    expect(off.caps.decisions.size).toBe(0);
    expect(off.caps.decisions.hits).toBe(0);
  });
});

describe("compiled request facts of frozen requests", () => {
  const h: Harness = harness();
  const NOW = new Date("2030-01-15T12:00:00Z");
  let token: string;
  beforeAll(async () => {
    token = await mintAcmeToken(h, NOW);
  });
  afterAll(() => h.caps.close());

  const frozen = (overrides: Parameters<typeof githubRequest>[0] = {}): AccessRequest => {
    const r = githubRequest({ query: [{ name: "state", value: "open" }], ...overrides });
    return Object.freeze({ ...r, query: Object.freeze(r.query!.map((q) => Object.freeze({ ...q }))) as AccessRequest["query"] });
  };

  it("a mutable request is read afresh on every call: changing it changes the decision", async () => {
    const now = new Date(NOW.getTime() + 7_000);
    const request = githubRequest();
    const opts = { publicKeys: h.publicKeys, now };
    expect((await h.caps.authorize(token, request, opts)).allowed).toBe(true);
    request.path = "/repos/globex/secrets";
    const d = await h.caps.authorize(token, request, opts);
    expect(d.allowed).toBe(false);
    expect(d.canonicalPath).toBe("/repos/globex/secrets");
  });

  it("a deeply frozen request gives the same decision each time, and distinct frozen requests never share one", async () => {
    const now = new Date(NOW.getTime() + 8_000);
    const opts = { publicKeys: h.publicKeys, now };
    const allowed = frozen();
    const refused = frozen({ path: "/repos/globex/secrets" });
    for (let i = 0; i < 3; i++) {
      expect((await h.caps.authorize(token, allowed, opts)).allowed).toBe(true);
      const d = await h.caps.authorize(token, refused, opts);
      expect(d.allowed).toBe(false);
      expect(d.canonicalPath).toBe("/repos/globex/secrets");
    }
    // the next second is compiled again (its `time` fact differs): still decided the same way
    const later = { publicKeys: h.publicKeys, now: new Date(now.getTime() + 1_000) };
    expect((await h.caps.authorize(token, allowed, later)).allowed).toBe(true);
    expect((await h.caps.authorize(token, refused, later)).allowed).toBe(false);
  });

  it("a frozen request's compiled facts never outlive their second: a token that expires in between is refused", async () => {
    const start = new Date(NOW.getTime() + 20_000);
    const shortLived = (
      await h.caps.mint({
        rootKey: h.rootKey,
        tenant: "acme",
        subject: "agent-brief",
        grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
        ttlSeconds: 2,
        now: start,
      })
    ).token;
    const request = frozen();
    expect((await h.caps.authorize(shortLived, request, { publicKeys: h.publicKeys, now: start })).allowed).toBe(true);
    const later = await h.caps.authorize(shortLived, request, { publicKeys: h.publicKeys, now: new Date(start.getTime() + 5_000) });
    expect(later.allowed).toBe(false);
    expect(later.reason).toBe("CAPABILITY_EXPIRED");
  });

  it("a frozen request whose body holds an object is not treated as unchanging: changing the object changes the decision", async () => {
    const now = new Date(NOW.getTime() + 9_000);
    const opts = { publicKeys: h.publicKeys, now };
    // Only requests whose body field "filter" is exactly {"state":"open"} (objects become their JSON text).
    const narrowed = (await h.caps.attenuate(token, { body: [{ name: "filter", values: ['{"state":"open"}'] }] }, h.publicKeys, NOW)).token;
    const nested = { state: "open" };
    const request = Object.freeze({ ...frozen(), body: Object.freeze({ filter: nested }) });
    expect((await h.caps.authorize(narrowed, request, opts)).allowed).toBe(true);
    nested.state = "closed";
    expect((await h.caps.authorize(narrowed, request, opts)).allowed).toBe(false);
  });
});
