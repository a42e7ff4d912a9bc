import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ProviderConfig } from "../../src/oauth/provider-catalog.js";
import { providerUpstreamTarget } from "../../src/proxy/provider-upstream-target.js";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { assertUpstreamTarget, redactUpstreamTarget, type UpstreamTarget } from "../../src/proxy/upstream-target.js";

const good: UpstreamTarget = {
  baseUrl: "https://api.github.com",
  allowedHosts: ["api.github.com"],
  credentialHeader: { name: "authorization", scheme: "Bearer" },
  defaultHeaders: { "x-github-api-version": "2022-11-28", accept: "application/vnd.github+json" },
};

function invalid(t: Partial<UpstreamTarget>): void {
  expect(() => assertUpstreamTarget({ ...good, ...t })).toThrow(CapvaultError);
  try {
    assertUpstreamTarget({ ...good, ...t });
  } catch (err) {
    expect((err as CapvaultError).reason).toBe("CONFIG_INVALID");
  }
}

describe("assertUpstreamTarget", () => {
  it("accepts a plain provider target", () => {
    expect(() => assertUpstreamTarget(good)).not.toThrow();
    expect(() => assertUpstreamTarget({ ...good, credentialHeader: { name: "X-Api-Key" } })).not.toThrow();
  });
  it.each<[string, Partial<UpstreamTarget>]>([
    ["http", { baseUrl: "http://api.github.com" }],
    ["userinfo", { baseUrl: "https://u:p@api.github.com" }],
    ["query", { baseUrl: "https://api.github.com/?x=1" }],
    ["fragment", { baseUrl: "https://api.github.com/#x" }],
    ["host not allowed", { baseUrl: "https://evil.test" }],
    ["empty allowlist", { allowedHosts: [] }],
    ["wildcard", { allowedHosts: ["*.github.com"] }],
    ["host with port", { allowedHosts: ["api.github.com:443"] }],
    ["credential header is hop-by-hop", { credentialHeader: { name: "connection" } }],
    ["credential header is cookie", { credentialHeader: { name: "cookie" } }],
    ["bad scheme", { credentialHeader: { name: "authorization", scheme: "Bearer x" } }],
    ["default header duplicates the credential", { defaultHeaders: { Authorization: "Bearer static" } }],
    ["default hop-by-hop header", { defaultHeaders: { "transfer-encoding": "chunked" } }],
    ["default header with CRLF", { defaultHeaders: { "x-a": "1\r\nx-b: 2" } }],
    ["default content-type (the body is authorized under the agent's own)", { defaultHeaders: { "Content-Type": "application/json" } }],
    ["default content-encoding", { defaultHeaders: { "content-encoding": "gzip" } }],
    ["credential header is content-type", { credentialHeader: { name: "content-type" } }],
    ["set-cookie in extra response headers", { extraResponseHeaders: ["Set-Cookie"] }],
  ])("refuses %s", (_name, t) => {
    invalid(t);
  });
});

describe("redactUpstreamTarget", () => {
  it("hides default header values and the CA", () => {
    const r = JSON.stringify(redactUpstreamTarget({ ...good, defaultHeaders: { "x-static": "s3cr3t" }, ca: "-----BEGIN CERTIFICATE-----" }));
    expect(r).not.toContain("s3cr3t");
    expect(r).not.toContain("BEGIN");
    expect(r).toContain("x-static");
  });
});

describe("providerUpstreamTarget", () => {
  const provider = (api: Record<string, unknown>) =>
    ({ id: "acme-api", api: { baseUrl: "https://api.github.com", allowedHosts: ["api.github.com"], credentialHeader: { name: "Authorization", scheme: "Bearer" }, ...api } }) as unknown as ProviderConfig;

  it("names the provider and the field, never a file path (its message may reach an agent)", () => {
    const dir = join(tmpdir(), "capvault-no-such-dir");
    const err = (() => {
      try {
        providerUpstreamTarget(provider({ caFile: "secret-place/ca.pem" }), dir);
      } catch (e) {
        return e as CapvaultError;
      }
    })();
    expect(err).toMatchObject({ reason: "CONFIG_INVALID", message: "provider acme-api: api.caFile cannot be read" });
    expect(err!.message).not.toContain(dir);
    expect(JSON.stringify(err!.metadata)).not.toContain("secret-place");
    // The operator still learns which file: the cause stays in the process (and the start-up log).
    expect(String((err!.cause as Error).message)).toContain(join(dir, "secret-place", "ca.pem"));
  });

  it("reports the api field that assertUpstreamTarget refused, with the provider", () => {
    expect(() => providerUpstreamTarget(provider({ baseUrl: "http://api.github.com" }), tmpdir())).toThrow("provider acme-api: api.baseUrl must be https");
    expect(() => providerUpstreamTarget(provider({ defaultHeaders: { cookie: "x" } }), tmpdir())).toThrow("provider acme-api: api.defaultHeaders");
  });
});
