import { chmod, cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTokenCommand } from "../../src/cli/commands/token.js";
import { openMongoStore } from "../../src/store/mongodb/mongodb-store.js";
import { REPO_ROOT, runCli, startBrokerProcess, type BrokerProcess, type CliRun } from "../support/broker-process.js";
import { openTestDatabase, type TestDatabase } from "../support/mongo.js";

/**
 * `capvault token ...` and `capvault policy test` as a user runs them: the built CLI as separate processes against a
 * `capvault dev` process (its data in the FerretDB test database, so the test can add a connection record and the
 * bootstrap command can reach the same root key). `npm run build` first.
 */

const TEST_KEK = Buffer.alloc(32, 0x3c).toString("base64");
const CONNECTION = "conn_cli_test_1";

let db: TestDatabase;
let broker: BrokerProcess;
let operator: string;
let dir: string;
let baseEnv: NodeJS.ProcessEnv;

type Run = CliRun;

/** Run the CLI with this test's environment; `input` goes to its stdin. */
const cli = (args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> =>
  runCli(args, { env: { ...baseEnv, ...options.env }, ...(options.input !== undefined ? { input: options.input } : {}) });

/** The same command in this process (for what needs no broker: usage errors, help), output captured. */
async function inProcess(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await runTokenCommand(args.slice(1), {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    stdin: Readable.from([Buffer.from(options.input ?? "")]),
    env: { ...baseEnv, ...options.env },
  });
  return { code, stdout, stderr };
}

const asOperator = { CAPVAULT_TOKEN: "" } as NodeJS.ProcessEnv; // filled in beforeAll

beforeAll(async () => {
  db = await openTestDatabase("clitoken");
  dir = await mkdtemp(join(tmpdir(), "capvault-cli-"));
  baseEnv = {
    ...process.env,
    CAPVAULT_MONGODB_URI: db.uri,
    CAPVAULT_MONGODB_DATABASE: db.name,
    CAPVAULT_KEK: TEST_KEK,
    CAPVAULT_KEYRING_FILE: "",
    CAPVAULT_TOKEN: "",
    CAPVAULT_GRPC_ADDR: "",
  };
  broker = await startBrokerProcess(["dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"], baseEnv);
  baseEnv.CAPVAULT_GRPC_ADDR = broker.address;
  // The dev banner prints the operator capability of the dev tenant.
  operator = /export CAPVAULT_TOKEN=(\S+)/.exec(broker.stdout())![1];
  asOperator.CAPVAULT_TOKEN = operator;
  const store = await openMongoStore(db.uri, db.name);
  const now = new Date();
  await store.connections.insert({ id: CONNECTION, tenant: "dev", user: "alice", provider: "github", scopes: ["repo"], status: "active", createdAt: now, updatedAt: now });
  await store.close();
}, 120_000);

afterAll(async () => {
  if (broker && broker.child.exitCode === null && broker.child.signalCode === null) {
    broker.child.kill("SIGTERM");
    const timer = setTimeout(() => broker.child.kill("SIGKILL"), 10_000);
    await broker.exited;
    clearTimeout(timer);
  }
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("capvault token: mint -> attenuate -> inspect -> authorize -> revoke against capvault dev", () => {
  let agent: string;
  let narrower: string;
  let narrowest: string;

  it("mint refuses a grant for a connection that does not exist in the tenant, unless told it will", async () => {
    const r = await cli(["token", "mint", "--tenant", "dev", "--subject", "agent-1", "--grant", "conn_not_there:GET:/", "--ttl", "1h"], { env: asOperator });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("CONNECTION_NOT_FOUND");
    expect(r.stderr).toContain("conn_not_there");
    expect(r.stdout).toBe("");
    const later = await cli(["token", "mint", "--tenant", "dev", "--subject", "agent-1", "--grant", "conn_not_there:GET:/", "--allow-unknown-connection", "--ttl", "1h"], { env: asOperator });
    expect(later.code, later.stderr).toBe(0);
  });

  it("mint prints the token on stdout and what it is on stderr", async () => {
    const r = await cli(["token", "mint", "--tenant", "dev", "--subject", "agent-1", "--grant", `${CONNECTION}:get:/repos/acme/`, "--ttl", "1h"], { env: asOperator });
    expect(r.stderr).toMatch(/^minted a capability for agent-1 in tenant dev: 1 grant\(s\), expires \S+, root key 1\nrevocation id \(authority block\): [0-9a-f]{128}\n$/);
    expect(r.code).toBe(0);
    agent = r.stdout.trim();
    expect(r.stdout).toBe(`${agent}\n`);
    expect(agent).toMatch(/^[A-Za-z0-9_-]+=*$/);
    const json = await cli(["token", "mint", "--tenant", "dev", "--subject", "agent-1", "--grant", `${CONNECTION}:GET:/`, "--ttl", "90", "--json"], { env: asOperator });
    expect(JSON.parse(json.stdout)).toMatchObject({ token: expect.any(String), rootKeyId: "1", revocationIds: [expect.stringMatching(/^[0-9a-f]+$/)] });
  });

  it("attenuate narrows the token read from stdin, then from --token-file", async () => {
    const r = await cli(["token", "attenuate", "--path-prefix", "/repos/acme/widgets/"], { input: `${agent}\n` });
    expect(r.stderr).toMatch(/^appended block 1; its revocation id: [0-9a-f]+\n$/);
    expect(r.code).toBe(0);
    narrower = r.stdout.trim();
    const file = join(dir, "narrower.token");
    await writeFile(file, `${narrower}\n`, { mode: 0o600 });
    const r2 = await cli(
      ["token", "attenuate", "--token-file", file, "--ttl", "5m", "--method", "GET", "--query", "state=open,closed", "--check", 'check if host($h), $h == "api.github.com"'],
      { env: { CAPVAULT_TOKEN: operator } }, // --token-file wins over CAPVAULT_TOKEN
    );
    expect(r2.stderr).toContain("appended block 2");
    expect(r2.code).toBe(0);
    narrowest = r2.stdout.trim();
  });

  it("inspect shows the blocks as text, or as JSON", async () => {
    const r = await cli(["token", "inspect"], { input: narrowest });
    expect(r.code).toBe(0);
    const text = r.stdout;
    expect(text).toMatch(/^tenant "dev", subject "agent-1", root key 1, expires \S+\n/);
    expect(text).toContain("block 0 (authority)");
    expect(text).toContain(`  right("${CONNECTION}", "GET", "/repos/acme/");`);
    expect(text).toContain('  check if path($path), ($path + "/").starts_with("/repos/acme/widgets/");');
    expect(text).toContain('  check if method($m), {"GET"}.contains($m);');
    expect(text).toContain('  check all query("state", $v), {"closed", "open"}.contains($v);');
    expect(text).toContain('  check if host($h), $h == "api.github.com";');
    expect(text.match(/^block \d/gm)).toEqual(["block 0", "block 1", "block 2"]);

    const json = await cli(["token", "inspect", "--json"], { input: narrowest });
    const parsed = JSON.parse(json.stdout);
    expect(parsed.blocks).toHaveLength(3);
    expect(parsed.tenant).toBe("dev");
    expect(parsed.blocks[0].facts[2]).toEqual({ name: "right", terms: [{ string: CONNECTION }, { string: "GET" }, { string: "/repos/acme/" }] });
  });

  it("authorize: exit 0 when allowed, 1 when denied with the failing check named", async () => {
    const allowed = await cli(["token", "authorize", "--connection", CONNECTION, "--method", "GET", "--path", "/repos/acme/widgets/issues", "--query", "state=open"], { input: narrowest });
    expect(allowed).toMatchObject({ code: 0, stdout: "allowed: GET /repos/acme/widgets/issues\n" });

    const outside = await cli(["token", "authorize", "--connection", CONNECTION, "--path", "/repos/acme/widgets/../gadgets", "--query", "state=open"], { input: narrowest });
    expect(outside.code).toBe(1);
    expect(outside.stdout).toBe(
      'denied: GET /repos/acme/gadgets\n  CAPABILITY_CHECK_FAILED (block 1 check 0): check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")\n',
    );
    const noQuery = await cli(["token", "authorize", "--connection", CONNECTION, "--path", "/repos/acme/widgets/issues"], { input: narrowest });
    expect(noQuery.code).toBe(1);
    expect(noQuery.stdout).toContain('CAPABILITY_CHECK_FAILED (block 2 check 2): check all query("state", $v)');
    const post = await cli(["token", "authorize", "--connection", CONNECTION, "--method", "POST", "--path", "/repos/acme/x", "--body", "{}"], { input: agent });
    expect(post.code).toBe(1);
    expect(post.stdout).toContain("NO_MATCHING_GRANT (policy): allow if right(");
    const json = await cli(["token", "authorize", "--json", "--connection", CONNECTION, "--path", "/repos/acme/x"], { input: agent });
    expect(JSON.parse(json.stdout)).toMatchObject({ allowed: true, canonicalPath: "/repos/acme/x" });
  });

  it("revoke (operator) revokes block 1, and with it every token derived from it", async () => {
    const ids = JSON.parse((await cli(["token", "inspect", "--json"], { input: narrowest })).stdout).blocks.map((b: { revocationId: string }) => b.revocationId);
    const r = await cli(["token", "revoke", ids[1], "--reason", "cli test"], { env: asOperator });
    expect(r).toMatchObject({ code: 0, stdout: "revoked 1 of 1 id(s)\n" });
    for (const token of [narrower, narrowest]) {
      const a = await cli(["token", "authorize", "--connection", CONNECTION, "--path", "/repos/acme/widgets/issues", "--query", "state=open"], { input: token });
      expect(a.code).toBe(1);
      expect(a.stderr).toContain("UNAUTHENTICATED CAPABILITY_REVOKED");
    }
    const parent = await cli(["token", "authorize", "--connection", CONNECTION, "--path", "/repos/acme/widgets/issues"], { input: agent });
    expect(parent.code).toBe(0);
    expect((await cli(["token", "inspect"], { input: narrowest })).stdout.split("\n")[0]).toContain("REVOKED");
  });
});

describe("capvault token: errors say what went wrong", () => {
  it("operator-only commands without a capability, or with an agent's", async () => {
    const none = await cli(["token", "mint", "--tenant", "dev", "--subject", "a", "--grant", `${CONNECTION}:GET:/`, "--ttl", "1h"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("UNAUTHENTICATED CAPABILITY_MISSING");
    const agent = (await cli(["token", "mint", "--tenant", "dev", "--subject", "a", "--grant", `${CONNECTION}:GET:/`, "--ttl", "1h"], { env: asOperator })).stdout.trim();
    const asAgent = await cli(["token", "revoke", "ab".repeat(32)], { env: { CAPVAULT_TOKEN: agent } });
    expect(asAgent.code).toBe(1);
    expect(asAgent.stderr).toContain("PERMISSION_DENIED OPERATOR_REQUIRED: this RPC needs an operator capability (operation=revoke)");
    const otherTenant = await cli(["token", "mint", "--tenant", "acme", "--subject", "a", "--grant", `${CONNECTION}:GET:/`, "--ttl", "1h"], { env: asOperator });
    expect(otherTenant.code).toBe(1);
    expect(otherTenant.stderr).toContain("CAPABILITY_TENANT_MISMATCH");
  });

  it("the operator capability from --token-file; a world-readable file is warned about", async () => {
    const file = join(dir, "operator.token");
    await writeFile(file, operator);
    await chmod(file, 0o644);
    const r = await cli(["token", "mint", "--token-file", file, "--tenant", "dev", "--subject", "a", "--grant", `${CONNECTION}:GET:/`, "--ttl", "1h"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`warning: ${file} is readable by other users`);
    await chmod(file, 0o600);
    const quiet = await cli(["token", "mint", "--token-file", file, "--tenant", "dev", "--subject", "a", "--grant", `${CONNECTION}:GET:/`, "--ttl", "1h"]);
    expect(quiet.stderr).not.toContain("warning");
  });

  it("secrets are never flags; bad arguments are usage errors (exit 2)", async () => {
    const token = await cli(["token", "mint", "--token", operator, "--tenant", "dev"]); // (a real process: exit code 2)
    expect(token.code).toBe(2);
    expect(token.stderr).toContain("--token: secrets are never taken on the command line");
    expect(token.stderr).not.toContain(operator);
    for (const args of [
      ["token", "mint", "--tenant", "dev", "--subject", "a", "--grant", "no-colons", "--ttl", "1h"],
      ["token", "mint", "--tenant", "dev", "--subject", "a", "--grant", "c:GET:/", "--ttl", "soon"],
      ["token", "mint", "--subject", "a", "--grant", "c:GET:/", "--ttl", "1h"],
      ["token", "attenuate"],
      ["token", "attenuate", "--query", "novalue"],
      ["token", "authorize", "--path", "/x"],
      ["token", "revoke"],
      ["token", "frobnicate"],
      ["token", "inspect", "--nope"],
    ]) {
      const r = await inProcess(args, { env: asOperator, input: operator });
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(/capvault token/);
    }
    const noToken = await inProcess(["token", "inspect"]);
    expect(noToken).toMatchObject({ code: 2 });
    expect(noToken.stderr).toContain("no token: pipe it on stdin, use --token-file FILE, or set CAPVAULT_TOKEN");
  });

  it("hostile tokens come back with the broker's stable reason", async () => {
    const malformed = await cli(["token", "inspect"], { input: "not-a-token!" });
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain("UNAUTHENTICATED CAPABILITY_MALFORMED");
    const big = await cli(["token", "inspect"], { input: "A".repeat(30_000) });
    expect(big.stderr).toContain("INVALID_ARGUMENT CAPABILITY_TOO_LARGE");
  });

  it("an unreachable broker is reported as such", async () => {
    const r = await cli(["token", "inspect", "--grpc-addr", "127.0.0.1:1", "--timeout-ms", "3000"], { input: operator });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/UNAVAILABLE: cannot reach the broker|DEADLINE_EXCEEDED/);
  });

  it("every subcommand has --help", async () => {
    const top = await cli(["token", "--help"]);
    expect(top.code).toBe(0);
    for (const sub of ["mint", "attenuate", "inspect", "authorize", "revoke", "bootstrap-operator"]) {
      expect(top.stdout).toContain(`  ${sub}`);
      const r = await inProcess(["token", sub, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: capvault token ${sub} `));
    }
    const main = await cli(["--help"]);
    expect(main.stdout).toMatch(/ {2}token {6}/);
    expect(main.stdout).toMatch(/ {2}policy {5}/);
  });
});

describe("capvault token bootstrap-operator against the dev broker's database and key", () => {
  it("mints an operator the running broker accepts", async () => {
    const r = await cli(["token", "bootstrap-operator", "--tenant", "dev", "--subject", "first-ops", "--ttl", "10m", "--json"]);
    expect(r.code).toBe(0);
    const { token, revocationIds } = JSON.parse(r.stdout);
    expect(revocationIds).toHaveLength(1);
    const minted = await cli(["token", "mint", "--tenant", "dev", "--subject", "a", "--grant", `${CONNECTION}:GET:/`, "--ttl", "1h"], { env: { CAPVAULT_TOKEN: token } });
    expect(minted.code).toBe(0);
    const ins = await cli(["token", "inspect"], { input: token });
    expect(ins.stdout).toContain('subject "first-ops"');
    expect(ins.stdout).toContain("operator(true);");
  });
});

describe("capvault policy test", () => {
  it("the shipped example policies pass their tests", async () => {
    const r = await cli(["policy", "test", "policies/example"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^20 passed, 0 failed \(4 policy files\)$/m);
    expect(r.stdout).not.toContain("FAIL");
  });

  it("a broken expectation fails with exit 1, naming the case", async () => {
    const copy = join(dir, "policies");
    await cp(join(REPO_ROOT, "policies", "example"), copy, { recursive: true });
    const tests = JSON.parse(await readFile(join(copy, "tests.json"), "utf8"));
    tests[1].expect = "allow"; // "DELETE is denied even when the token grants it"
    await writeFile(join(copy, "tests.json"), JSON.stringify(tests));
    const r = await cli(["policy", "test", copy]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("FAIL DELETE is denied even when the token grants it");
    expect(r.stdout).toContain("19 passed, 1 failed");
  });

  it("bad input is exit 2; --help explains", async () => {
    expect((await cli(["policy", "test", join(dir, "nowhere")])).code).toBe(2);
    expect((await cli(["policy", "test"])).code).toBe(2);
    expect((await cli(["policy", "frob"])).code).toBe(2);
    const help = await cli(["policy", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: capvault policy test DIR/);
  });
});
