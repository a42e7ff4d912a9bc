import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, connect } from "../../src/client/index.js";
import { followToCallback, openCallback } from "../oauth/support/authorize-driver.js";
import { startDevBroker, type DevBroker } from "../support/broker-harness.js";
import { CLI, REPO_ROOT, runCli } from "../support/broker-process.js";

/*
 * `capvault connections` against a real `capvault dev` process (FerretDB, oidc-provider as provider "gh", an HTTPS
 * upstream): connect through the real authorization-code flow (the browser played in code), list and show, then
 * disconnect — after which the broker refuses the next Proxy call on that connection even though it had the
 * connection's route and access token cached from a call just before.
 */
let broker: DevBroker;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  broker = await startDevBroker();
  env = { PATH: process.env.PATH ?? "", CAPVAULT_TOKEN: broker.operatorToken, CAPVAULT_GRPC_ADDR: broker.address };
}, 120_000);
afterAll(() => broker?.close(), 30_000);

/** `capvault connections connect gh --user U`, answering its printed URL in code as the user's browser would. */
async function connectWithCli(user: string): Promise<{ code: number | null; stdout: string; stderr: string; url: string }> {
  const child = spawn(process.execPath, [CLI, "connections", "connect", "gh", "--user", user, "--wait", "60s", "--json"], {
    cwd: REPO_ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      const line = /^(https?:\/\/\S+)$/m.exec(stdout);
      if (line) resolve(line[1]);
    });
    void exited.then(() => reject(new Error(`exited before printing a URL: ${stderr}`)));
  });
  const redirectUri = new URL(url).searchParams.get("redirect_uri")!;
  const page = await openCallback(await followToCallback(url, redirectUri));
  expect(page.text).toContain("is now connected");
  const code = await exited;
  return { code, stdout, stderr, url };
}

describe("capvault connections", () => {
  it("connect ends ACTIVE; list --json and show report it; disconnect makes the next Proxy call CONNECTION_NOT_FOUND", async () => {
    const connected = await connectWithCli("bob");
    expect(connected.code, connected.stderr).toBe(0);
    expect(connected.stderr).toMatch(/connected: conn_\S+ is ACTIVE/);
    const shown = JSON.parse(connected.stdout.trim().split("\n").pop()!) as { id: string; status: string; user: string; provider: string };
    expect(shown).toMatchObject({ status: "ACTIVE", user: "bob", provider: "gh" });
    const id = shown.id;

    const list = await runCli(["connections", "list", "--json"], { env });
    expect(list.code, list.stderr).toBe(0);
    const listed = list.stdout.trim().split("\n").map((l) => JSON.parse(l) as { id: string; status: string });
    expect(listed.find((c) => c.id === id)).toMatchObject({ status: "ACTIVE" });
    const table = await runCli(["connections", "list", "--user", "bob"], { env });
    expect(table.stdout).toMatch(new RegExp(`^ID +USER +PROVIDER +ACCOUNT +STATUS +SCOPES\\n${id} +bob +gh +\\S+ +ACTIVE `));
    const show = await runCli(["connections", "show", id], { env });
    expect(show.stdout).toMatch(/^status +ACTIVE$/m);

    // The broker caches the connection's route and access token on this call...
    const agentToken = (await broker.mint([{ connection: id, method: "GET", pathPrefix: "/" }], 600, "agent-of-bob")).token;
    const agent = connect(broker.address, agentToken);
    try {
      expect((await agent.fetch(id, { method: "GET", path: "/repos/bob/x" })).status).toBe(200);
      const upstreamCalls = broker.upstream.requests.length;

      const gone = await runCli(["connections", "disconnect", id], { env });
      expect(gone.code, gone.stderr).toBe(0);
      expect(gone.stderr).toContain(`disconnected ${id}`);

      // ...and must forget both at once: the next call is refused, and nothing reaches the upstream.
      const refused = await agent.fetch(id, { method: "GET", path: "/repos/bob/x" }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(CapvaultClientError);
      expect((refused as CapvaultClientError).reason).toBe("CONNECTION_NOT_FOUND");
      expect(broker.upstream.requests.length).toBe(upstreamCalls);
    } finally {
      agent.close();
    }
    const after = await runCli(["connections", "list", "--json"], { env });
    expect(after.stdout).not.toContain(id);
  }, 120_000);

  it("says what is wrong: no capability, an unknown subcommand, a missing --user, an unknown connection", async () => {
    const noToken = await runCli(["connections", "list"], { env: { PATH: process.env.PATH ?? "", CAPVAULT_GRPC_ADDR: broker.address } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain("no operator capability");
    expect((await runCli(["connections", "frobnicate"], { env })).code).toBe(2);
    const noUser = await runCli(["connections", "connect", "gh"], { env });
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toContain("--user is required");
    const unknown = await runCli(["connections", "show", "conn_doesnotexist0000000000"], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("CONNECTION_NOT_FOUND");
  }, 60_000);

  it("import: 10,000 JSON lines with 10 bad ones imports 9,990, names the 10 by line, is idempotent, and no token is left in clear", async () => {
    const dir = await mkdtemp(join(tmpdir(), "capvault-import-"));
    try {
      const tag = randomBytes(4).toString("hex");
      const bad = new Map<number, string>([
        [17, "{not json"],
        [1001, "[1, 2, 3]"],
        [2002, JSON.stringify({ provider: "gh", user: "u", account: "a-missing-token" })],
        [3003, JSON.stringify({ provider: "gh", user: "u", account: "a", access_token: 42 })],
        [4004, JSON.stringify({ provider: "nope", user: "u", account: "a-unknown", access_token: `SECRET-AT-${tag}-x` })],
        [5005, JSON.stringify({ provider: "gh", user: "", account: "a-no-user", access_token: `SECRET-AT-${tag}-y` })],
        [6006, JSON.stringify({ provider: "gh", user: "u", account: "a-scopes", access_token: `SECRET-AT-${tag}-z`, scopes: [1] })],
        [7007, JSON.stringify({ provider: "gh", user: "u", account: "a-expiry", access_token: `SECRET-AT-${tag}-w`, expires_at: "soon" })],
        [8008, JSON.stringify({ provider: "gh", user: "u", account: "", access_token: `SECRET-AT-${tag}-v` })],
        [9009, JSON.stringify({ provider: "gh", user: "u", account: "a-bad-scope", access_token: `SECRET-AT-${tag}-u`, scopes: ["a b"] })],
      ]);
      const lines: string[] = [];
      for (let n = 1; n <= 10_000; n++) {
        lines.push(
          bad.get(n) ??
            JSON.stringify({
              provider: "gh",
              user: `user-${n}`,
              account: `acct-${tag}-${n}`,
              access_token: `SECRET-AT-${tag}-${n}`,
              refresh_token: `SECRET-RT-${tag}-${n}`,
              expires_at: "2030-01-01T00:00:00Z",
              scopes: ["repo", "read:org"],
            }),
        );
      }
      const file = join(dir, "tokens.jsonl");
      await writeFile(file, `${lines.join("\n")}\n`);

      const first = await runCli(["connections", "import", file, "--json"], { env, timeoutMs: 300_000 });
      expect(first.code, first.stderr).toBe(1); // some lines were refused
      const r1 = JSON.parse(first.stdout.trim().split("\n").pop()!) as { imported: number; updated: number; unchanged: number; refused: number; refusals: Array<{ line: number; reason: string }> };
      expect(r1).toMatchObject({ imported: 9_990, updated: 0, unchanged: 0, refused: 10 });
      expect(r1.refusals.map((x) => x.line)).toEqual([...bad.keys()]);
      expect(r1.refusals.find((x) => x.line === 4004)!.reason).toBe("PROVIDER_UNKNOWN");

      const second = await runCli(["connections", "import", file, "--json"], { env, timeoutMs: 300_000 });
      const r2 = JSON.parse(second.stdout.trim().split("\n").pop()!) as typeof r1;
      expect(r2).toMatchObject({ imported: 0, updated: 0, unchanged: 9_990, refused: 10 });
      const listed = await runCli(["connections", "list", "--json"], { env, timeoutMs: 60_000 });
      const imported = listed.stdout.trim().split("\n").map((l) => JSON.parse(l) as { id: string; account: string; status: string }).filter((c) => c.account.startsWith(`acct-${tag}-`));
      expect(imported).toHaveLength(9_990);
      expect(new Set(imported.map((c) => c.id)).size).toBe(9_990);
      expect(imported.every((c) => c.status === "ACTIVE")).toBe(true);

      for (const out of [first.stdout, first.stderr, second.stdout, second.stderr, listed.stdout]) {
        expect(out).not.toMatch(/SECRET-(AT|RT)-/);
      }
      // A dump of every collection of the broker's database: the tokens exist only sealed.
      let documents = 0;
      for (const { name } of await broker.db.db.listCollections().toArray()) {
        for await (const d of broker.db.db.collection(name).find({})) {
          documents++;
          expect(JSON.stringify(d).includes("SECRET-"), `a token in clear in ${name}`).toBe(false);
        }
      }
      expect(documents).toBeGreaterThan(19_980);

      // And the broker uses an imported token as it would a connected account's.
      const one = imported.find((c) => c.account === `acct-${tag}-4242`)!;
      const agentToken = (await broker.mint([{ connection: one.id, method: "GET", pathPrefix: "/" }], 600, "agent-import")).token;
      const agent = connect(broker.address, agentToken);
      try {
        expect((await agent.fetch(one.id, { method: "GET", path: "/imported" })).status).toBe(200);
      } finally {
        agent.close();
      }
      expect(broker.upstream.headerValues(broker.upstream.requests.length - 1, "authorization")).toEqual([`Bearer SECRET-AT-${tag}-4242`]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
