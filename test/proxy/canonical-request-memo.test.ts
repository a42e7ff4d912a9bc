import { describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import type { HttpRequest } from "../../src/gen/capvault/v1/common.js";
import { canonicalizeRequest } from "../../src/proxy/canonical-request.js";
import { CanonicalRequestMemo } from "../../src/proxy/canonical-request-memo.js";

const request = (over: Partial<HttpRequest> = {}): HttpRequest => ({
  connection: "conn_1",
  method: "GET",
  path: "/repos/acme/widgets/issues",
  query: [{ name: "state", value: "open" }],
  headers: [{ name: "accept", value: "application/json" }],
  body: Buffer.alloc(0),
  ...over,
});

describe("CanonicalRequestMemo", () => {
  it("a repeated request gets the very same canonical request, equal to canonicalizing afresh", () => {
    const memo = new CanonicalRequestMemo();
    const first = memo.canonicalize(request());
    expect(memo.canonicalize(request())).toBe(first);
    expect(first).toEqual(canonicalizeRequest(request()));
    expect(Object.isFrozen(first)).toBe(true);
  });

  it("requests that differ in any field, however the fields are split, never share an entry", () => {
    const memo = new CanonicalRequestMemo();
    const variants: HttpRequest[] = [
      request(),
      request({ connection: "conn_2" }),
      request({ method: "HEAD" }),
      request({ path: "/repos/acme/widgets/pulls" }),
      request({ query: [{ name: "state", value: "closed" }] }),
      request({ query: [{ name: "state", value: "open" }, { name: "page", value: "2" }] }),
      request({ query: [{ name: "state=open&page", value: "2" }] }),
      request({ headers: [] }),
      request({ headers: [{ name: "accept", value: "text/plain" }] }),
      // fields whose concatenation would be the same without each field's length
      request({ connection: "conn_1G", method: "ET" }),
      request({ query: [{ name: "state", value: "open1:x" }] }),
      request({ query: [{ name: "state", value: "open" }, { name: "x", value: "" }] }),
      request({ query: [], headers: [{ name: "state", value: "open" }, { name: "accept", value: "application/json" }] }),
    ];
    const results = variants.map((v) => memo.canonicalize(v));
    expect(new Set(results).size).toBe(variants.length);
    variants.forEach((v, i) => expect(results[i]).toEqual(canonicalizeRequest(v)));
    // the same again: each one its own entry
    variants.forEach((v, i) => expect(memo.canonicalize(v)).toBe(results[i]));
  });

  it("a refused request is refused every time (nothing is kept for it)", () => {
    const memo = new CanonicalRequestMemo();
    for (let i = 0; i < 3; i++) {
      expect(() => memo.canonicalize(request({ path: "/a/%2e%2e/%2e%2e/etc" }))).toThrow(CapvaultError);
      expect(() => memo.canonicalize(request({ method: "TRACE" }))).toThrow(CapvaultError);
    }
  });

  it("a request with a body is canonicalized afresh each time", () => {
    const memo = new CanonicalRequestMemo();
    const withBody = request({ method: "POST", body: Buffer.from('{"title":"x"}'), headers: [{ name: "content-type", value: "application/json" }] });
    const a = memo.canonicalize(withBody);
    const b = memo.canonicalize(withBody);
    expect(a).not.toBe(b);
    expect(a).toEqual(b);
  });

  it("uses its limits, and holds at most `capacity` requests", () => {
    const strict = new CanonicalRequestMemo({ maxQueryParams: 1 });
    expect(() => strict.canonicalize(request({ query: [{ name: "a", value: "1" }, { name: "b", value: "2" }] }))).toThrow(CapvaultError);
    const small = new CanonicalRequestMemo({}, 2);
    const first = small.canonicalize(request({ path: "/1" }));
    small.canonicalize(request({ path: "/2" }));
    small.canonicalize(request({ path: "/3" })); // evicts /1
    expect(small.canonicalize(request({ path: "/1" }))).not.toBe(first);
    expect(small.canonicalize(request({ path: "/3" }))).toBe(small.canonicalize(request({ path: "/3" })));
  });
});
