import type { Agent } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import type { HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { canonicalizeRequest } from "../../src/proxy/canonical-request.js";
import { forwardWithRefresh } from "../../src/proxy/forward-with-refresh.js";
import type { UpstreamTarget } from "../../src/proxy/upstream-target.js";
import { guardedDispatcher, type RecordingUpstream, startRecordingUpstream, tableLookup, TEST_CA } from "./recording-upstream.js";

let api: RecordingUpstream;
let dispatcher: Agent;
let target: UpstreamTarget;
let valid: string;

const request = (over: Partial<HttpRequest> = {}) =>
  canonicalizeRequest({ connection: "c", method: "POST", path: "/x", query: [], headers: [], body: Buffer.from("payload"), ...over });

beforeAll(async () => {
  api = await startRecordingUpstream("127.0.0.1", (req, res) => {
    if (req.headers.authorization === `Bearer ${valid}`) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    } else {
      res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"' });
      res.end();
    }
  });
  dispatcher = guardedDispatcher({ lookup: tableLookup({ "api.test": ["127.0.0.1"] }), allowPrivateAddresses: true, ca: TEST_CA });
  target = { baseUrl: `https://api.test:${api.port}`, allowedHosts: ["api.test"], credentialHeader: { name: "authorization", scheme: "Bearer" }, allowPrivateAddresses: true, ca: TEST_CA };
});
afterAll(async () => {
  await dispatcher.destroy();
  await api.close();
});
beforeEach(() => {
  api.requests.length = 0;
});

describe("forwardWithRefresh", () => {
  it("does not refresh when the token works", async () => {
    valid = "old";
    let refreshes = 0;
    const res = await forwardWithRefresh({ target, dispatcher, request: request(), accessToken: async () => "old", refresh: async () => `${++refreshes}` });
    expect(res).toMatchObject({ status: 200, refreshed: false });
    expect(refreshes).toBe(0);
  });

  it("refreshes once and retries once on an invalid_token 401, replaying the same body", async () => {
    valid = "new";
    const rejected: string[] = [];
    const res = await forwardWithRefresh({
      target,
      dispatcher,
      request: request(),
      accessToken: async () => "old",
      refresh: async (t) => {
        rejected.push(t);
        return "new";
      },
    });
    expect(res).toMatchObject({ status: 200, refreshed: true });
    expect(rejected).toEqual(["old"]);
    expect(api.requests.map((r) => r.body.toString())).toEqual(["payload", "payload"]);
    expect(api.headerValues(1, "authorization")).toEqual(["Bearer new"]);
  });

  it("returns the second 401 as is: at most one refresh, at most one retry", async () => {
    valid = "never";
    let refreshes = 0;
    const res = await forwardWithRefresh({ target, dispatcher, request: request(), accessToken: async () => "old", refresh: async () => `new${++refreshes}` });
    expect(res).toMatchObject({ status: 401, refreshed: true });
    expect(refreshes).toBe(1);
    expect(api.requests).toHaveLength(2);
  });

  it("does not retry when the refresh returns the rejected token", async () => {
    valid = "never";
    const res = await forwardWithRefresh({ target, dispatcher, request: request(), accessToken: async () => "old", refresh: async () => "old" });
    expect(res.status).toBe(401);
    expect(api.requests).toHaveLength(1);
  });

  it("lets a refresh failure (e.g. the user must reconnect) through unchanged", async () => {
    valid = "never";
    const err = await forwardWithRefresh({
      target,
      dispatcher,
      request: request(),
      accessToken: async () => "old",
      refresh: async () => {
        throw new CapvaultError("CONNECTION_NEEDS_REAUTH");
      },
    }).catch((e: unknown) => e);
    expect(CapvaultError.is(err, "CONNECTION_NEEDS_REAUTH")).toBe(true);
    expect(api.requests).toHaveLength(1);
  });
});
