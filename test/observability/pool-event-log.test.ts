import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NativeBiscuit } from "../../src/capabilities/binding/native-loader.js";
import { CapvaultClientError } from "../../src/client/index.js";
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
    expect((await t.mint([{ connection: await t.connectAccount("alice"), method: "GET", pathPrefix: "/" }], 60)).token.length).toBeGreaterThan(20);
    await t.broker.capabilities.ready();
    const started = logged().filter((l) => l.event === "worker_started").map((l) => l.worker);
    expect(new Set(started).size).toBeGreaterThan(seriesValue(after, "capvault_capability_workers")!);
  });
});

describe("a panic caught by the native capability runtime", () => {
  it("fails that call only, and is logged as an error and counted", async () => {
    const authorizer = t.broker.capabilities.native;
    if (!authorizer) {
      // The wasm runtime has no native panics; its panics are worker events (above).
      expect(t.broker.capabilities.runtime).toBe("wasm");
      return;
    }
    // The connection and the agent's capability first: their RPCs are authorized on the same runtime.
    const connection = await t.connectAccount("bob");
    const agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }], 60)).token);
    // A real panic from the Rust side (the runtime's diagnostic entry point), injected into the next authorization:
    // no request or token makes biscuit-auth panic on purpose.
    const binding = (authorizer as unknown as { native: NativeBiscuit }).native;
    const panic = await binding.diagnosticPanic().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String((panic as Error).message)).toContain('"kind":"panic"');
    const real = { authorize: binding.authorize, authorizeSync: binding.authorizeSync };
    let injected = 0;
    binding.authorizeSync = () => {
      injected++;
      throw panic;
    };
    binding.authorize = () => {
      injected++;
      return Promise.reject(panic as Error);
    };

    try {
      const refused = await agent.authorize(connection, { path: "/repos/x" }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(CapvaultClientError);
      expect((refused as CapvaultClientError).reason).toBe("CAPABILITY_RUNTIME_FAILED");
      expect(injected).toBe(1);
    } finally {
      Object.assign(binding, real);
    }

    const line = logged().find((l) => l.event === "native_panic");
    expect(line).toMatchObject({ level: 50, msg: "native capability runtime panicked: that call failed, the runtime goes on" });
    expect(line!.detail).toMatch(/panic/i);
    const after = await scrape();
    expect(seriesValue(after, "capvault_capability_worker_events_total", { event: "native-panic" })).toBe(1);
    expect(seriesValue(after, "capvault_native_authorization_failures_total")).toBeGreaterThanOrEqual(1);

    // The next authorization runs on the real runtime again.
    const allowed = await agent.authorize(connection, { path: "/repos/x" });
    expect(allowed.allowed).toBe(true);
  });
});
