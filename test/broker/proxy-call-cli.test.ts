import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../src/client/index.js";
import { CLI, REPO_ROOT } from "../support/broker-process.js";
import { startDevBroker, type DevBroker } from "../support/broker-harness.js";

/**
 * `capvault call CONNECTION METHOD PATH` against a real `capvault dev` process (the built CLI; `npm run build` first):
 * the agent token from CAPVAULT_TOKEN or --token-file, status and allowed headers on stderr, the body on stdout, exit 0
 * on 2xx, 1 otherwise, 2 on a usage error, and a refusal printed with its reason and failing check.
 */

let d: DevBroker;
let connection: string;
let agentToken: string;
let narrowToken: string;
let dir: string;

interface Result {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Run the CLI with the agent's token (unless env overrides it), optionally feeding stdin. */
function call(args: string[], env: NodeJS.ProcessEnv = {}, stdin?: Buffer | string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "call", ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, CAPVAULT_TOKEN: agentToken, ...d.cliEnv, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      // Give the pipes a moment to drain after exit.
      setImmediate(() => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    });
    child.stdin.end(stdin ?? "");
  });
}

beforeAll(async () => {
  d = await startDevBroker({
    upstream: (req, res, body) => {
      const url = new URL(req.url ?? "/", "https://localhost");
      if (url.pathname.endsWith("/teapot")) {
        res.writeHead(418, { "content-type": "text/plain", "x-ratelimit-remaining": "41" });
        res.end("short and stout");
        return;
      }
      if (url.pathname.endsWith("/binary")) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]));
        return;
      }
      res.writeHead(req.method === "POST" ? 201 : 200, { "content-type": "application/json", "set-cookie": "session=upstream", "x-github-request-id": "ABC" });
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          accept: req.headers.accept ?? null,
          contentType: req.headers["content-type"] ?? null,
          body: body.toString("base64"),
        }),
      );
    },
  });
  connection = await d.connectAccount("alice");
  agentToken = (
    await d.mint([
      { connection, method: "GET", pathPrefix: "/repos/acme/" },
      { connection, method: "POST", pathPrefix: "/repos/acme/widgets/issues" },
    ])
  ).token;
  const agent = connect(d.address, agentToken);
  narrowToken = await agent.attenuate({ methods: ["GET"], pathPrefix: "/repos/acme/widgets/" });
  agent.close();
  dir = await mkdtemp(join(tmpdir(), "capvault-call-"));
}, 120_000);

afterAll(async () => {
  await d?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const json = (r: Result) => JSON.parse(r.stdout.toString()) as { method: string; url: string; accept: string | null; contentType: string | null; body: string };

describe("capvault call", () => {
  it("GET with query and header: status and allowed headers on stderr, the body unchanged on stdout, exit 0", async () => {
    const r = await call([connection, "GET", "/repos/acme/widgets/issues", "--query", "state=open", "--query", "labels=bug,ui", "--header", "Accept: application/vnd.github+json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split("\n")[0]).toBe("HTTP 200");
    expect(r.stderr).toContain("content-type: application/json\n");
    expect(r.stderr).toContain("x-github-request-id: ABC\n");
    expect(r.stderr).not.toContain("set-cookie");
    expect(json(r)).toMatchObject({ method: "GET", url: "/repos/acme/widgets/issues?state=open&labels=bug%2Cui", accept: "application/vnd.github+json", body: "" });
  });

  it("POST --data JSON text is sent as application/json (exit 0 on 201)", async () => {
    const r = await call([connection, "post", "/repos/acme/widgets/issues", "--data", '{"title":"from the CLI"}']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split("\n")[0]).toBe("HTTP 201");
    const seen = json(r);
    expect(seen).toMatchObject({ method: "POST", contentType: "application/json" });
    expect(Buffer.from(seen.body, "base64").toString()).toBe('{"title":"from the CLI"}');
  });

  it("--data @FILE and --data - (stdin) send the bytes as they are; an explicit Content-Type wins", async () => {
    const file = join(dir, "issue.json");
    await writeFile(file, '{"title":"from a file"}\n');
    const fromFile = await call([connection, "POST", "/repos/acme/widgets/issues", "--data", `@${file}`]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(Buffer.from(json(fromFile).body, "base64").toString()).toBe('{"title":"from a file"}\n');
    expect(json(fromFile).contentType).toBe("application/json");

    const raw = Buffer.from([0xff, 0x00, 0x0d, 0x0a, 0x80]);
    const fromStdin = await call([connection, "POST", "/repos/acme/widgets/issues", "--data", "-", "--header", "content-type: application/octet-stream"], {}, raw);
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    expect(Buffer.from(json(fromStdin).body, "base64")).toEqual(raw);
    expect(json(fromStdin).contentType).toBe("application/octet-stream");
  });

  it("a binary response body reaches stdout byte for byte", async () => {
    const r = await call([connection, "GET", "/repos/acme/binary"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toEqual(Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]));
  });

  it("a non-2xx answer exits 1, still printing status, headers and body", async () => {
    const r = await call([connection, "GET", "/repos/acme/teapot"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("HTTP 418\n");
    expect(r.stderr).toContain("x-ratelimit-remaining: 41\n");
    expect(r.stdout.toString()).toBe("short and stout");
  });

  it("a refusal exits 1 and prints the reason and the failing check", async () => {
    const noGrant = await call([connection, "DELETE", "/repos/acme/widgets"]);
    expect(noGrant.code).toBe(1);
    expect(noGrant.stdout.length).toBe(0);
    expect(noGrant.stderr).toContain("PERMISSION_DENIED NO_MATCHING_GRANT");
    expect(noGrant.stderr).toContain("allow if right(");

    const tokenFile = join(dir, "narrow.token");
    await writeFile(tokenFile, `${narrowToken}\n`);
    await chmod(tokenFile, 0o600);
    const byCheck = await call([connection, "GET", "/repos/acme/gadgets", "--token-file", tokenFile], { CAPVAULT_TOKEN: "" });
    expect(byCheck.code).toBe(1);
    expect(byCheck.stderr).toContain("PERMISSION_DENIED CAPABILITY_CHECK_FAILED");
    expect(byCheck.stderr).toContain("(block=1, check=1)");
    expect(byCheck.stderr).toContain('failing check: block 1, check 1: check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")');
    // …and the same file token works where its checks allow.
    const ok = await call([connection, "GET", "/repos/acme/widgets/pulls", "--token-file", tokenFile], { CAPVAULT_TOKEN: "" });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("other broker errors exit 1 with their reason", async () => {
    const noToken = await call([connection, "GET", "/repos/acme/x"], { CAPVAULT_TOKEN: "" });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("UNAUTHENTICATED CAPABILITY_MISSING");
    const badPath = await call([connection, "GET", "https://evil.example/"]);
    expect(badPath.code).toBe(1);
    expect(badPath.stderr).toContain("INVALID_ARGUMENT PATH_INVALID");
    const unknown = await call(["conn_nope", "GET", "/x"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("NOT_FOUND CONNECTION_NOT_FOUND");
  });

  it("usage errors exit 2 and never call the broker", async () => {
    for (const args of [
      [],
      [connection, "GET"],
      [connection, "GET", "/x", "extra"],
      [connection, "GET", "/x", "--query", "novalue"],
      [connection, "GET", "/x", "--header", "nocolon"],
      [connection, "GET", "/x", "--token", agentToken],
      [connection, "GET", "/x", "--data", "@/nonexistent/file"],
      [connection, "GET", "/x", "--bogus"],
    ]) {
      const r = await call(args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
    }
    const help = await call(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout.toString()).toContain("Usage: capvault call CONNECTION METHOD PATH");
  });
});
