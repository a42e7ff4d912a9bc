import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBiscuit, type BiscuitBinding } from "../../src/capabilities/binding/wasm-loader.js";
import { githubRequest, harness, mintAcmeToken } from "./fixtures.js";

/**
 * An agent holding a token narrows it itself, offline, with the Biscuit library (not capvault's API); the broker
 * accepts the narrower token and enforces it. Blocks appended this way cannot widen anything either.
 */
const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
let B: BiscuitBinding;
let token: string;

beforeAll(async () => {
  B = (await loadBiscuit()).binding;
  token = await mintAcmeToken(h, NOW);
});
afterAll(() => h.caps.close());

/** Append a block with the library directly: parse with the root public key, add code with parameters, serialize. */
function appendOffline(base: string, code: string, params: Record<string, unknown>): string {
  const pk = B.PublicKey.fromString(h.publicKeys[0].publicKeyHex, B.SignatureAlgorithm.Ed25519);
  const parsed = B.Biscuit.fromBase64(base, pk);
  const block = B.Biscuit.block_builder();
  block.addCodeWithParameters(code, params, {});
  const derived = parsed.appendBlock(block);
  const out = derived.toBase64();
  for (const o of [pk, parsed, block, derived]) o.free();
  return out;
}

const authorize = (t: string, overrides: Parameters<typeof githubRequest>[0] = {}) =>
  h.caps.authorize(t, githubRequest(overrides), { publicKeys: h.publicKeys, now: new Date(NOW.getTime() + 60_000) });

describe("offline attenuation with the Biscuit library", () => {
  it("the broker accepts the narrower token and enforces its checks", async () => {
    const narrower = appendOffline(token, 'check if path($p), ($p + "/").starts_with({prefix}), method("GET");', {
      prefix: "/repos/acme/widgets/",
    });
    expect((await authorize(narrower)).allowed).toBe(true);
    const outside = await authorize(narrower, { path: "/repos/acme/gadgets" });
    expect(outside.allowed).toBe(false);
    expect(outside.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 0 })]);
    const inspected = await h.caps.inspect(narrower, h.publicKeys);
    expect(inspected.blocks).toHaveLength(2);
    // (predicates print before expressions: the wire format keeps them apart)
    expect(inspected.blocks[1].checks).toEqual(['check if path($p), method("GET"), ($p + "/").starts_with("/repos/acme/widgets/")']);
  });

  it("a right(...) fact in an appended block grants nothing", async () => {
    const widened = appendOffline(token, "right({c}, {m}, {p}); operator(true); tenant({t});", {
      c: "conn-github-1",
      m: "DELETE",
      p: "/",
      t: "globex",
    });
    const d = await authorize(widened, { method: "DELETE" });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("NO_MATCHING_GRANT");
    expect(d.denials[0].rule).toContain("allow if right(");
    const other = await authorize(widened, { path: "/orgs/acme" });
    expect(other.reason).toBe("NO_MATCHING_GRANT");
    // the block's operator(true) and tenant("globex") are not trusted either
    const op = await h.caps.authorize(widened, { tenant: "acme", operation: "revoke" }, { publicKeys: h.publicKeys, now: NOW });
    expect(op.reason).toBe("OPERATOR_REQUIRED");
    const globex = await authorize(widened, { tenant: "globex" });
    expect(globex.reason).toBe("CAPABILITY_TENANT_MISMATCH");
    // Inspect shows the untrusted facts for what they are: facts of block 1, not grants.
    const inspected = await h.caps.inspect(widened, h.publicKeys);
    expect(inspected.grants).toEqual([{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }]);
    expect(inspected.operator).toBe(false);
    expect(inspected.blocks[1].facts.map((f) => f.name)).toEqual(["right", "operator", "tenant"]);
  });

  it("a fake ambient fact in an appended block cannot satisfy another block's check", async () => {
    const narrower = appendOffline(token, 'check if path($p), ($p + "/").starts_with({prefix});', { prefix: "/repos/acme/widgets/" });
    const cheat = appendOffline(narrower, "path({p});", { p: "/repos/acme/widgets/x" });
    const d = await authorize(cheat, { path: "/repos/acme/gadgets" });
    expect(d.allowed).toBe(false);
    expect(d.denials[0]).toMatchObject({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1 });
  });

  it("a block that blows the run limits is refused with AUTHORIZATION_LIMIT, and the pool carries on", async () => {
    const facts = Array.from({ length: 40 }, (_, i) => `n(${i});`).join(" ");
    const heavy = appendOffline(token, `${facts} pair($x, $y) <- n($x), n($y); check if pair(1, 2);`, {});
    const d = await authorize(heavy);
    expect(d).toMatchObject({ allowed: false, reason: "AUTHORIZATION_LIMIT" });
    expect(d.denials[0].rule).toMatch(/^run limit: /);
    expect((await authorize(token)).allowed).toBe(true);
  });

  it("an expression error in a block denies the request", async () => {
    const typed = appendOffline(token, "check if path($p), $p.starts_with({n});", { n: 1 });
    const d = await authorize(typed);
    expect(d).toMatchObject({ allowed: false, reason: "CAPABILITY_CHECK_FAILED" });
    expect(d.denials[0].rule).toMatch(/^execution error: /);
  });

  it("a `reject if` on an absent fact lets requests through, which is why capvault writes `check if`", async () => {
    const rejectStyle = appendOffline(token, "reject if method({m});", { m: "DELETE" });
    expect((await authorize(rejectStyle)).allowed).toBe(true);
    // (it still cannot grant: DELETE has no grant anyway)
    expect((await authorize(rejectStyle, { method: "DELETE" })).allowed).toBe(false);
  });
});
