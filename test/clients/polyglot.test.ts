import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { startDevBroker } from "../support/broker-harness.js";
import { polyglotTools, runGoTest, runPytest, type ForeignRun } from "../support/polyglot.js";

/*
 * Clients nobody on the team wrote the transport of, against a real `capvault dev` process (FerretDB, oidc-provider
 * as the OAuth server, an HTTPS upstream on loopback): grpcurl by reflection, the Python client's pytest suite and
 * the Go client's `go test`. Each Python and Go test is reported here as a test of its own (so CI's closing
 * "N passed, N failed" line counts them): the runners are run while this file is collected, the broker stays up
 * until the end.
 */

const execFileP = promisify(execFile);
const tools = await polyglotTools();
const broker = await startDevBroker();
afterAll(() => broker.close(), 30_000);
const connection = await broker.connectAccount("alice");
const env = {
  ...process.env,
  CAPVAULT_ADDR: broker.address,
  CAPVAULT_OPERATOR_TOKEN: broker.operatorToken,
  CAPVAULT_TENANT: broker.tenant,
  CAPVAULT_CONNECTION: connection,
};
const python = await runPytest(tools.python, env);
const go = await runGoTest(env);
const examplesRoot = new URL("../../examples/", import.meta.url).pathname;

function foreignSuite(title: string, result: ForeignRun) {
  describe(title, () => {
    it("ran and exited 0", () => {
      expect(result.tests.length, result.output).toBeGreaterThan(0);
      expect(result.exitCode, result.output).toBe(0);
    });
    for (const t of result.tests) {
      it(t.name, () => expect(t.passed, t.output).toBe(true));
    }
  });
}
foreignSuite("Python client (pytest, clients/python/tests)", python);
foreignSuite("Go client (go test, clients/go)", go);

async function grpcurl(args: string[], token?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const auth = token ? ["-H", `authorization: Bearer ${token}`] : [];
  try {
    const { stdout, stderr } = await execFileP(tools.grpcurl, ["-plaintext", ...auth, ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err: any) {
    return { code: err.code ?? 1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

describe("grpcurl by reflection", () => {
  const services = ["capvault.v1.CapabilityService", "capvault.v1.ConnectionService", "capvault.v1.ProxyService", "capvault.v1.AdminService", "grpc.health.v1.Health"];

  it("lists every service, health and reflection included", async () => {
    const r = await grpcurl([broker.address, "list"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(expect.arrayContaining([...services, "grpc.reflection.v1.ServerReflection"]));
  });

  it.each(services)("describes %s and every message of its RPCs", async (service) => {
    const r = await grpcurl([broker.address, "describe", service]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${service} is a service`);
    for (const [, input, output] of r.stdout.matchAll(/rpc \w+ \( (?:stream )?\.([\w.]+) \) returns \( (?:stream )?\.([\w.]+) \)/g)) {
      for (const type of [input, output]) {
        const m = await grpcurl([broker.address, "describe", type]);
        expect(m.code, `${type}: ${m.stderr}`).toBe(0);
      }
    }
  });

  it("mints with the dev operator capability and inspects the result", async () => {
    const mint = await grpcurl(
      ["-d", JSON.stringify({ tenant: broker.tenant, subject: "grpcurl", grants: [{ connection, method: "GET", pathPrefix: "/repos/acme/" }], ttl: "600s" }), broker.address, "capvault.v1.CapabilityService/Mint"],
      broker.operatorToken,
    );
    expect(mint.code, mint.stderr).toBe(0);
    const token = JSON.parse(mint.stdout).token as string;
    const inspect = await grpcurl(["-d", JSON.stringify({ token }), broker.address, "capvault.v1.CapabilityService/Inspect"], token);
    expect(inspect.code, inspect.stderr).toBe(0);
    const info = JSON.parse(inspect.stdout);
    expect(info.subject).toBe("grpcurl");
    expect(info.blocks[0].facts).toEqual(expect.arrayContaining([expect.objectContaining({ name: "right" })]));

    const denied = await grpcurl(
      ["-format-error", "-d", JSON.stringify({ request: { connection, method: "DELETE", path: "/repos/acme/widgets" } }), broker.address, "capvault.v1.ProxyService/Proxy"],
      token,
    );
    expect(denied.code).not.toBe(0);
    const status = JSON.parse(denied.stdout || denied.stderr);
    expect(status.code).toBe(7);
    expect(status.details).toEqual([
      expect.objectContaining({ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "NO_MATCHING_GRANT", domain: "capvault" }),
    ]);
  });
});

describe("the agent examples", () => {
  async function agentEnv() {
    const minted = await broker.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }], 600, "example-agent");
    return { ...process.env, CAPVAULT_ADDR: broker.address, CAPVAULT_TOKEN: minted.token, CAPVAULT_CONNECTION: connection };
  }
  const expectStory = (stdout: string) => {
    expect(stdout).toContain("GET /repos/acme/widgets/issues -> HTTP 200");
    expect(stdout).toContain('"url":"/repos/acme/widgets/issues?state=open"');
    expect(stdout).toContain("denied as expected: CAPABILITY_CHECK_FAILED (block 1, check");
  };

  it("examples/python-agent reads issues through a narrowed capability and handles the denial", async () => {
    const { stdout } = await execFileP(tools.python, [`${examplesRoot}python-agent/agent.py`, "acme/widgets"], { env: await agentEnv(), cwd: examplesRoot, timeout: 60_000 });
    expectStory(stdout);
  });

  it("examples/go-agent does the same through the Attenuate RPC", async () => {
    const { stdout } = await execFileP("go", ["run", ".", "acme/widgets"], { env: await agentEnv(), cwd: `${examplesRoot}go-agent`, timeout: 300_000 });
    expectStory(stdout);
  }, 300_000);
});
