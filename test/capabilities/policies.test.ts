import { mkdtemp, rm, writeFile, cp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePolicyFile, policySetFromSources, splitStatements } from "../../src/capabilities/policies.js";
import { policyTestCommand } from "../../src/cli/commands/policy-test.js";
import { runPolicyTests } from "../../src/capabilities/policy-tests.js";
import { expectReason, expectThrowsReason, githubRequest, harness } from "./fixtures.js";

const EXAMPLE = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "policies", "example");
const h = harness();
const NOW = new Date("2030-01-15T12:00:00Z");
let token: string;

beforeAll(async () => {
  token = (
    await h.caps.mint({
      rootKey: h.rootKey,
      tenant: "acme",
      subject: "agent-7",
      grants: [
        { connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" },
        { connection: "conn-github-1", method: "DELETE", pathPrefix: "/repos/acme/" },
      ],
      ttlSeconds: 3600,
      now: NOW,
    })
  ).token;
});
afterAll(() => h.caps.close());

function capture() {
  let stdout = "";
  let stderr = "";
  return {
    out: { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}

describe("policy files", () => {
  it("split statements at ';' outside strings and comments", () => {
    const src = `// a comment; with a semicolon
check if path($p), $p != "/a;b"; /* block; comment */ deny if
  method("DELETE");
`;
    expect(splitStatements(src)).toEqual([
      { text: 'check if path($p), $p != "/a;b"', line: 2 },
      { text: 'deny if\n  method("DELETE")', line: 2 },
    ]);
  });

  it("refuse facts, rules and allow policies, naming the file and line", () => {
    expectThrowsReason(() => parsePolicyFile("f.datalog", 'method("GET");'), "DATALOG_INVALID");
    expectThrowsReason(() => parsePolicyFile("f.datalog", "right($c, \"GET\", \"/\") <- connection($c);"), "DATALOG_INVALID");
    expectThrowsReason(() => parsePolicyFile("f.datalog", "\n\nallow if true;"), "DATALOG_INVALID");
    try {
      parsePolicyFile("f.datalog", "check if true;\n\nallow if true;");
    } catch (err) {
      expect((err as { metadata: Record<string, string> }).metadata).toEqual({ policy: "f.datalog", line: "3" });
    }
  });

  it("invalid Datalog is refused at load time, naming the file", async () => {
    const err = await expectReason(h.caps.policiesFromSources({ "ok.datalog": "check if true;", "bad.datalog": "check if method(;" }), "DATALOG_INVALID");
    expect(err.metadata.policy).toBe("bad.datalog");
    await expectReason(h.caps.policiesFromSources({ "p.datalog": "check if method({m});" }), "DATALOG_INVALID");
  });

  it("a refusing check or deny policy is reported with its file name", async () => {
    const policies = await h.caps.policiesFromSources({
      "10-no-delete.datalog": 'deny if method("DELETE");',
      "20-host.datalog": 'check if host("api.github.com");',
    });
    const authorize = (o: Parameters<typeof githubRequest>[0]) =>
      h.caps.authorize(token, githubRequest(o), { publicKeys: h.publicKeys, policies, now: NOW });
    expect((await authorize({})).allowed).toBe(true);
    const del = await authorize({ method: "DELETE" });
    expect(del).toMatchObject({ allowed: false, reason: "POLICY_DENIED" });
    expect(del.denials).toEqual([{ reason: "POLICY_DENIED", blockIndex: -1, checkIndex: -1, rule: 'deny if method("DELETE")', policy: "10-no-delete.datalog" }]);
    const host = await authorize({ host: "uploads.github.com" });
    expect(host.denials).toEqual([{ reason: "POLICY_DENIED", blockIndex: -1, checkIndex: 0, rule: 'check if host("api.github.com")', policy: "20-host.datalog" }]);
    // the tenant check comes after the organisation checks and is still named correctly
    const tenant = await authorize({ tenant: "globex" });
    expect(tenant.denials).toEqual([expect.objectContaining({ reason: "CAPABILITY_TENANT_MISMATCH", checkIndex: 1 })]);
    // operator operations are not subject to organisation policies
    const op = await h.caps.authorize(token, { tenant: "acme", operation: "mint" }, { publicKeys: h.publicKeys, policies, now: NOW });
    expect(op.denials.map((d) => d.reason)).toEqual(["OPERATOR_REQUIRED"]);
  });

  it("the same set id is compiled once per worker and reused", async () => {
    const a = policySetFromSources({ "x.datalog": 'deny if method("PUT");' });
    const b = policySetFromSources({ "x.datalog": 'deny if method("PUT");' });
    expect(a.id).toBe(b.id);
    for (let i = 0; i < 3; i++) {
      expect((await h.caps.authorize(token, githubRequest(), { publicKeys: h.publicKeys, policies: a, now: NOW })).allowed).toBe(true);
    }
  });
});

describe("policies/example", () => {
  it("every case of tests.json passes", async () => {
    const report = await runPolicyTests(EXAMPLE, { capabilities: h.caps });
    const failures = report.results.filter((r) => !r.passed).map((r) => `${r.name}: ${r.message}`);
    expect(failures).toEqual([]);
    expect(report.files).toEqual(["approvals.datalog", "github-repo-admin.datalog", "no-delete.datalog", "slack-channels.datalog"]);
    expect(report.passed).toBeGreaterThanOrEqual(10);
  });

  it("`capvault policy test DIR` exits 0 when all pass, 1 on a mismatch, 2 on bad input", async () => {
    const ok = capture();
    expect(await policyTestCommand([EXAMPLE], ok.out)).toBe(0);
    expect(ok.stdout).toMatch(/\d+ passed, 0 failed \(4 policy files\)/);

    const dir = await mkdtemp(join(tmpdir(), "capvault-policy-test-"));
    try {
      await cp(EXAMPLE, dir, { recursive: true });
      await writeFile(join(dir, "no-delete.datalog"), "// disabled\n");
      const mismatch = capture();
      expect(await policyTestCommand([dir], mismatch.out)).toBe(1);
      expect(mismatch.stdout).toContain("FAIL DELETE is denied even when the token grants it: expected deny, got allow");

      await writeFile(join(dir, "bad.datalog"), 'allow if method("GET");');
      const broken = capture();
      expect(await policyTestCommand([dir], broken.out)).toBe(2);
      expect(broken.stderr).toContain("DATALOG_INVALID");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const usage = capture();
    expect(await policyTestCommand([], usage.out)).toBe(2);
    expect(usage.stderr).toContain("usage:");
  }, 60_000);
});

describe("step-up approval rules", () => {
  const rule = 'approval_required("delete a repository") <- method("DELETE"), path($p), $p.starts_with("/repos/")';

  it("compile to a reject-if check on the unapproved fact, keeping the reason and the rule as written", () => {
    const [s] = parsePolicyFile("approve.datalog", `${rule};`);
    expect(s).toMatchObject({ kind: "check", approval: { reason: "delete a repository", rule } });
    expect(s.source).toBe('reject if unapproved(true), method("DELETE"), path($p), $p.starts_with("/repos/")');
  });

  it("refuse other heads, a reason that is not a literal, and bodies with `or`", () => {
    expectThrowsReason(() => parsePolicyFile("a.datalog", 'approval_required($r) <- method($r);'), "DATALOG_INVALID");
    expectThrowsReason(() => parsePolicyFile("a.datalog", 'right("c", "GET", "/") <- method("GET");'), "DATALOG_INVALID");
    expectThrowsReason(() => parsePolicyFile("a.datalog", 'approval_required("x") <- method("DELETE") or method("PUT");'), "DATALOG_INVALID");
    expectThrowsReason(() => parsePolicyFile("a.datalog", 'approval_required("") <- method("DELETE");'), "DATALOG_INVALID");
    expect(parsePolicyFile("a.datalog", 'approval_required("x", "show body") <- method("POST");')[0].approval).toEqual({
      reason: "x",
      rule: 'approval_required("x", "show body") <- method("POST")',
      showBody: true,
    });
    expectThrowsReason(() => parsePolicyFile("a.datalog", 'approval_required("x", "show everything") <- method("POST");'), "DATALOG_INVALID");
    // "or" inside a string is not the operator.
    expect(parsePolicyFile("a.datalog", 'approval_required("x or y") <- path("/a or b");')[0].approval?.reason).toBe("x or y");
  });

  it.each(["native", "wasm"] as const)("hold only requests nothing else refuses, and an approved request passes (%s runtime)", async (runtime) => {
    const { Capabilities } = await import("../../src/capabilities/capabilities.js");
    if (runtime === "native" && !(await import("../../src/capabilities/binding/native-loader.js")).loadNativeBiscuit()) return;
    const caps = new Capabilities({ workers: 1, runtime });
    try {
      const policies = await caps.policiesFromSources({ "approve.datalog": `${rule};` });
      const decide = (r: Parameters<typeof githubRequest>[0], t = token) => caps.authorize(t, githubRequest(r), { publicKeys: h.publicKeys, policies, now: NOW });
      const held = await decide({ method: "DELETE" });
      expect(held).toMatchObject({ allowed: false, reason: "APPROVAL_REQUIRED" });
      expect(held.denials).toEqual([expect.objectContaining({ reason: "APPROVAL_REQUIRED", approval: "delete a repository", policy: "approve.datalog" })]);
      expect(await decide({ method: "DELETE", approved: true })).toMatchObject({ allowed: true });
      // Outside the grant: denied for that, not held.
      expect(await decide({ method: "DELETE", path: "/repos/globex/x" })).toMatchObject({ allowed: false, reason: "NO_MATCHING_GRANT" });
      expect(await decide({ method: "GET" })).toMatchObject({ allowed: true });

      // A capability narrowed with approvalMethods: held for those methods only, and an approval lifts it.
      const narrowed = (await caps.attenuate(token, { approvalMethods: ["get"] }, h.publicKeys, NOW)).token;
      const byBlock = await caps.authorize(narrowed, githubRequest({ method: "GET" }), { publicKeys: h.publicKeys, now: NOW });
      expect(byBlock).toMatchObject({ allowed: false, reason: "APPROVAL_REQUIRED" });
      expect(byBlock.denials[0]).toMatchObject({ blockIndex: 1, approval: expect.stringContaining("block 1") });
      expect(await caps.authorize(narrowed, githubRequest({ method: "GET", approved: true }), { publicKeys: h.publicKeys, now: NOW })).toMatchObject({ allowed: true });
    } finally {
      await caps.close();
    }
  });
});
