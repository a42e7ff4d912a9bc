import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attenuateOffline, CapvaultClientError } from "../../src/client/index.js";
import type { Header, HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { ProxyServiceClient, type ProxyResponse } from "../../src/gen/capvault/v1/proxy.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * The body an agent is authorized on is the body the upstream parses (issue #9 item 2, checklist item 23). The
 * capability pins the body field `channel` to C0123. The agent sends a JSON/form polyglot whose form reading names
 * another channel; the upstream here is as lenient as Slack's: it reads JSON when the Content-Type says JSON and a
 * form otherwise. Whatever headers the agent adds, the upstream must either see the Content-Type that was
 * authorized, exactly, or see nothing at all.
 */

const POLYGLOT = '{"channel":"C0123","x":"&channel=C999&"}';

let t: TestBroker;
let connection: string;
let channelToken: string;
let rawProxy: ProxyServiceClient;

beforeAll(async () => {
  t = await startTestBroker({
    memory: true,
    upstream: (req, res, body) => {
      const contentType = req.headers["content-type"];
      const text = body.toString("utf8");
      let channel: unknown;
      if (/^application\/json\b/i.test(contentType ?? "")) channel = (JSON.parse(text) as { channel?: unknown }).channel;
      else channel = new URLSearchParams(text).getAll("channel").at(-1);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ contentType: contentType ?? null, channel }));
    },
  });
  connection = await t.connectAccount("alice");
  const parent = (await t.mint([{ connection, method: "POST", pathPrefix: "/chat.postMessage" }])).token;
  channelToken = await attenuateOffline(parent, { body: [{ name: "channel", values: ["C0123"] }] });
  rawProxy = new ProxyServiceClient(t.address, credentials.createInsecure());
});

afterAll(async () => {
  rawProxy?.close();
  await t?.close();
});

/** Proxy with a wire-level request, as a hostile agent could send it. */
function post(headers: Header[], body = POLYGLOT): Promise<ProxyResponse> {
  const request: HttpRequest = { connection, method: "POST", path: "/chat.postMessage", query: [], headers, body: Buffer.from(body) };
  const md = new Metadata();
  md.set("authorization", `Bearer ${channelToken}`);
  return new Promise((ok, no) =>
    rawProxy.proxy({ request }, md, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: ProxyResponse) =>
      err ? no(CapvaultClientError.fromServiceError(err)) : ok(res),
    ),
  );
}

async function expectRefusedUnsent(call: Promise<unknown>, reason: string): Promise<CapvaultClientError> {
  const requests = t.upstream.requests.length;
  const err = await call.then(
    () => {
      const i = t.upstream.requests.length - 1;
      throw new Error(`expected ${reason}, but the upstream got the body with content-type ${JSON.stringify(t.upstream.headerValues(i, "content-type"))}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CapvaultClientError);
  expect({ code: (err as CapvaultClientError).code, reason: (err as CapvaultClientError).reason }).toEqual({ code: status.INVALID_ARGUMENT, reason });
  expect(t.upstream.requests.length).toBe(requests);
  return err as CapvaultClientError;
}

describe("the upstream parses the body under the Content-Type that was authorized", () => {
  it("the authorized Content-Type reaches the upstream exactly, once, with the body unchanged", async () => {
    const res = await post([{ name: "Content-Type", value: "application/json; charset=utf-8" }]);
    expect(res.status).toBe(200);
    const i = t.upstream.requests.length - 1;
    expect(t.upstream.headerValues(i, "content-type")).toEqual(["application/json; charset=utf-8"]);
    expect(t.upstream.headerValues(i, "content-encoding")).toEqual([]);
    expect(t.upstream.requests[i].body.toString()).toBe(POLYGLOT);
    expect(JSON.parse(Buffer.from(res.body).toString())).toEqual({ contentType: "application/json; charset=utf-8", channel: "C0123" });
  });

  it.each([
    ["Connection: content-type", [{ name: "Connection", value: "content-type" }]],
    ["Connection: keep-alive, Content-Type", [{ name: "Connection", value: "keep-alive, Content-Type" }]],
    ["Proxy-Connection: content-type", [{ name: "Proxy-Connection", value: "content-type" }]],
  ])("%s is refused with HEADER_INVALID: the polyglot never reaches the upstream as a form", async (_what, extra) => {
    const err = await expectRefusedUnsent(post([{ name: "Content-Type", value: "application/json" }, ...extra]), "HEADER_INVALID");
    expect(err.message).toMatch(/content-type/i);
  });

  it("Connection: content-encoding is refused as well", async () => {
    await expectRefusedUnsent(post([{ name: "Content-Type", value: "application/json" }, { name: "Connection", value: "content-encoding" }]), "HEADER_INVALID");
  });

  it("a Content-Encoding on the authorized JSON body is refused with BODY_INVALID (the upstream would decode what the broker did not read)", async () => {
    await expectRefusedUnsent(post([{ name: "Content-Type", value: "application/json" }, { name: "Content-Encoding", value: "br" }]), "BODY_INVALID");
  });

  it("without a JSON Content-Type the polyglot has no body fields, so the channel check refuses it", async () => {
    const requests = t.upstream.requests.length;
    const err = await post([{ name: "Content-Type", value: "application/x-www-form-urlencoded" }]).catch((e: unknown) => e);
    expect((err as CapvaultClientError).reason).toBe("CAPABILITY_CHECK_FAILED");
    expect(t.upstream.requests.length).toBe(requests);
  });
});
