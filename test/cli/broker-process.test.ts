import { afterEach, describe, expect, it } from "vitest";
import { runPythonClient } from "../support/python-clients.js";
import { REPO_ROOT, runCli, startBrokerProcess, type BrokerProcess } from "../support/broker-process.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";


const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { env: { ...process.env, ...env }, timeoutMs: 20_000 });

let broker: BrokerProcess | undefined;
afterEach(async () => {
  if (broker && broker.child.exitCode === null) {
    broker.child.kill("SIGKILL");
    await broker.exited;
  }
  broker = undefined;
});

describe("capvault dev (a real process)", () => {
  it("serves grpc.health.v1 and reflection to an independent Python grpcio client, and exits 0 on SIGTERM", async () => {
    broker = await startBrokerProcess(["dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]);
    expect(broker.stdout()).toContain("capvault dev broker is running on");

    const probe = await runPythonClient("broker_probe.py", [broker.address]);
    expect(probe.health).toBe("SERVING");
    expect(probe.services).toEqual(
      expect.arrayContaining([
        "capvault.v1.AdminService",
        "capvault.v1.CapabilityService",
        "capvault.v1.ConnectionService",
        "capvault.v1.ProxyService",
      ]),
    );
    expect(probe.methods["capvault.v1.ProxyService"]).toEqual(["ProxyService/Proxy", "ProxyService/ProxyStream"]);

    const health = await cli(["health", "--grpc-addr", broker.address]);
    expect(health).toMatchObject({ code: 0 });
    expect(health.stdout).toContain("SERVING");

    broker.child.kill("SIGTERM");
    expect(await broker.exited).toBe(0);
    expect(broker.stderr()).toContain("gRPC server stopped");
  });
});

describe("configuration errors", () => {
  it("a bad address names the field and exits 2", async () => {
    const r = await cli(["dev"], { CAPVAULT_GRPC_ADDR: "not an address" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("grpc.addr (CAPVAULT_GRPC_ADDR)");
  });

  it("a non-numeric size names the variable and exits 2", async () => {
    const r = await cli(["dev"], { CAPVAULT_GRPC_MAX_MESSAGE_BYTES: "lots" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("CAPVAULT_GRPC_MAX_MESSAGE_BYTES: must be a whole number");
  });

  it("serve without MongoDB says what to set and exits 2", async () => {
    const r = await cli(["serve"], { CAPVAULT_MONGODB_URI: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("mongodb.uri");
  });

  it("refuses a password on the command line, without echoing it", async () => {
    const r = await cli(["dev", "--mongodb-uri", "mongodb://admin:hunter2@127.0.0.1:1/"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--mongodb-uri: holds a password");
    expect(r.stderr).not.toContain("hunter2");
  });

  it("dev refuses a non-loopback address (it prints an operator capability and promises loopback)", async () => {
    for (const args of [["--grpc-addr", "0.0.0.0:0"], ["--http-addr", "192.0.2.1:8080"]]) {
      const r = await cli(["dev", ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("capvault dev listens on loopback only");
    }
  });

  it("--version prints the package's version", async () => {
    const r = await cli(["--version"]);
    expect(r.code).toBe(0);
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    expect(r.stdout).toBe(`capvault ${version}\n`);
  });

  it("an unknown command or flag is a usage error", async () => {
    expect((await cli(["frobnicate"])).code).toBe(2);
    expect((await cli(["dev", "--grpc-adr", "x"])).code).toBe(2);
  });
});

describe("capvault health", () => {
  it("exits 1 when no broker answers", async () => {
    const r = await cli(["health", "--grpc-addr", "127.0.0.1:1", "--timeout-ms", "1000"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("unreachable");
  });

  it("prints help", async () => {
    const r = await cli(["health", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: capvault health");
  });
});
