import { describe, expect, it } from "vitest";
import { CapvaultError, type Reason } from "../../src/errors/capvault-error.js";
import type { HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { canonicalizeRequest } from "../../src/proxy/canonical-request.js";

function req(over: Partial<HttpRequest> = {}): HttpRequest {
  return { connection: "conn_1", method: "GET", path: "/user", query: [], headers: [], body: Buffer.alloc(0), ...over };
}

function refusedWith(reason: Reason, r: HttpRequest, limits = {}): CapvaultError {
  try {
    canonicalizeRequest(r, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(CapvaultError);
    expect((err as CapvaultError).reason).toBe(reason);
    return err as CapvaultError;
  }
  throw new Error("expected a refusal");
}

const json = (body: string, contentType = "application/json") =>
  req({ method: "POST", headers: [{ name: "Content-Type", value: contentType }], body: Buffer.from(body) });

describe("canonicalizeRequest: method", () => {
  it("upper-cases a token method", () => {
    expect(canonicalizeRequest(req({ method: "get" })).method).toBe("GET");
    expect(canonicalizeRequest(req({ method: "Patch" })).method).toBe("PATCH");
  });
  it.each(["", "GE T", "GET\r\n", "G(ET", "é", "X".repeat(40)])("refuses %j", (m) => {
    refusedWith("METHOD_INVALID", req({ method: m }));
  });
  it.each(["TRACE", "trace", "TRACK", "CONNECT"])("refuses %s (echoes the credential or tunnels)", (m) => {
    refusedWith("METHOD_INVALID", req({ method: m }));
  });
});

describe("canonicalizeRequest: query", () => {
  it("encodes names and values deterministically, in order, repeats kept", () => {
    const c = canonicalizeRequest(
      req({ query: [{ name: "q", value: "a b&c=d" }, { name: "q", value: "é/?#" }, { name: "x!", value: "(*)'" }] }),
    );
    expect(c.queryString).toBe("q=a%20b%26c%3Dd&q=%C3%A9%2F%3F%23&x%21=%28%2A%29%27");
    expect(c.query).toEqual([{ name: "q", value: "a b&c=d" }, { name: "q", value: "é/?#" }, { name: "x!", value: "(*)'" }]);
  });
  it.each([
    [{ name: "a", value: "x\r\ny" }],
    [{ name: "a\n", value: "x" }],
    [{ name: "a", value: "x\u0000" }],
    [{ name: "", value: "x" }],
    [{ name: "a", value: "\ud800" }],
  ])("refuses %j", (p) => {
    refusedWith("QUERY_INVALID", req({ query: [p] }));
  });
  it("caps the number of parameters", () => {
    refusedWith("QUERY_INVALID", req({ query: Array.from({ length: 3 }, () => ({ name: "a", value: "b" })) }), { maxQueryParams: 2 });
  });
});

describe("canonicalizeRequest: headers", () => {
  it("lower-cases names, trims values, keeps order and repeats", () => {
    const c = canonicalizeRequest(req({ headers: [{ name: "Accept", value: "  application/json\t" }, { name: "X-A", value: "1" }, { name: "x-a", value: "2" }] }));
    expect(c.headers).toEqual([
      { name: "accept", value: "application/json" },
      { name: "x-a", value: "1" },
      { name: "x-a", value: "2" },
    ]);
  });
  it.each([
    [{ name: "X-A", value: "a\r\nInjected: 1" }],
    [{ name: "X-A", value: "a\nb" }],
    [{ name: "X-A", value: "a\rb" }],
    [{ name: "X-A", value: "a\u0000b" }],
    [{ name: "X-A", value: "caf\u00e9" }],
    [{ name: "X A", value: "1" }],
    [{ name: "X-A:", value: "1" }],
    [{ name: "", value: "1" }],
    [{ name: "X-A\r\nInjected", value: "1" }],
  ])("refuses %j with HEADER_INVALID", (h) => {
    const err = refusedWith("HEADER_INVALID", req({ headers: [h] }));
    expect(err.message).not.toContain("Injected");
  });
  it("refuses two Content-Type headers", () => {
    refusedWith("HEADER_INVALID", req({ headers: [{ name: "content-type", value: "a/b" }, { name: "Content-Type", value: "c/d" }] }));
  });
  it("drops credentials, ambient authority, framing, overrides and hop-by-hop headers before authorization", () => {
    const c = canonicalizeRequest(
      req({
        headers: [
          { name: "Authorization", value: "Bearer agent" },
          { name: "authorization", value: "Basic x" },
          { name: "Proxy-Authorization", value: "Basic y" },
          { name: "Cookie", value: "s=1" },
          { name: "Host", value: "evil.test" },
          { name: "Content-Length", value: "5" },
          { name: "X-HTTP-Method-Override", value: "DELETE" },
          { name: "X-Forwarded-Host", value: "evil.test" },
          { name: "Connection", value: "close, X-Secret" },
          { name: "X-Secret", value: "1" },
          { name: "Keep-Alive", value: "timeout=5" },
          { name: "TE", value: "trailers" },
          { name: "Transfer-Encoding", value: "chunked" },
          { name: "Upgrade", value: "h2c" },
          { name: "Trailer", value: "x" },
          { name: "Accept", value: "application/json" },
        ],
      }),
    );
    expect(c.headers).toEqual([{ name: "accept", value: "application/json" }]);
  });
});

describe("canonicalizeRequest: body", () => {
  it("caps the body", () => {
    refusedWith("BODY_TOO_LARGE", req({ body: Buffer.alloc(11) }), { maxBodyBytes: 10 });
  });
  it("exposes top-level scalar fields of a JSON object", () => {
    const c = canonicalizeRequest(
      json('{"title":"hi","n":42,"neg":-7,"f":1.5,"e":1e3,"dot":1.0,"big":12345678901234567890,"b":true,"no":false,"z":null,"o":{"x":1},"a":[1],"esc":"\\u0041"}'),
    );
    expect(c.bodyFormat).toBe("json");
    expect(Object.fromEntries(c.bodyFields)).toEqual({
      title: "hi",
      n: 42,
      neg: -7,
      f: "1.5",
      e: "1e3",
      dot: "1.0",
      big: "12345678901234567890",
      b: true,
      no: false,
      esc: "A",
    });
  });
  it("accepts +json types and a utf-8 charset", () => {
    expect(canonicalizeRequest(json('{"a":"b"}', "application/vnd.github+json; charset=UTF-8")).bodyFields.get("a")).toBe("b");
  });
  it("reads no fields from a non-object JSON body or a non-JSON body", () => {
    expect(canonicalizeRequest(json("[1,2]")).bodyFields.size).toBe(0);
    expect(canonicalizeRequest(json('"x"')).bodyFormat).toBe("json");
    const other = canonicalizeRequest(json('{"a":1}', "text/plain"));
    expect(other.bodyFormat).toBe("other");
    expect(other.bodyFields.size).toBe(0);
    expect(canonicalizeRequest(req()).bodyFormat).toBe("empty");
  });
  it("keys like __proto__ are plain data", () => {
    const c = canonicalizeRequest(json('{"__proto__":"x","constructor":1}'));
    expect(c.bodyFields.get("__proto__")).toBe("x");
    expect(c.bodyFields.get("constructor")).toBe(1);
  });
  it.each([
    ["{", "invalid JSON"],
    ['{"a":1,}', "trailing comma"],
    ["{'a':1}", "single quotes"],
    ['\ufeff{"a":1}', "byte-order mark"],
    ['{"owner":"acme","owner":"evil"}', "duplicated key"],
    ['{"owner":"acme","own\\u0065r":"evil"}', "duplicated key after unescaping"],
    ['{"a":"\\ud800"}', "lone surrogate"],
  ])("refuses %j (%s) with BODY_INVALID", (body) => {
    refusedWith("BODY_INVALID", json(body));
  });
  it("refuses bytes that are not UTF-8 and non-UTF-8 charsets", () => {
    refusedWith("BODY_INVALID", req({ method: "POST", headers: [{ name: "content-type", value: "application/json" }], body: Buffer.from([0x7b, 0xff, 0x7d]) }));
    refusedWith("BODY_INVALID", json('{"a":1}', "application/json; charset=utf-16"));
  });
  it("refuses too many top-level fields instead of dropping some", () => {
    refusedWith("BODY_INVALID", json('{"a":1,"b":2,"c":3}'), { maxBodyFields: 2 });
  });
  it("allows duplicated keys below the top level (they are not exposed)", () => {
    expect(canonicalizeRequest(json('{"o":{"x":1,"x":2},"s":"}{\\"","t":1}')).bodyFields.get("t")).toBe(1);
  });
});

describe("canonicalizeRequest: result", () => {
  it("is frozen and carries exactly the canonical values", () => {
    const c = canonicalizeRequest(req({ method: "delete", path: "/a//b/../c", query: [{ name: "x", value: "1" }] }));
    expect(Object.isFrozen(c)).toBe(true);
    expect(c).toMatchObject({ connection: "conn_1", method: "DELETE", path: "/a/c", pathSegments: ["a", "c"], queryString: "x=1" });
  });
});
