import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "undici";
import { CapvaultError, type Reason } from "../../src/errors/capvault-error.js";
import { isForbiddenAddress } from "../../src/proxy/address-fence.js";
import { type ConnectAttempt, UpstreamDispatchers } from "../../src/proxy/fenced-dispatcher.js";
import { guardedDispatcher, loopbackOnly, type RecordingUpstream, startRecordingUpstream, tableLookup, TEST_CA } from "./recording-upstream.js";

let upstream: RecordingUpstream;
let second: RecordingUpstream; // on 127.0.0.2, the "internal" address a rebinding name switches to
const agents: Agent[] = [];

beforeAll(async () => {
  upstream = await startRecordingUpstream("127.0.0.1");
  second = await startRecordingUpstream("127.0.0.2");
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.destroy()));
  await upstream.close();
  await second.close();
});
afterEach(() => {
  upstream.requests.length = 0;
});

function track(agent: Agent): Agent {
  agents.push(agent);
  return agent;
}

async function get(agent: Agent, origin: string, path = "/") {
  const res = await agent.request({ origin, path, method: "GET" });
  await res.body.dump();
  return res.statusCode;
}

async function refusedWith(reason: Reason, p: Promise<unknown>): Promise<CapvaultError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CapvaultError);
  expect((err as CapvaultError).reason).toBe(reason);
  return err as CapvaultError;
}

describe("createFencedDispatcher", () => {
  it("connects to a name's checked address with SNI and the custom CA", async () => {
    const lookup = tableLookup({ "api.test": ["127.0.0.1"] });
    const attempts: ConnectAttempt[] = [];
    const agent = track(guardedDispatcher({ lookup, allowPrivateAddresses: true, ca: TEST_CA, onConnectAttempt: (a) => attempts.push(a) }));
    expect(await get(agent, `https://api.test:${upstream.port}`)).toBe(200);
    expect(lookup.calls).toEqual(["api.test"]);
    expect(attempts).toEqual([{ hostname: "api.test", port: String(upstream.port), address: "127.0.0.1", allowed: true }]);
    expect(upstream.headerValues(0, "host")).toEqual([`api.test:${upstream.port}`]);
  });

  it.each([
    ["loopback", ["127.0.0.1"]],
    ["loopback v6", ["::1"]],
    ["v4-mapped loopback", ["::ffff:127.0.0.1"]],
    ["private", ["10.1.2.3"]],
    ["cloud metadata", ["169.254.169.254"]],
    ["unspecified", ["0.0.0.0"]],
    ["NAT64 of loopback", ["64:ff9b::7f00:1"]],
  ])("refuses a name resolving to %s before any socket opens", async (_label, addresses) => {
    const before = upstream.connections;
    const lookup = tableLookup({ "private.test": addresses });
    const attempts: ConnectAttempt[] = [];
    const agent = track(guardedDispatcher({ lookup, ca: TEST_CA, onConnectAttempt: (a) => attempts.push(a) }));
    const err = await refusedWith("UPSTREAM_ADDRESS_FORBIDDEN", get(agent, `https://private.test:${upstream.port}`));
    expect(err.message).not.toContain(addresses[0]);
    expect(upstream.connections).toBe(before);
    expect(attempts.map((a) => a.allowed)).toEqual([false]);
  });

  it("refuses when ANY resolved address is forbidden, even if the first is fine", async () => {
    const before = upstream.connections;
    // 127.0.0.1 stands in for a public address here; 127.0.0.2 is the forbidden one.
    const isForbidden = (a: string) => a !== "127.0.0.1" && isForbiddenAddress(a);
    const lookup = tableLookup({ "api.test": ["127.0.0.1", "127.0.0.2"] });
    const agent = track(guardedDispatcher({ lookup, isForbidden, ca: TEST_CA }));
    await refusedWith("UPSTREAM_ADDRESS_FORBIDDEN", get(agent, `https://api.test:${upstream.port}`));
    expect(upstream.connections).toBe(before);
  });

  it.each(["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"])("checks the IP literal %s without the resolver", async (host) => {
    const before = upstream.connections;
    const lookup = tableLookup({});
    const agent = track(guardedDispatcher({ lookup, ca: TEST_CA }));
    await refusedWith("UPSTREAM_ADDRESS_FORBIDDEN", get(agent, `https://${host}:${upstream.port}`));
    expect(lookup.calls).toEqual([]);
    expect(upstream.connections).toBe(before);
  });

  it("defeats DNS rebinding: every new connection re-resolves and re-checks", async () => {
    const isForbidden = (a: string) => a !== "127.0.0.1" && isForbiddenAddress(a);
    let answers = 0;
    const lookup = tableLookup({ "rebind.test": () => (answers++ === 0 ? ["127.0.0.1"] : ["127.0.0.2"]) });
    const agent = track(guardedDispatcher({ lookup, isForbidden, ca: TEST_CA }));
    upstream.handler = (_req, res) => {
      res.writeHead(200, { connection: "close" });
      res.end("first");
    };
    try {
      expect(await get(agent, `https://rebind.test:${upstream.port}`)).toBe(200);
      const secondBefore = second.connections;
      await refusedWith("UPSTREAM_ADDRESS_FORBIDDEN", get(agent, `https://rebind.test:${upstream.port}`));
      expect(lookup.calls).toEqual(["rebind.test", "rebind.test"]);
      expect(second.connections).toBe(secondBefore);
    } finally {
      upstream.handler = (_req, res) => res.end("ok");
    }
  });

  it("reuses a checked keep-alive connection without resolving again", async () => {
    const lookup = tableLookup({ "api.test": ["127.0.0.1"] });
    const agent = track(guardedDispatcher({ lookup, allowPrivateAddresses: true, ca: TEST_CA, connectionsPerOrigin: 1 }));
    const before = upstream.connections;
    for (let i = 0; i < 3; i++) expect(await get(agent, `https://api.test:${upstream.port}`)).toBe(200);
    expect(upstream.connections - before).toBe(1);
    expect(lookup.calls).toEqual(["api.test"]);
  });

  it("speaks only https", async () => {
    const agent = track(guardedDispatcher({ lookup: tableLookup({ "api.test": ["127.0.0.1"] }), allowPrivateAddresses: true }));
    const before = upstream.connections;
    await refusedWith("UPSTREAM_HOST_FORBIDDEN", get(agent, `http://api.test:${upstream.port}`));
    expect(upstream.connections).toBe(before);
  });

  it("maps a name that does not resolve to UPSTREAM_UNREACHABLE", async () => {
    const agent = track(guardedDispatcher({ lookup: tableLookup({}), ca: TEST_CA }));
    await refusedWith("UPSTREAM_UNREACHABLE", get(agent, "https://nowhere.test"));
  });

  it("bounds a hanging resolver by the connect timeout", async () => {
    const agent = track(guardedDispatcher({ lookup: () => new Promise(() => {}), connectTimeoutMs: 50, ca: TEST_CA }));
    await refusedWith("UPSTREAM_TIMEOUT", get(agent, "https://slow.test"));
  });
});

describe("UpstreamDispatchers", () => {
  it("shares one dispatcher per fence setting", async () => {
    const pool = new UpstreamDispatchers({ lookup: tableLookup({}), onConnectAttempt: loopbackOnly });
    const base = { allowedHosts: ["api.test"], credentialHeader: { name: "authorization" } };
    const a = pool.for({ ...base, baseUrl: "https://api.test" });
    const b = pool.for({ ...base, baseUrl: "https://api.test/v2" });
    const c = pool.for({ ...base, baseUrl: "https://api.test", ca: TEST_CA, allowPrivateAddresses: true });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(pool.for({ ...base, baseUrl: "https://api.test", ca: Buffer.from(TEST_CA), allowPrivateAddresses: true })).toBe(c);
    await pool.close();
  });
});
