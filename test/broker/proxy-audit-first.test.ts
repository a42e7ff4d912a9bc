import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, type CapvaultClient } from "../../src/client/index.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";
import { storedAuditEvents } from "../support/audit-documents.js";

/**
 * Audit before acting: a Proxy call reserves its audit event before anything else, and a call that cannot reserve one
 * is refused UNAVAILABLE AUDIT_UNAVAILABLE without reaching the upstream. Here the audit queue holds one event
 * (`audit.maxQueued: 1`) and the upstream holds the first call until the second has been answered.
 */

let t: TestBroker;
let connection: string;
let agent: CapvaultClient;
let release: (() => void) | undefined;

beforeAll(async () => {
  t = await startTestBroker({ config: { "audit.maxQueued": 1 } });
  connection = await t.connectAccount("alice");
  agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }], 600)).token);
  t.upstream.handler = (req, res) => {
    const answer = () => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ url: req.url }));
    };
    if (req.url?.startsWith("/slow")) release = answer;
    else answer();
  };
});

afterAll(async () => {
  agent?.close();
  await t?.close();
});

describe("Proxy reserves its audit event before acting", () => {
  it("a call that cannot reserve one is refused and never reaches the upstream; the held call is audited", async () => {
    const first = agent.fetch(connection, { method: "GET", path: "/slow/1" });
    for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 20));
    expect(release, "the first call reached the upstream").toBeDefined();

    const err = await agent.fetch(connection, { method: "GET", path: "/fast/2" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapvaultClientError);
    expect({ code: (err as CapvaultClientError).code, reason: (err as CapvaultClientError).reason }).toEqual({
      code: status.UNAVAILABLE,
      reason: "AUDIT_UNAVAILABLE",
    });
    expect(t.upstream.requests.map((r) => r.url)).toEqual(["/slow/1"]);

    release!();
    expect((await first).status).toBe(200);
    // The slot is free again: the next call goes through, and both answered calls are in the trail.
    expect((await agent.fetch(connection, { method: "GET", path: "/fast/3" })).status).toBe(200);
    const events = await storedAuditEvents(t.db!.db, (e) => e.action === "proxy");
    expect(events.map((e) => e.path).sort()).toEqual(["/fast/3", "/slow/1"]);
  });
});
