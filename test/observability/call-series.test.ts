import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CallCounter, CallHistogram } from "../../src/observability/call-series.js";

const BUCKETS = [0.001, 0.005, 0.01, 0.1, 1];
const OBSERVATIONS: Array<[number, string, string]> = [
  [0.0004, "github", "2xx"],
  [0.001, "github", "2xx"], // on a bound: counted in that bucket, as prom-client does
  [0.003, "github", "4xx"],
  [0.07, "slack", "2xx"],
  [2.5, "github", "2xx"], // above every bound: +Inf only
  [0.0099, "slack", "error"],
];

describe("CallHistogram and CallCounter", () => {
  it("serve exactly what prom-client's Histogram and Counter serve for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const h1 = new CallHistogram({ name: "t_seconds", help: "test histogram", labelNames: ["provider", "outcome"], buckets: BUCKETS, registers: [ours] });
    const h2 = new Histogram({ name: "t_seconds", help: "test histogram", labelNames: ["provider", "outcome"], buckets: BUCKETS, registers: [theirs] });
    const c1 = new CallCounter({ name: "t_total", help: "test counter", labelNames: ["provider", "outcome"], registers: [ours] });
    const c2 = new Counter({ name: "t_total", help: "test counter", labelNames: ["provider", "outcome"], registers: [theirs] });
    const u1 = new CallHistogram({ name: "u_seconds", help: "unlabelled", labelNames: [], buckets: BUCKETS, registers: [ours] });
    const u2 = new Histogram({ name: "u_seconds", help: "unlabelled", buckets: BUCKETS, registers: [theirs] });
    expect(await ours.metrics()).toBe(await theirs.metrics()); // the unlabelled histogram is served as zero from the start
    for (const [seconds, provider, outcome] of OBSERVATIONS) {
      h1.observe(seconds, provider, outcome);
      h2.observe({ provider, outcome }, seconds);
      c1.inc(provider, outcome);
      c2.inc({ provider, outcome });
      u1.observe(seconds);
      u2.observe(seconds);
    }
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('t_seconds_bucket{le="0.001",provider="github",outcome="2xx"} 2');
    expect(text).toContain('t_seconds_bucket{le="+Inf",provider="github",outcome="2xx"} 3');
    expect(text).toContain('t_total{provider="slack",outcome="error"} 1');
  });

  it("refuses the wrong number of label values, and ignores a value that is not a finite number", async () => {
    const registry = new Registry();
    const h = new CallHistogram({ name: "v_seconds", help: "h", labelNames: ["provider"], buckets: BUCKETS, registers: [registry] });
    expect(() => h.observe(0.1)).toThrow(/takes 1 label values/);
    h.observe(Number.NaN, "github");
    h.observe(0.1, "github");
    expect(await registry.metrics()).toContain('v_seconds_count{provider="github"} 1');
  });
});
