import { describe, expect, it } from "vitest";
import { filterResponseHeaders, responseHeaderEntries } from "../../src/proxy/response-header-allowlist.js";

describe("filterResponseHeaders", () => {
  it("keeps only allowlisted headers and never Set-Cookie", () => {
    const out = filterResponseHeaders([
      { name: "Content-Type", value: "application/json" },
      { name: "Set-Cookie", value: "session=1" },
      { name: "set-cookie", value: "b=2" },
      { name: "ETag", value: '"abc"' },
      { name: "X-RateLimit-Remaining", value: "10" },
      { name: "X-GitHub-Request-Id", value: "r1" },
      { name: "Server", value: "nginx" },
      { name: "X-Amz-Internal", value: "x" },
      { name: "Location", value: "https://other.test/x" },
    ]);
    expect(out).toEqual([
      { name: "content-type", value: "application/json" },
      { name: "etag", value: '"abc"' },
      { name: "x-ratelimit-remaining", value: "10" },
      { name: "x-github-request-id", value: "r1" },
      { name: "location", value: "https://other.test/x" },
    ]);
  });
  it("strips hop-by-hop headers and the names Connection lists, even when allowlisted", () => {
    const out = filterResponseHeaders([
      { name: "Connection", value: "etag, x-custom" },
      { name: "ETag", value: '"abc"' },
      { name: "Keep-Alive", value: "timeout=5" },
      { name: "Transfer-Encoding", value: "chunked" },
      { name: "Proxy-Authenticate", value: "Basic" },
      { name: "Upgrade", value: "h2c" },
      { name: "Trailer", value: "x" },
      { name: "Content-Type", value: "text/plain" },
    ]);
    expect(out).toEqual([{ name: "content-type", value: "text/plain" }]);
  });
  it("adds a provider's extra names but never Set-Cookie", () => {
    const out = filterResponseHeaders(
      [
        { name: "X-Slack-Req-Id", value: "1" },
        { name: "Set-Cookie", value: "a=1" },
      ],
      ["x-slack-req-id", "set-cookie"],
    );
    expect(out).toEqual([{ name: "x-slack-req-id", value: "1" }]);
  });
  it("flattens undici's header object one entry per value", () => {
    expect(responseHeaderEntries({ a: "1", b: ["2", "3"], c: undefined })).toEqual([
      { name: "a", value: "1" },
      { name: "b", value: "2" },
      { name: "b", value: "3" },
    ]);
  });
});
