import { execFile } from "node:child_process";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../src/client/capvault-client.js";
import { InspectResponse } from "../../src/gen/capvault/v1/capability.js";
import { startDevBroker, type DevBroker } from "../support/broker-harness.js";
import { REPO_ROOT } from "../support/broker-process.js";

/*
 * `capvault mcp` as an agent framework runs it: a child process speaking MCP on stdio, driven by the TypeScript SDK's
 * client and by the official Python `mcp` client, against a real `capvault dev` broker (FerretDB, the account connected
 * through the real OAuth flow with oidc-provider, an HTTPS upstream on loopback). The MCP process holds a capability;
 * the OAuth access token must never reach it: not its environment, not a message, not its output, not its memory.
 */
const run = promisify(execFile);
const CLI = join(REPO_ROOT, "dist", "cli", "main.js");
const ALLOWED = "/repos/acme/widgets/issues";
const DENIED = "/repos/acme/gadgets/issues";

let broker: DevBroker;
let connection: string;
let token: string;
/** The OAuth access token the broker sent upstream (read from the upstream's own record). */
let accessToken: string;

beforeAll(async () => {
  broker = await startDevBroker();
  connection = await broker.connectAccount("alice");
  token = (await broker.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }], 3600, "mcp-agent")).token;
  const agent = connect(broker.address, token);
  try {
    expect((await agent.fetch(connection, { method: "GET", path: "/repos/acme/warmup" })).status).toBe(200);
  } finally {
    agent.close();
  }
  accessToken = broker.upstream.headerValues(broker.upstream.requests.length - 1, "authorization")[0].replace(/^Bearer /, "");
  expect(accessToken.length).toBeGreaterThan(16);
}, 120_000);
afterAll(() => broker?.close(), 30_000);

/** An MCP session with `capvault mcp ARGS`, every JSON-RPC message in both directions recorded. */
async function session(args: string[] = []) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", ...args],
    env: { PATH: process.env.PATH ?? "", CAPVAULT_TOKEN: token, CAPVAULT_GRPC_ADDR: broker.address },
    stderr: "pipe",
  });
  const messages: string[] = [];
  let stderr = "";
  transport.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  // Record what the transport hands the client (the client reads then replaces onmessage while connecting).
  let deliver: ((m: JSONRPCMessage) => void) | undefined;
  const record = (m: JSONRPCMessage) => {
    messages.push(JSON.stringify(m));
    deliver?.(m);
  };
  Object.defineProperty(transport, "onmessage", {
    configurable: true,
    get: () => (deliver ? record : undefined),
    set: (f: (m: JSONRPCMessage) => void) => (deliver = f),
  });
  const send = transport.send.bind(transport);
  transport.send = async (m: JSONRPCMessage) => {
    messages.push(JSON.stringify(m));
    return send(m);
  };
  const client = new Client({ name: "capvault-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport, messages, stderr: () => stderr };
}

type ToolResult = { isError?: boolean; content: Array<{ type: string; text?: string }>; structuredContent?: Record<string, any> };
const textOf = (r: ToolResult) => r.content.map((c) => c.text ?? "").join("");

/** Whether `needle` is anywhere in the readable memory of process `pid` (/proc/<pid>/maps and mem). */
function memoryContains(pid: number, needle: string): boolean {
  const target = Buffer.from(needle);
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8").split("\n");
  const fd = openSync(`/proc/${pid}/mem`, "r");
  let scanned = 0;
  try {
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) r/.exec(line);
      if (!m || line.includes("[vvar]") || line.includes("[vsyscall]")) continue;
      const start = Number.parseInt(m[1], 16);
      const end = Number.parseInt(m[2], 16);
      const chunk = Buffer.alloc(1 << 20);
      // Chunks overlap by the needle's length, so a match across a boundary is found.
      for (let at = start; at < end; at += chunk.length - target.length) {
        let n = 0;
        try {
          n = readSync(fd, chunk, 0, Math.min(chunk.length, end - at), at);
        } catch {
          break; // an unreadable mapping (guard pages)
        }
        scanned += n;
        if (chunk.subarray(0, n).includes(target)) return true;
        if (n < chunk.length) break;
      }
    }
  } finally {
    closeSync(fd);
  }
  if (scanned < 1 << 20) throw new Error(`scanned only ${scanned} bytes of process ${pid}`);
  return false;
}

describe("capvault mcp with the TypeScript SDK's client", () => {
  it("lists the two tools; describe_capability is the broker's Inspect answer", async () => {
    const s = await session();
    try {
      const tools = await s.client.listTools();
      expect(tools.tools.map((t) => t.name).sort()).toEqual(["describe_capability", "http_request"]);
      const described = (await s.client.callTool({ name: "describe_capability", arguments: {} })) as ToolResult;
      expect(described.isError).toBeFalsy();
      const agent = connect(broker.address, token);
      try {
        expect(described.structuredContent!.inspect).toEqual(InspectResponse.toJSON(await agent.inspect()));
      } finally {
        agent.close();
      }
      expect(described.structuredContent!.grants).toEqual([{ connection, method: "GET", pathPrefix: "/repos/acme/" }]);
    } finally {
      await s.client.close();
    }
  });

  it("an allowed request returns the upstream's answer; a refused one is a tool error naming the reason and the failing check", async () => {
    // Narrowed at launch to /repos/acme/widgets/: the gadgets path is refused by that block's check.
    const s = await session(["--path-prefix", "/repos/acme/widgets/", "--method", "GET"]);
    try {
      const before = broker.upstream.requests.length;
      const ok = (await s.client.callTool({ name: "http_request", arguments: { connection, method: "GET", path: ALLOWED, query: { state: "open" } } })) as ToolResult;
      expect(ok.isError).toBeFalsy();
      expect(ok.structuredContent).toMatchObject({ status: 200, body: { method: "GET", url: `${ALLOWED}?state=open` } });
      expect(broker.upstream.requests.length).toBe(before + 1);

      const no = (await s.client.callTool({ name: "http_request", arguments: { connection, method: "GET", path: DENIED } })) as ToolResult;
      expect(no.isError).toBe(true);
      expect(textOf(no)).toMatch(/^CAPABILITY_CHECK_FAILED: /);
      // The launch block checks the method first (check 0), then the path (check 1).
      expect(textOf(no)).toContain('block 1, check 1: check if path($path), ($path + "/").starts_with("/repos/acme/widgets/")');
      expect(no.structuredContent!.reason).toBe("CAPABILITY_CHECK_FAILED");
      expect(broker.upstream.requests.length, "a refused request never reaches the upstream").toBe(before + 1);

      const described = (await s.client.callTool({ name: "describe_capability", arguments: {} })) as ToolResult;
      expect(described.structuredContent!.inspect.blocks).toHaveLength(2);
    } finally {
      await s.client.close();
    }
  });

  it("the access token is nowhere in the MCP process: not its environment, messages, output or memory", async () => {
    const s = await session();
    try {
      const res = (await s.client.callTool({ name: "http_request", arguments: { connection, method: "GET", path: ALLOWED } })) as ToolResult;
      expect(res.structuredContent!.status).toBe(200);
      const sent = broker.upstream.headerValues(broker.upstream.requests.length - 1, "authorization")[0];
      expect(sent, "the broker did send the access token upstream for this call").toBe(`Bearer ${accessToken}`);
      await s.client.callTool({ name: "http_request", arguments: { connection, method: "GET", path: DENIED.replace("/acme/", "/other/") } });
      await s.client.callTool({ name: "describe_capability", arguments: {} });

      const pid = s.transport.pid!;
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
      expect(environ).toContain("CAPVAULT_TOKEN=");
      expect(environ.includes(accessToken)).toBe(false);
      expect(s.messages.length).toBeGreaterThan(6);
      expect(s.messages.filter((m) => m.includes(accessToken))).toEqual([]);
      expect(s.stderr().includes(accessToken)).toBe(false);
      expect(s.stderr().includes(token), "nor the capability itself in its log").toBe(false);
      expect(memoryContains(pid, accessToken)).toBe(false);
      // The scan can find what is there: the capability the process does hold.
      expect(memoryContains(pid, token.slice(0, 64))).toBe(true);
    } finally {
      await s.client.close();
    }
  }, 60_000);

  it("refuses to start without a capability, or with stdin as the token file (stdin is the protocol)", async () => {
    for (const [args, env] of [
      [[], { PATH: process.env.PATH ?? "" }],
      [["--token-file", "-"], { PATH: process.env.PATH ?? "" }],
    ] as const) {
      const r = await run(process.execPath, [CLI, "mcp", ...args], { env }).then(
        () => ({ code: 0, stderr: "" }),
        (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^capvault mcp: /);
    }
  });
});

describe("capvault mcp with the official Python mcp client", () => {
  it("lists the tools, describes the capability as Inspect does, returns the upstream body, names the failing check", async () => {
    const { stdout: setup } = await run("bash", [join(REPO_ROOT, "test", "mcp", "setup-mcp-python.sh")], { cwd: REPO_ROOT, timeout: 10 * 60_000 });
    const python = /^python=(.+)$/m.exec(setup)?.[1];
    expect(python).toBeDefined();
    const narrowed = connect(broker.address, token);
    const widgetsOnly = await narrowed.attenuate({ pathPrefix: "/repos/acme/widgets/" });
    narrowed.close();
    const { stdout, stderr } = await run(python!, [join(REPO_ROOT, "test", "mcp", "python", "mcp_session.py")], {
      env: {
        PATH: process.env.PATH ?? "",
        CAPVAULT_CLI: CLI,
        CAPVAULT_TOKEN: widgetsOnly,
        CAPVAULT_GRPC_ADDR: broker.address,
        MCP_CONNECTION: connection,
        MCP_ALLOWED_PATH: ALLOWED,
        MCP_DENIED_PATH: DENIED,
      },
      timeout: 60_000,
    });
    const seen = JSON.parse(stdout) as Record<string, any>;
    expect(seen.tools).toEqual(["describe_capability", "http_request"]);
    const agent = connect(broker.address, widgetsOnly);
    try {
      expect(seen.describe.structured.inspect).toEqual(InspectResponse.toJSON(await agent.inspect()));
    } finally {
      agent.close();
    }
    expect(seen.allowed.isError).toBe(false);
    expect(seen.allowed.structured).toMatchObject({ status: 200, body: { method: "GET", url: ALLOWED } });
    expect(seen.denied.isError).toBe(true);
    expect(seen.denied.text).toMatch(/^CAPABILITY_CHECK_FAILED: /);
    expect(seen.denied.text).toContain("block 1, check 0: check if path($path)");
    expect(stdout.includes(accessToken) || stderr.includes(accessToken)).toBe(false);
  }, 11 * 60_000);
});
