import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type CapvaultClient, type CapvaultClientError } from "../../src/client/index.js";
import { startDevBroker, type DevBroker } from "../support/broker-harness.js";

let broker: DevBroker | undefined;
let agent: CapvaultClient | undefined;
afterEach(async () => {
  agent?.close();
  await broker?.close();
  broker = agent = undefined;
});

describe("graceful shutdown of a real broker process", () => {
  it("SIGTERM while a Proxy call is in flight: the call completes, new calls are refused, the process exits 0", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const slowArrived = new Promise<void>((r) => (arrived = r));
    broker = await startDevBroker({
      upstream: (req, res) => {
        const answer = () => {
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ path: req.url }));
        };
        if (req.url?.startsWith("/slow")) {
          arrived();
          void released.then(answer);
        } else answer();
      },
    });
    const connection = await broker.connectAccount("alice");
    const minted = await broker.mint([{ connection, method: "GET", pathPrefix: "/" }], 600);
    agent = connect(broker.address, minted.token);

    const inFlight = agent.fetch(connection, { path: "/slow", timeoutMs: 20_000 });
    await slowArrived;
    broker.process.child.kill("SIGTERM");
    await waitFor(() => broker!.process.stderr().includes("shutting down"));
    const refused = (await agent.fetch(connection, { path: "/fast", timeoutMs: 3000 }).catch((e) => e)) as CapvaultClientError;
    expect([status.UNAVAILABLE, status.CANCELLED]).toContain(refused.code);

    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ path: "/slow" });
    expect(await broker.process.exited).toBe(0);
    expect(broker.process.stderr()).toContain('"forced":false');
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
