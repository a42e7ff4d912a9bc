import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError, type CapvaultClient } from "../../src/client/index.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * The body an agent is authorized on is the body the upstream parses, and the credential the broker sends never comes
 * back to the agent, even when the upstream echoes it into its body.
 */

let t: TestBroker;
let connection: string;
let narrowed: CapvaultClient;
let accessToken: string;

const POLYGLOT = '{"channel":"C0123","x":"&channel=C999&"}';

beforeAll(async () => {
  t = await startTestBroker({ memory: true });
  t.upstream.handler = (req, res, body) => {
    if (req.url?.startsWith("/echo")) {
      // An httpbin-style endpoint: the request headers back, in the body.
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ headers: req.headers, note: `you sent ${req.headers.authorization}` }));
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ contentType: req.headers["content-type"] ?? null, body: body.toString() }));
  };
  connection = await t.connectAccount("alice");
  const minted = await t.mint([{ connection, method: "POST", pathPrefix: "/" }, { connection, method: "GET", pathPrefix: "/" }], 600);
  const agent = t.client(minted.token);
  narrowed = t.client(await agent.attenuate({ body: [{ name: "channel", values: ["C0123"] }] }));
  accessToken = await t.accessTokenOf(connection);
});
afterAll(async () => t?.close());

const postMessage = (headers: Record<string, string>) =>
  narrowed.fetch(connection, { method: "POST", path: "/chat.postMessage", headers, body: Buffer.from(POLYGLOT) });

describe("no smuggled body", () => {
  it("the upstream gets exactly the Content-Type whose body fields were authorized", async () => {
    const res = await postMessage({ "content-type": "application/json" });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ contentType: "application/json", body: POLYGLOT });
  });

  it("a Connection header naming Content-Type is refused before anything is sent", async () => {
    const before = t.upstream.requests.length;
    for (const connectionHeader of ["content-type", "keep-alive, Content-Type", "content-length", "content-encoding"]) {
      const err = await postMessage({ "content-type": "application/json", connection: connectionHeader }).catch((e: unknown) => e);
      expect(err, connectionHeader).toBeInstanceOf(CapvaultClientError);
      expect({ code: (err as CapvaultClientError).code, reason: (err as CapvaultClientError).reason }).toEqual({ code: status.INVALID_ARGUMENT, reason: "HEADER_INVALID" });
    }
    expect(t.upstream.requests.length).toBe(before);
  });

  it("an encoded body cannot meet a body caveat: the broker did not read what the upstream would decode", async () => {
    const err = await postMessage({ "content-type": "application/json", "content-encoding": "br" }).catch((e: unknown) => e);
    expect((err as CapvaultClientError).code).toBe(status.PERMISSION_DENIED);
  });
});

describe("no credential echo", () => {
  it("an upstream that echoes the Authorization header into its body does not hand the agent the token (unary)", async () => {
    const agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }], 600)).token);
    const res = await agent.fetch(connection, { method: "GET", path: "/echo" });
    expect(res.status).toBe(200);
    const text = res.body.toString();
    expect(text).toContain("[redacted by capvault]");
    expect(text).not.toContain(accessToken);
    expect(JSON.stringify(res.headers)).not.toContain(accessToken);
  });

  it("nor when the response is streamed", async () => {
    const agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }], 600)).token);
    const res = await agent.stream(connection, { method: "GET", path: "/echo/streamed" });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c);
    const text = Buffer.concat(chunks).toString();
    expect(text).toContain("[redacted by capvault]");
    expect(text).not.toContain(accessToken);
  });

  it("the upstream is asked for an unencoded body, whatever the agent asked", async () => {
    const agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }], 600)).token);
    await agent.fetch(connection, { method: "GET", path: "/plain", headers: { "accept-encoding": "gzip, br" } });
    const last = t.upstream.requests.length - 1;
    expect(t.upstream.headerValues(last, "accept-encoding")).toEqual(["identity"]);
  });
});
