import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * The broker can only take echoed credentials out of a body it can read: it asks the upstream for an unencoded one,
 * whatever the agent asked (the rest of the no-smuggling and no-echo tests: proxy-body-headers.test.ts and
 * proxy-credential-echoes.test.ts).
 */

let t: TestBroker;
let connection: string;

beforeAll(async () => {
  t = await startTestBroker({ memory: true });
  t.upstream.handler = (req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ acceptEncoding: req.headers["accept-encoding"] ?? null }));
  };
  connection = await t.connectAccount("alice");
});
afterAll(async () => t?.close());

describe("the upstream is asked for an unencoded body", () => {
  it("accept-encoding is identity, whatever the agent asked", async () => {
    const agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }], 600)).token);
    const res = await agent.fetch(connection, { method: "GET", path: "/plain", headers: { "accept-encoding": "gzip, br" } });
    expect(JSON.parse(res.body.toString())).toEqual({ acceptEncoding: "identity" });
    expect(t.upstream.headerValues(t.upstream.requests.length - 1, "accept-encoding")).toEqual(["identity"]);
  });
});
