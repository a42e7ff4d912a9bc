import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertAllowed } from "../../src/capabilities/authorize.js";
import { canonicalPath } from "../../src/capabilities/canonical-path.js";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { expectReason, githubRequest, harness, mintAcmeToken } from "./fixtures.js";

const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);

let root: string; // GET under /repos/acme/ on conn-github-1, 1 hour
let narrowed: string; // + block 1: /repos/acme/widgets/
let token: string; // + block 2: 5 minutes

beforeAll(async () => {
  root = await mintAcmeToken(h, NOW);
  narrowed = (await h.caps.attenuate(root, { pathPrefix: "/repos/acme/widgets/" }, h.publicKeys, NOW)).token;
  token = (await h.caps.attenuate(narrowed, { ttlSeconds: 300 }, h.publicKeys, NOW)).token;
});
afterAll(() => h.caps.close());

const authorize = (t: string, overrides: Parameters<typeof githubRequest>[0] = {}, now = at(60)) =>
  h.caps.authorize(t, githubRequest(overrides), { publicKeys: h.publicKeys, now });

describe("a token attenuated twice (path, then 5 minutes)", () => {
  it("allows requests inside every block", async () => {
    for (const path of ["/repos/acme/widgets", "/repos/acme/widgets/", "/repos/acme/widgets/issues", "/repos/acme/widgets/issues/1"]) {
      const d = await authorize(token, { path });
      expect(d, path).toMatchObject({ allowed: true, denials: [], tenant: "acme", subject: "agent-7", canonicalPath: path });
      expect(d.revocationIds).toHaveLength(3);
    }
  });

  it("the root token still reaches the wider prefix, the narrowed one does not", async () => {
    expect((await authorize(root, { path: "/repos/acme/gadgets" })).allowed).toBe(true);
    const d = await authorize(token, { path: "/repos/acme/gadgets" });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("CAPABILITY_CHECK_FAILED");
    expect(d.denials).toContainEqual({
      reason: "CAPABILITY_CHECK_FAILED",
      blockIndex: 1,
      checkIndex: 0,
      rule: 'check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")',
      policy: "",
    });
  });

  it("denies a second method: no grant, the allow policy is named", async () => {
    const d = await authorize(token, { method: "POST" });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("NO_MATCHING_GRANT");
    expect(d.denials).toHaveLength(1);
    expect(d.denials[0].rule).toContain("allow if right($c, $m, $p)");
    expect(d.denials[0]).toMatchObject({ blockIndex: -1, checkIndex: -1 });
  });

  it("denies sibling prefixes on segment boundaries (/repos/acme-evil, /repos/acme/widgets-evil)", async () => {
    const evil = await authorize(token, { path: "/repos/acme-evil" });
    expect(evil.allowed).toBe(false);
    expect(evil.denials.map((d) => [d.reason, d.blockIndex])).toEqual([
      ["CAPABILITY_CHECK_FAILED", 1],
      ["NO_MATCHING_GRANT", -1],
    ]);
    const sibling = await authorize(token, { path: "/repos/acme/widgets-evil/issues" });
    expect(sibling.allowed).toBe(false);
    expect(sibling.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 0 })]);
    // and the root grant itself: /repos/acme/ never matches /repos/acme-evil
    const rootEvil = await authorize(root, { path: "/repos/acme-evil/x" });
    expect(rootEvil.reason).toBe("NO_MATCHING_GRANT");
  });

  it("refuses dot segments: raw paths are not canonical, and their canonical form is outside the prefix", async () => {
    for (const raw of ["/repos/acme/widgets/../gadgets", "/repos/acme/widgets/%2e%2e/gadgets", "/repos/acme/widgets/%2E%2E/gadgets", "/repos/acme/widgets/./../gadgets"]) {
      await expectReason(authorize(token, { path: raw }), "PATH_INVALID");
      expect(canonicalPath(raw)).toBe("/repos/acme/gadgets");
      const d = await authorize(token, { path: canonicalPath(raw) });
      expect(d.allowed, raw).toBe(false);
      expect(d.denials[0]).toMatchObject({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 1, checkIndex: 0 });
    }
    await expectReason(authorize(token, { path: "/repos/acme/widgets/..%2F..%2Fevil" }), "PATH_INVALID");
    expect(() => canonicalPath("/repos/acme/widgets/..%2F..%2Fevil")).toThrow(CapvaultError);
  });

  it("a later expiry in a new block does not extend the token", async () => {
    const later = (await h.caps.attenuate(token, { expiresAt: at(86_400) }, h.publicKeys, NOW)).token;
    expect((await authorize(later, {}, at(200))).allowed).toBe(true);
    const d = await authorize(later, {}, at(301));
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("CAPABILITY_EXPIRED");
    expect(d.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_EXPIRED", blockIndex: 2, checkIndex: 0, rule: "check if time($time), $time <= 2030-01-15T12:05:00Z" })]);
    const d2 = await authorize(later, {}, at(3601));
    expect(d2.denials.map((x) => x.blockIndex)).toEqual([0, 2]);
    expect(d2.denials.every((x) => x.reason === "CAPABILITY_EXPIRED")).toBe(true);
  });

  it("denies another connection, even after a block that 'allows' it", async () => {
    const d = await authorize(token, { connection: "conn-github-2" });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("NO_MATCHING_GRANT");
    const widened = (await h.caps.attenuate(token, { connections: ["conn-github-2"] }, h.publicKeys, NOW)).token;
    const d2 = await authorize(widened, { connection: "conn-github-2" });
    expect(d2.reason).toBe("NO_MATCHING_GRANT");
    const d3 = await authorize(widened, { connection: "conn-github-1" });
    expect(d3.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_CHECK_FAILED", blockIndex: 3, checkIndex: 0 })]);
  });

  it("a block listing more methods does not add methods", async () => {
    const widened = (await h.caps.attenuate(token, { methods: ["GET", "DELETE"] }, h.publicKeys, NOW)).token;
    expect((await authorize(widened)).allowed).toBe(true);
    const d = await authorize(widened, { method: "DELETE" });
    expect(d.reason).toBe("NO_MATCHING_GRANT");
  });

  it("denies another tenant, naming the tenant check", async () => {
    const d = await authorize(token, { tenant: "globex" });
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe("CAPABILITY_TENANT_MISMATCH");
    expect(d.denials[0]).toMatchObject({ blockIndex: -1, checkIndex: 0 });
    expect(d.denials[0].rule).toContain("check all tenant($t)");
  });

  it("assertAllowed throws the main reason with the failing block and check", async () => {
    const d = await authorize(token, { path: "/repos/acme/gadgets" });
    try {
      assertAllowed(d);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CapvaultError);
      expect((err as CapvaultError).reason).toBe("CAPABILITY_CHECK_FAILED");
      expect((err as CapvaultError).metadata).toEqual({ block: "1", check: "0" });
    }
    expect(() => assertAllowed({ ...d, allowed: true })).not.toThrow();
  });

  it("operator operations need an operator token", async () => {
    const d = await h.caps.authorize(token, { tenant: "acme", operation: "mint" }, { publicKeys: h.publicKeys, now: at(1) });
    expect(d).toMatchObject({ allowed: false, reason: "OPERATOR_REQUIRED" });
    const op = await h.caps.mint({ rootKey: h.rootKey, tenant: "acme", subject: "ops", grants: [], operator: true, ttlSeconds: 60, now: NOW });
    const ok = await h.caps.authorize(op.token, { tenant: "acme", operation: "mint" }, { publicKeys: h.publicKeys, now: at(1) });
    expect(ok).toMatchObject({ allowed: true, operator: true, operation: "mint" });
    // an operator token carries no grants: it cannot proxy
    const proxy = await h.caps.authorize(op.token, githubRequest(), { publicKeys: h.publicKeys, now: at(1) });
    expect(proxy.reason).toBe("NO_MATCHING_GRANT");
    // and it stays bound to its tenant
    const other = await h.caps.authorize(op.token, { tenant: "globex", operation: "mint" }, { publicKeys: h.publicKeys, now: at(1) });
    expect(other.reason).toBe("CAPABILITY_TENANT_MISMATCH");
  });

  it("validates the request before any wasm work", async () => {
    await expectReason(authorize(token, { method: "GE T" }), "METHOD_INVALID");
    await expectReason(authorize(token, { path: "repos/acme" }), "PATH_INVALID");
    await expectReason(authorize(token, { host: "api.github.com/evil" }), "INVALID_REQUEST");
    await expectReason(authorize(token, { connection: "" }), "INVALID_REQUEST");
    await expectReason(authorize(token, { tenant: "a\ud800" }), "INVALID_REQUEST");
    await expectReason(authorize(token, { query: Array.from({ length: 65 }, (_, i) => ({ name: `q${i}`, value: "x" })) }), "INVALID_REQUEST");
  });
});
