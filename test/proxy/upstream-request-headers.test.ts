import { describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { buildUpstreamRequestHeaders } from "../../src/proxy/upstream-request-headers.js";
import type { UpstreamTarget } from "../../src/proxy/upstream-target.js";

const bearer: UpstreamTarget = {
  baseUrl: "https://api.test",
  allowedHosts: ["api.test"],
  credentialHeader: { name: "Authorization", scheme: "Bearer" },
  defaultHeaders: { Accept: "application/vnd.github+json", "User-Agent": "capvault" },
};

const pairs = (flat: string[]) => Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]);

describe("buildUpstreamRequestHeaders", () => {
  it("sets exactly one credential header and never the agent's", () => {
    const out = pairs(
      buildUpstreamRequestHeaders(
        bearer,
        [
          { name: "authorization", value: "Bearer agent" },
          { name: "proxy-authorization", value: "x" },
          { name: "x-a", value: "1" },
        ],
        "tok",
      ),
    );
    expect(out.filter(([n]) => n.toLowerCase() === "authorization")).toEqual([["authorization", "Bearer tok"]]);
    expect(out.some(([n]) => n === "proxy-authorization")).toBe(false);
    expect(out).toContainEqual(["x-a", "1"]);
  });
  it("drops agent headers named like a non-Authorization credential header, and Authorization too", () => {
    const apiKey: UpstreamTarget = { ...bearer, credentialHeader: { name: "X-Api-Key" }, defaultHeaders: undefined };
    const out = pairs(
      buildUpstreamRequestHeaders(
        apiKey,
        [
          { name: "x-api-key", value: "agent-key" },
          { name: "authorization", value: "Bearer agent" },
        ],
        "k",
      ),
    );
    expect(out).toEqual([["accept-encoding", "identity"], ["x-api-key", "k"]]);
  });
  it("adds default headers only where the agent sent none of that name", () => {
    const out = pairs(buildUpstreamRequestHeaders(bearer, [{ name: "accept", value: "text/plain" }], "t"));
    expect(out).toEqual([
      ["accept", "text/plain"],
      ["user-agent", "capvault"],
      ["accept-encoding", "identity"],
      ["authorization", "Bearer t"],
    ]);
  });
  it("never lets a default header add a second credential or a hop-by-hop header", () => {
    const sloppy: UpstreamTarget = { ...bearer, defaultHeaders: { authorization: "Bearer static", Cookie: "a=1", Connection: "x", "X-Ok": "1" } };
    expect(pairs(buildUpstreamRequestHeaders(sloppy, [], "t"))).toEqual([
      ["x-ok", "1"],
      ["accept-encoding", "identity"],
      ["authorization", "Bearer t"],
    ]);
  });
  it("never lets a default header say how the body is read: the body was authorized under the agent's headers alone", () => {
    const sloppy: UpstreamTarget = { ...bearer, defaultHeaders: { "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "br" } };
    expect(pairs(buildUpstreamRequestHeaders(sloppy, [], "t"))).toEqual([["accept-encoding", "identity"], ["authorization", "Bearer t"]]);
  });
  it("refuses a credential that is not a header value, without echoing it", () => {
    for (const bad of ["a\r\nx-injected: 1", "", " padded"]) {
      try {
        buildUpstreamRequestHeaders(bearer, [], bad);
        throw new Error("expected a refusal");
      } catch (err) {
        expect(CapvaultError.is(err, "INTERNAL")).toBe(true);
        expect(JSON.stringify({ m: (err as Error).message, c: String((err as Error).cause) })).not.toContain("injected");
      }
    }
  });
});

describe("buildUpstreamRequestHeaders and the target it is given", () => {
  it("works a frozen target's defaults out once, and an unfrozen target's every time (it may have changed)", () => {
    const frozen: UpstreamTarget = Object.freeze({
      ...bearer,
      credentialHeader: Object.freeze({ ...bearer.credentialHeader }),
      defaultHeaders: Object.freeze({ "X-A": "1" }),
    });
    for (let i = 0; i < 2; i++) expect(pairs(buildUpstreamRequestHeaders(frozen, [], "t"))).toContainEqual(["x-a", "1"]);
    const open: { -readonly [K in keyof UpstreamTarget]: UpstreamTarget[K] } = { ...bearer, defaultHeaders: { "X-A": "1" } };
    expect(pairs(buildUpstreamRequestHeaders(open, [], "t"))).toContainEqual(["x-a", "1"]);
    open.defaultHeaders = { "X-B": "2" };
    const after = pairs(buildUpstreamRequestHeaders(open, [], "t"));
    expect(after).toContainEqual(["x-b", "2"]);
    expect(after.some(([n]) => n === "x-a")).toBe(false);
  });
});
