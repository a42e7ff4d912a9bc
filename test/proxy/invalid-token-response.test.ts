import { describe, expect, it } from "vitest";
import { isInvalidTokenResponse } from "../../src/proxy/invalid-token-response.js";

const www = (value: string) => [{ name: "WWW-Authenticate", value }];

describe("isInvalidTokenResponse", () => {
  it("is true for a plain 401 and for error=invalid_token", () => {
    expect(isInvalidTokenResponse(401, [])).toBe(true);
    expect(isInvalidTokenResponse(401, www('Bearer realm="x"'))).toBe(true);
    expect(isInvalidTokenResponse(401, www('Bearer realm="x", error="invalid_token", error_description="expired"'))).toBe(true);
    expect(isInvalidTokenResponse(401, www("Bearer error=invalid_token"))).toBe(true);
    expect(isInvalidTokenResponse(401, www('Bearer error="INVALID_TOKEN"'))).toBe(true);
  });
  it("is false for other statuses and other 401 errors", () => {
    expect(isInvalidTokenResponse(403, www('Bearer error="invalid_token"'))).toBe(false);
    expect(isInvalidTokenResponse(200, [])).toBe(false);
    expect(isInvalidTokenResponse(401, www('Bearer error="insufficient_scope"'))).toBe(false);
    expect(isInvalidTokenResponse(401, www('Bearer error="invalid_request"'))).toBe(false);
  });
});
