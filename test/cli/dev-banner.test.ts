import { afterEach, describe, expect, it } from "vitest";
import { startBrokerProcess, type BrokerProcess } from "../support/broker-process.js";

let broker: BrokerProcess | undefined;
afterEach(async () => {
  if (broker && broker.child.exitCode === null) {
    broker.child.kill("SIGTERM");
    await broker.exited;
  }
  broker = undefined;
});

describe("the capvault dev banner (a real process)", () => {
  it("says that the in-memory audit trail keeps only the last audit.devMaxEvents events", async () => {
    broker = await startBrokerProcess(["dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"], {
      CAPVAULT_MONGODB_URI: "",
      CAPVAULT_AUDIT_DEV_MAX_EVENTS: "2500",
    });
    expect(broker.stdout()).toContain("Storage is in memory");
    expect(broker.stdout()).toContain("The audit trail keeps the last 2,500 events (audit.devMaxEvents, CAPVAULT_AUDIT_DEV_MAX_EVENTS)");
  });
});

describe("capvault dev metrics (a real process)", () => {
  it("serves Prometheus metrics on loopback and prints where", async () => {
    broker = await startBrokerProcess(["dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"], { CAPVAULT_MONGODB_URI: "" });
    const url = /Prometheus metrics are served at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(broker.stdout())?.[1];
    expect(url, broker.stdout()).toBeDefined();
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("# TYPE capvault_proxy_calls_total counter");
  });

  it("serves on the address given with --metrics-addr instead of the default", async () => {
    broker = await startBrokerProcess(["dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"], { CAPVAULT_MONGODB_URI: "" });
    const url = /Prometheus metrics are served at (http:\/\/127\.0\.0\.1:(\d+)\/metrics)/.exec(broker.stdout());
    expect(url?.[2]).not.toBe("9464");
    expect((await fetch(url![1])).status).toBe(200);
  });
});
