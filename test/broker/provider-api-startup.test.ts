import { writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { readErrorDetails } from "../../src/errors/grpc-status.js";
import { ProxyServiceClient, type ProxyResponse } from "../../src/gen/capvault/v1/proxy.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";
import { runCli } from "../support/broker-process.js";
import { testProviderFile } from "../support/test-provider.js";
import { TEST_CA } from "../proxy/recording-upstream.js";

/** Every provider's `api` section is checked when the broker starts, not on an agent's first call. */
describe("provider api sections", () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it("a plain-http API base URL stops an in-process broker at start-up with CONFIG_INVALID naming provider and field", async () => {
    const err = await startTestBroker({
      memory: true,
      // The catalog allows http on loopback for OAuth endpoints in tests; the Proxy's API base URL never.
      providers: { "gh-http": (c) => ({ baseUrl: `http://localhost:${c.upstreamPort}` }) },
    }).catch((e) => e);
    expect(err).toMatchObject({ reason: "CONFIG_INVALID" });
    expect(err.message).toContain("provider gh-http: api.baseUrl must be https");
  });

  it("`capvault dev` with an invalid api section exits 2 at start-up, naming the provider and the field", async () => {
    const dir = await mkdtemp(join(tmpdir(), "capvault-providers-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const env = { ...process.env, CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: "true", CAPVAULT_MONGODB_URI: "", CAPVAULT_TOKEN: "" };
    const cases: [string, Record<string, unknown>, string][] = [
      ["bad-host", { baseUrl: "https://api.example.com", allowedHosts: ["other.example.com"] }, "provider bad-host: api.baseUrl's host is not in allowedHosts"],
      ["bad-header", { credentialHeader: { name: "Cookie", scheme: "Bearer" } }, "provider bad-header: api.credentialHeader.name"],
      ["no-ca", { caFile: join(dir, "missing-ca.pem") }, "provider no-ca: api.caFile cannot be read"],
    ];
    for (const [id, api, expected] of cases) {
      const providers = join(dir, id);
      await mkdir(providers);
      const good = { baseUrl: "https://api.example.com", allowedHosts: ["api.example.com"], credentialHeader: { name: "Authorization", scheme: "Bearer" } };
      await writeFile(join(providers, `${id}.json`), JSON.stringify(testProviderFile(id, "https://idp.example.com", "CAPVAULT_UNUSED", { ...good, ...api })));
      const r = await runCli(["dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--providers-dir", providers], { env, timeoutMs: 20_000 });
      expect({ id, code: r.code }).toEqual({ id, code: 2 });
      expect(r.stderr).toContain(expected);
    }
  });

  it("api sections are read once, at start-up: a CA file removed afterwards changes nothing for the agent", async () => {
    let caFile = "";
    const t: TestBroker = await startTestBroker({
      providers: {
        "gh-ca": (c) => {
          // A CA file of this provider's own, readable when the broker starts.
          caFile = join(c.caFile, "..", "gh-ca-ca.pem");
          writeFileSync(caFile, TEST_CA);
          return { caFile };
        },
      },
    });
    cleanup.push(() => t.close());
    const connection = await t.connectAccount("erin", "gh-ca");
    const token = (await t.mint([{ connection, method: "GET", pathPrefix: "/" }])).token;
    await rm(caFile);
    // Read on first use, the file would be missing now, and the error would reach the agent (it used to name the
    // file's path). Checked and kept at start-up, the first call works.
    const client = new ProxyServiceClient(t.address, credentials.createInsecure());
    cleanup.push(async () => client.close());
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    const answer = await new Promise<ServiceError | ProxyResponse>((resolve) =>
      client.proxy({ request: { connection, method: "GET", path: "/x", headers: [], query: [], body: Buffer.alloc(0) } }, md, (e, r) => resolve(e ?? r!)),
    );
    expect("code" in answer ? { code: answer.code, details: answer.details, reason: readErrorDetails(answer).reason } : { status: answer.status }).toEqual({ status: 200 });
  });
});
