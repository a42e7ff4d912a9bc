import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CATALOG_DIR, loadProviderCatalog } from "../../src/oauth/provider-catalog.js";
import { clientSecretContext, ProviderClients, RedactedSecret } from "../../src/oauth/provider-client.js";
import { openMemoryStore } from "../../src/store/memory/memory-store.js";
import { testVault } from "./support/oauth-harness.js";

describe("provider catalog", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "capvault-catalog-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const github = async () => JSON.parse(await readFile(join(DEFAULT_CATALOG_DIR, "github.json"), "utf8")) as Record<string, unknown>;
  const write = async (name: string, doc: unknown) => {
    const d = await mkdtemp(join(dir, "c-"));
    await writeFile(join(d, name), JSON.stringify(doc));
    return d;
  };

  it("loads the shipped providers with their API sections for the Proxy", async () => {
    const catalog = await loadProviderCatalog();
    expect(catalog.list().map((p) => p.id).sort()).toEqual(["generic-oidc", "github", "google-calendar", "slack"]);
    expect(catalog.get("github").api).toEqual({
      baseUrl: "https://api.github.com",
      allowedHosts: ["api.github.com"],
      credentialHeader: { name: "Authorization", scheme: "Bearer" },
      // GitHub refuses requests without a User-Agent; the API version pins the response shapes agents rely on.
      defaultHeaders: { "user-agent": "capvault", "x-github-api-version": "2022-11-28", accept: "application/vnd.github+json" },
    });
    expect(catalog.get("slack").api.allowedHosts).toEqual(["slack.com"]);
    expect(catalog.get("google-calendar").api.allowedHosts).toEqual(["www.googleapis.com"]);
    expect(catalog.get("google-calendar").authorizationParams).toMatchObject({ access_type: "offline", prompt: "consent" });
    expect(catalog.list().every((p) => p.pkce === "S256")).toBe(true);
    expect(() => catalog.get("nope")).toThrow(expect.objectContaining({ reason: "PROVIDER_UNKNOWN" }));
  });

  it("requires https, except loopback http when allowInsecureLoopback is on", async () => {
    const over = (tokenEndpoint: string) => ({ github: { tokenEndpoint } });
    await expect(loadProviderCatalog({ overrides: over("http://example.com/token") })).rejects.toMatchObject({ reason: "CONFIG_INVALID" });
    await expect(loadProviderCatalog({ overrides: over("http://127.0.0.1:9/token") })).rejects.toMatchObject({ reason: "CONFIG_INVALID" });
    await expect(loadProviderCatalog({ overrides: over("http://example.com/token"), allowInsecureLoopback: true })).rejects.toMatchObject({ reason: "CONFIG_INVALID" });
    await expect(loadProviderCatalog({ overrides: over("https://u:p@example.com/token") })).rejects.toMatchObject({ reason: "CONFIG_INVALID" });
    const ok = await loadProviderCatalog({ overrides: over("http://127.0.0.1:9/token"), allowInsecureLoopback: true });
    expect(ok.get("github").tokenEndpoint).toBe("http://127.0.0.1:9/token");
    await expect(loadProviderCatalog({ overrides: { nope: {} } })).rejects.toMatchObject({ reason: "CONFIG_INVALID" });
  });

  it("refuses invalid files: PKCE plain, unknown fields, a wrong file name, a wildcard host", async () => {
    const g = await github();
    for (const [name, doc] of [
      ["github.json", { ...g, pkce: "plain" }],
      ["github.json", { ...g, clientSecret: "oops" }],
      ["gitlab.json", g],
      ["github.json", { ...g, api: { ...(g.api as object), allowedHosts: ["*.github.com"] } }],
      ["github.json", { ...g, tokenEndpoint: undefined }],
    ] as const) {
      await expect(loadProviderCatalog({ dir: await write(name, doc) })).rejects.toMatchObject({ reason: "CONFIG_INVALID" });
    }
    await expect(loadProviderCatalog({ dir: join(dir, "missing") })).rejects.toMatchObject({ reason: "CONFIG_INVALID" });
  });

  it("opens a client secret sealed with the vault, and never prints one", async () => {
    const store = openMemoryStore();
    const vault = await testVault(store);
    const catalog = await loadProviderCatalog();
    const sealed = await vault.seal("s3cret-value", clientSecretContext("github"));
    const clients = new ProviderClients({ catalog, vault, clients: { github: { clientId: "id", clientSecret: { sealed } } } });
    const pc = await clients.get("github");
    expect(pc.basicAuthorization()).toBe(`Basic ${Buffer.from("id:s3cret-value").toString("base64")}`);
    expect(inspect(pc, { depth: 10 })).not.toContain("s3cret-value");
    const r = new RedactedSecret("abc");
    expect(`${r} ${JSON.stringify({ r })} ${inspect(r)}`).not.toContain("abc");
    // No client id configured: the provider is unavailable, with a message naming the env variable, not a secret.
    await expect(new ProviderClients({ catalog, vault, env: {} }).get("slack")).rejects.toMatchObject({ reason: "PROVIDER_UNAVAILABLE" });
    const fromEnv = new ProviderClients({ catalog, vault, env: { CAPVAULT_SLACK_CLIENT_ID: "1.2", CAPVAULT_SLACK_CLIENT_SECRET: "x" } });
    expect((await fromEnv.get("slack")).client.client_id).toBe("1.2");
  });
});
