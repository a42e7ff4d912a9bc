import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { OidcServer } from "../oauth/support/oidc-server.js";
import { TEST_CA, type RecordingUpstream } from "../proxy/recording-upstream.js";

/** A provider catalog written for a test: OAuth at a test oidc-provider, API at a recording HTTPS upstream. */
export interface TestProviderCatalog {
  dir: string;
  /** The environment variables holding the provider's client id and secret (the catalog names them). */
  clientEnv: Record<string, string>;
}

/**
 * Write providers/gh.json: OAuth through `idp` (discovery), API at https://localhost:<upstream port>, trusted through
 * the test CA, private (loopback) addresses allowed for this provider only.
 */
export async function writeTestProviderCatalog(root: string, idp: OidcServer, upstream: RecordingUpstream): Promise<TestProviderCatalog> {
  const dir = join(root, "providers");
  await mkdir(dir, { recursive: true });
  await writeFile(join(root, "ca.pem"), TEST_CA);
  const prefix = `CAPVAULT_TEST_${randomBytes(4).toString("hex").toUpperCase()}`;
  await writeFile(
    join(dir, "gh.json"),
    JSON.stringify({
      id: "gh",
      displayName: "GitHub (test)",
      issuer: idp.issuer,
      discovery: true,
      defaultScopes: ["openid", "email", "offline_access"],
      scopeSeparator: " ",
      pkce: "S256",
      authorizationParams: { prompt: "consent" },
      tokenResponse: "standard",
      tokenEndpointAuthMethod: "client_secret_basic",
      revocation: "rfc7009",
      account: "oidc",
      client: { idEnv: `${prefix}_ID`, secretEnv: `${prefix}_SECRET` },
      api: {
        baseUrl: `https://localhost:${upstream.port}`,
        allowedHosts: ["localhost"],
        credentialHeader: { name: "Authorization", scheme: "Bearer" },
        allowPrivateAddresses: true,
        caFile: join(root, "ca.pem"),
      },
    }),
  );
  return { dir, clientEnv: { [`${prefix}_ID`]: idp.clientId, [`${prefix}_SECRET`]: idp.clientSecret } };
}
