import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";
import { parsePrometheusText } from "../support/prometheus-text.js";

/** docs/operations.md lists exactly the metrics a broker's endpoint serves, each with the type it is served as. */

let t: TestBroker;
beforeAll(async () => {
  t = await startTestBroker({ memory: true, config: { "metrics.addr": "127.0.0.1:0" } });
});
afterAll(async () => t?.close());

it("docs/operations.md names every metric the endpoint serves, and no other", async () => {
  const served = parsePrometheusText(await (await fetch(t.broker.metricsUrl!)).text());
  const doc = await readFile(new URL("../../docs/operations.md", import.meta.url), "utf8");
  const documented = new Map<string, string>();
  for (const m of doc.matchAll(/^\| `([a-z_:][a-z0-9_:]*)` \| (counter|gauge|histogram|summary) \|/gm)) documented.set(m[1], m[2]);

  expect(served.size).toBeGreaterThan(20);
  expect([...documented.keys()].sort()).toEqual([...served.keys()].sort());
  for (const [name, family] of served) expect(documented.get(name), name).toBe(family.type);
});
