import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CapvaultClient } from "../../src/client/index.js";
import { REDACTION_MARKER } from "../../src/proxy/credential-echoes.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * An upstream that echoes the request's Authorization header into its response BODY (httpbin's /anything, an error
 * page printing the request) must not hand the agent the access token (issue #9 item 9, checklist item 10): the
 * broker overwrites every echo of the credentials it sent, in a unary body and in a streamed one, also when the
 * upstream splits the token over two writes that reach the broker as separate chunks.
 */

let t: TestBroker;
let connection: string;
let agent: CapvaultClient;
let token: string;

beforeAll(async () => {
  t = await startTestBroker({ memory: true });
  t.upstream.handler = (req, res) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    const auth = req.headers.authorization ?? "";
    if (url.pathname === "/anything") {
      // httpbin-style: every request header back as JSON, with a Content-Length.
      const body = JSON.stringify({ headers: { Authorization: auth, Host: req.headers.host }, url: req.url }, null, 2);
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
      res.end(body);
      return;
    }
    if (url.pathname === "/error-page") {
      res.writeHead(500, { "content-type": "text/html" });
      res.end(`<pre>GET ${req.url}\nauthorization: ${auth}\n</pre><p>token=${encodeURIComponent(auth.slice(7))}</p>`);
      return;
    }
    if (url.pathname === "/split-echo") {
      // The token split at byte `at` over two writes, far enough apart in time to arrive as two chunks.
      const at = Number(url.searchParams.get("at"));
      const text = `data: ${"x".repeat(Number(url.searchParams.get("pad") ?? 0))} echo ${auth} end\n\n`;
      const cut = text.indexOf(auth) + 7 + at;
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(text.slice(0, cut));
      void sleep(60).then(() => res.end(text.slice(cut)));
      return;
    }
    res.writeHead(404);
    res.end();
  };
  connection = await t.connectAccount("alice");
  agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/" }])).token);
  token = await t.accessTokenOf(connection);
});

afterAll(async () => t?.close());

const marked = (n: number) => (REDACTION_MARKER + "*".repeat(n)).slice(0, n);

describe("Proxy (unary): a body that echoes the credential", () => {
  it("an httpbin-style echo comes back with the token overwritten, the rest unchanged, the length kept", async () => {
    const res = await agent.fetch(connection, { path: "/anything", query: { q: "1" } });
    expect(res.status).toBe(200);
    // The upstream did get the token: this is what is echoed.
    expect(t.upstream.headerValues(t.upstream.requests.length - 1, "authorization")).toEqual([`Bearer ${token}`]);
    const text = res.text();
    expect(text).not.toContain(token);
    const echoed = JSON.parse(text) as { headers: { Authorization: string; Host: string }; url: string };
    expect(echoed.headers.Authorization).toBe(`Bearer ${marked(token.length)}`);
    expect(echoed.url).toBe("/anything?q=1");
    expect(res.headers["content-length"]).toBe(String(res.body.length));
  });

  it("an error page echoing it raw and percent-encoded: both overwritten", async () => {
    const res = await agent.fetch(connection, { path: "/error-page" });
    expect(res.status).toBe(500);
    expect(res.text()).not.toContain(token);
    expect(res.text()).not.toContain(encodeURIComponent(token));
    expect(res.text()).toContain(`authorization: Bearer ${REDACTION_MARKER}`);
  });
});

describe("ProxyStream: a streamed body that echoes the credential", () => {
  it.each([
    ["one byte in", 1, 0],
    ["in the middle", 20, 0],
    ["one byte from the end", -1, 0],
    ["in the middle, after 100 KiB", 20, 100 * 1024],
  ])("the token split over two upstream writes (%s) is overwritten across the chunk boundary", async (_what, at, pad) => {
    const split = at < 0 ? token.length + at : at;
    const res = await agent.stream(connection, { path: "/split-echo", query: { at: split, pad } });
    expect(res.status).toBe(200);
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c);
    const text = Buffer.concat(chunks).toString();
    expect(text).toBe(`data: ${"x".repeat(pad)} echo Bearer ${marked(token.length)} end\n\n`);
    expect(text).not.toContain(token);
    // The split was real: the part before the token reached the agent before the upstream's second write.
    expect(chunks.length).toBeGreaterThan(1);
  });

  it("an httpbin-style echo, streamed", async () => {
    const res = await agent.stream(connection, { path: "/anything" });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c);
    const text = Buffer.concat(chunks).toString();
    expect(text).not.toContain(token);
    expect((JSON.parse(text) as { headers: { Authorization: string } }).headers.Authorization).toBe(`Bearer ${marked(token.length)}`);
    expect(res.headers["content-length"]).toBe(String(Buffer.byteLength(text)));
  });
});
