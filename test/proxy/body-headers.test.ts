import { describe, expect, it } from "vitest";
import { CapvaultError, type Reason } from "../../src/errors/capvault-error.js";
import type { Header, HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { canonicalizeRequest } from "../../src/proxy/canonical-request.js";
import { buildUpstreamRequestHeaders } from "../../src/proxy/upstream-request-headers.js";
import type { UpstreamTarget } from "../../src/proxy/upstream-target.js";

/**
 * The headers a body is read under (body-headers.ts) are the headers the upstream gets: a Connection header cannot
 * strip them, and a JSON body whose fields are authorized cannot be content-encoded.
 */

const POLYGLOT = '{"channel":"C0123","x":"&channel=C999&"}';
const target: UpstreamTarget = {
  baseUrl: "https://api.test",
  allowedHosts: ["api.test"],
  credentialHeader: { name: "Authorization", scheme: "Bearer" },
};

function post(headers: Header[], body = POLYGLOT): HttpRequest {
  return { connection: "conn_1", method: "POST", path: "/chat.postMessage", query: [], headers, body: Buffer.from(body) };
}

function refusal(r: HttpRequest): CapvaultError {
  try {
    canonicalizeRequest(r);
  } catch (err) {
    expect(err).toBeInstanceOf(CapvaultError);
    return err as CapvaultError;
  }
  throw new Error("expected a refusal");
}

const reasonOf = (r: HttpRequest): Reason => refusal(r).reason;

describe("a Connection header never removes a header the body is read under", () => {
  it.each([
    ["Connection", "content-type"],
    ["Connection", "keep-alive, Content-Type"],
    ["connection", " CONTENT-TYPE "],
    ["Proxy-Connection", "content-type"],
    ["Connection", "content-encoding"],
    ["Connection", "content-length"],
    ["Connection", "transfer-encoding"],
  ])("refuses %s: %j with HEADER_INVALID, naming the option", (name, value) => {
    const err = refusal(post([{ name: "Content-Type", value: "application/json" }, { name, value }]));
    expect(err.reason).toBe("HEADER_INVALID");
    expect(err.metadata.option).toBe(value.split(",").at(-1)!.trim().toLowerCase());
    expect(err.message).toContain("end-to-end");
  });

  it("refuses it even without a body or a Content-Type (no correct client lists an end-to-end header)", () => {
    expect(reasonOf({ ...post([{ name: "Connection", value: "content-type" }], ""), method: "GET" })).toBe("HEADER_INVALID");
  });

  it("still drops the hop-by-hop names a Connection header may list", () => {
    const c = canonicalizeRequest(
      post([
        { name: "Content-Type", value: "application/json" },
        { name: "Connection", value: "close, x-trace" },
        { name: "X-Trace", value: "1" },
      ]),
    );
    expect(c.headers).toEqual([{ name: "content-type", value: "application/json" }]);
  });

  it("the content type the fields were read under is the one the upstream request carries, exactly", () => {
    const c = canonicalizeRequest(post([{ name: "Content-Type", value: "  application/json; charset=utf-8 " }]));
    expect(c.contentType).toBe("application/json; charset=utf-8");
    expect(c.bodyFields.get("channel")).toBe("C0123");
    const sent = buildUpstreamRequestHeaders(target, c.headers, "t");
    const contentTypes = sent.flatMap((v, i) => (i % 2 === 1 && sent[i - 1] === "content-type" ? [v] : []));
    expect(contentTypes).toEqual([c.contentType]);
  });
});

describe("a JSON body whose fields are authorized is never content-encoded", () => {
  it.each(["gzip", "br", "deflate", "identity", "x-custom"])("refuses Content-Encoding: %s with BODY_INVALID", (coding) => {
    const err = refusal(post([{ name: "Content-Type", value: "application/json" }, { name: "Content-Encoding", value: coding }]));
    expect(err.reason).toBe("BODY_INVALID");
    expect(err.metadata.header).toBe("content-encoding");
  });

  it("allows a Content-Encoding on a body that yields no fields (another type, or no body)", () => {
    const gz = post([{ name: "Content-Type", value: "application/octet-stream" }, { name: "Content-Encoding", value: "gzip" }], "\x1f\x8b");
    expect(canonicalizeRequest(gz).bodyFormat).toBe("other");
    const empty = post([{ name: "Content-Type", value: "application/json" }, { name: "Content-Encoding", value: "gzip" }], "");
    expect(canonicalizeRequest(empty).bodyFormat).toBe("empty");
  });
});
