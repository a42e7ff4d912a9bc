import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";
import { parsePrometheusText, seriesValue } from "../support/prometheus-text.js";

/**
 * A capability worker that dies in the middle of a job (the worker thread exits: the pool's fault injection, allowed
 * only when the broker is started with worker diagnostics) shows up in the broker's log as an error and in its metrics,
 * and the broker keeps serving with a replacement worker.
 */

let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker({ memory: true, config: { "metrics.addr": "127.0.0.1:0" }, brokerOptions: { workerDiagnostics: true } });
});
afterAll(async () => t?.close());

const scrape = async () => parsePrometheusText(await (await fetch(t.broker.metricsUrl!)).text());
const logged = () => t.logs.map((l) => JSON.parse(l) as { level: number; msg: string; event?: string; worker?: number; detail?: string });

describe("a crashed capability worker", () => {
  it("is logged as an error and counted, and a replacement serves the next call", async () => {
    const before = await scrape();
    expect(seriesValue(before, "capvault_capability_worker_events_total", { event: "crashed" }) ?? 0).toBe(0);
    const replacedBefore = seriesValue(before, "capvault_capability_worker_replacements_total") ?? 0;

    const crash = await t.broker.capabilities.pool.run({ kind: "diagnostic", action: "exit" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(CapvaultError.is(crash, "CAPABILITY_RUNTIME_FAILED")).toBe(true);

    const line = logged().find((l) => l.event === "worker_crashed");
    expect(line).toMatchObject({ level: 50, msg: "capability worker crashed: replaced" });
    expect(line!.detail).toMatch(/exit code/);

    const after = await scrape();
    expect(seriesValue(after, "capvault_capability_worker_events_total", { event: "crashed" })).toBe(1);
    expect(seriesValue(after, "capvault_capability_worker_replacements_total")).toBe(replacedBefore + 1);

    // The pool still answers: a capability is minted through the RPC.
    expect((await t.mint([{ connection: "conn-after-crash", method: "GET", pathPrefix: "/" }], 60)).token.length).toBeGreaterThan(20);
    await t.broker.capabilities.ready();
    const started = logged().filter((l) => l.event === "worker_started").map((l) => l.worker);
    expect(new Set(started).size).toBeGreaterThan(seriesValue(after, "capvault_capability_workers")!);
  });
});
