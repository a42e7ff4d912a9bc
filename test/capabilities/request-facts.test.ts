import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../src/capabilities/limits.js";
import { bodyFields, compileRequest } from "../../src/capabilities/request-facts.js";
import { GRANT_POLICY, normaliseHost, normaliseMethod } from "../../src/capabilities/vocabulary.js";
import { expectThrowsReason, githubRequest, harness } from "./fixtures.js";

const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
let acme: string;
let everything: string;

beforeAll(async () => {
  const mint = (pathPrefix: string) =>
    h.caps.mint({ rootKey: h.rootKey, tenant: "acme", subject: "a", grants: [{ connection: "conn-github-1", method: "GET", pathPrefix }], ttlSeconds: 600, now: NOW });
  acme = (await mint("/repos/acme")).token;
  everything = (await mint("/")).token;
});
afterAll(() => h.caps.close());

describe("grant prefixes match on segment boundaries", () => {
  it.each([
    ["/repos/acme", true],
    ["/repos/acme/", true],
    ["/repos/acme/widgets", true],
    ["/repos/acme/widgets/issues/1", true],
    ["/repos/acme-evil", false],
    ["/repos/acme-evil/widgets", false],
    ["/repos/acmewidgets", false],
    ["/repos/acm", false],
    ["/repos", false],
    ["/", false],
    ["/REPOS/acme/widgets", false],
  ])("/repos/acme/ vs %s → %s", async (path, allowed) => {
    const d = await h.caps.authorize(acme, githubRequest({ path }), { publicKeys: h.publicKeys, now: NOW });
    expect(d.allowed).toBe(allowed);
  });

  it("the root prefix covers every path", async () => {
    for (const path of ["/", "/a", "/repos/acme-evil/x"]) {
      expect((await h.caps.authorize(everything, githubRequest({ path }), { publicKeys: h.publicKeys, now: NOW })).allowed).toBe(true);
    }
  });
});

describe("ambient facts", () => {
  it("exactly one of each, values as parameters, then the tenant check, one allow policy and deny if true", () => {
    const { snippet, allow } = compileRequest(
      githubRequest({ query: [{ name: "a", value: "1" }, { name: "a", value: "2" }], body: { x: "y" } }),
      NOW,
      DEFAULT_LIMITS,
    );
    expect(allow).toBe("grant");
    expect(snippet.code.split("\n")).toEqual([
      "time({now});",
      "operation({operation});",
      "tenant({tenant});",
      "connection({connection});",
      "provider({provider});",
      "host({host});",
      "method({method});",
      "path({path});",
      "query({q0n}, {q0v});",
      "query({q1n}, {q1v});",
      "body({b0n}, {b0v});",
      "unapproved(true);",
      "check all tenant($t), $t == {tenant};",
      `${GRANT_POLICY};`,
      "deny if true;",
    ]);
    expect(snippet.params).toMatchObject({ now: { date: "2030-01-15T12:00:00.000Z" }, operation: "proxy", method: "GET", host: "api.github.com" });
  });

  it("a request a person approved lacks unapproved(true) (step-up approval), and operator operations never have it", () => {
    const approved = compileRequest(githubRequest({ approved: true }), NOW, DEFAULT_LIMITS).snippet.code.split("\n");
    expect(approved).not.toContain("unapproved(true);");
    expect(compileRequest(githubRequest(), NOW, DEFAULT_LIMITS).snippet.code.split("\n")).toContain("unapproved(true);");
    expect(compileRequest({ operation: "mint", tenant: "acme" }, NOW, DEFAULT_LIMITS).snippet.code).not.toContain("unapproved");
  });

  it("normalises method and host case", () => {
    expect(normaliseMethod("get")).toBe("GET");
    expect(normaliseHost("API.GitHub.com")).toBe("api.github.com");
    expectThrowsReason(() => normaliseMethod(""), "METHOD_INVALID");
    expectThrowsReason(() => normaliseHost("a/b"), "INVALID_REQUEST");
    expectThrowsReason(() => compileRequest(githubRequest({ operation: "Proxy!" }), NOW, DEFAULT_LIMITS), "INVALID_REQUEST");
  });

  it("body fields: one fact per top-level field, typed where safe", () => {
    expect(bodyFields(Buffer.from('{"s":"x","i":42,"b":false,"f":1.5,"n":null,"o":{"a":1},"a":[1]}'), DEFAULT_LIMITS)).toEqual([
      ["s", "x"],
      ["i", 42],
      ["b", false],
      ["f", "1.5"],
      ["n", "null"],
      ["o", '{"a":1}'],
      ["a", "[1]"],
    ]);
    expect(bodyFields(Buffer.from("[1,2]"), DEFAULT_LIMITS)).toEqual([]);
    expect(bodyFields(Buffer.from("a=b"), DEFAULT_LIMITS)).toEqual([]);
    expect(bodyFields(new Uint8Array(), DEFAULT_LIMITS)).toEqual([]);
    expectThrowsReason(() => bodyFields(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])), DEFAULT_LIMITS), "INVALID_REQUEST");
  });
});
