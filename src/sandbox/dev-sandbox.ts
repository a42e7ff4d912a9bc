import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CapabilityServiceClient, type AttenuateResponse, type MintResponse } from "../gen/capvault/v1/capability.js";
import { ConnectionServiceClient, type BeginConnectResponse } from "../gen/capvault/v1/connection.js";
import { SANDBOX_CA_FILE, startSandboxApi, type SandboxApi } from "./sandbox-api.js";
import { SANDBOX_ACCOUNT, startSandboxOAuthProvider, type SandboxOAuthProvider } from "./sandbox-oauth-provider.js";
import { signInInCode } from "./sign-in-in-code.js";

/** The sandbox provider's id in the broker's catalog. */
export const SANDBOX_PROVIDER = "sandbox";
const CLIENT_ID_ENV = "CAPVAULT_SANDBOX_CLIENT_ID";
const CLIENT_SECRET_ENV = "CAPVAULT_SANDBOX_CLIENT_SECRET";
/** What the sample agent capability allows (the sandbox API also has /repos/acme/gadgets and /repos/acme/secrets). */
const AGENT_PREFIX = "/repos/acme/widgets/";

/** The sandbox's servers, before the broker starts: point the broker's catalog at `providersDir`. */
export interface PreparedSandbox {
  /** The configured catalog's providers plus `sandbox.json`. */
  providersDir: string;
  provider: SandboxOAuthProvider;
  api: SandboxApi;
  dir: string;
  close(): Promise<void>;
}

/** What `capvault dev` prints once the sample user is connected. */
export interface ReadySandbox {
  connection: string;
  user: string;
  tokenFile: string;
  allowedPath: string;
  deniedPath: string;
  agentPrefix: string;
}

/**
 * Start the sandbox for `capvault dev`: an OAuth provider (oidc-provider) and a GitHub-like HTTPS API on loopback, and
 * a provider catalog (the configured one plus `sandbox`) for the broker. The client secret reaches the broker through
 * the environment, as for any provider. Nothing of it exists in `capvault serve`.
 */
export async function prepareSandbox(catalogDir: string): Promise<PreparedSandbox> {
  const provider = await startSandboxOAuthProvider();
  const api = await startSandboxApi((token) => provider.lookupAccessToken(token)).catch(async (err) => {
    await provider.close();
    throw err;
  });
  const dir = await mkdtemp(join(tmpdir(), "capvault-sandbox-"));
  const providersDir = join(dir, "providers");
  const close = async () => {
    await Promise.allSettled([api.close(), provider.close()]);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await mkdir(providersDir);
    for (const name of (await readdir(catalogDir)).filter((n) => n.endsWith(".json") && n !== `${SANDBOX_PROVIDER}.json`)) {
      await copyFile(join(catalogDir, name), join(providersDir, name));
    }
    await writeFile(join(providersDir, `${SANDBOX_PROVIDER}.json`), JSON.stringify(sandboxProviderFile(provider.issuer, api.baseUrl), null, 2));
  } catch (err) {
    await close();
    throw err;
  }
  process.env[CLIENT_ID_ENV] = provider.clientId;
  process.env[CLIENT_SECRET_ENV] = provider.clientSecret;
  return { providersDir, provider, api, dir, close };
}

function sandboxProviderFile(issuer: string, apiBaseUrl: string): Record<string, unknown> {
  return {
    id: SANDBOX_PROVIDER,
    displayName: "Sandbox (GitHub-like, on loopback)",
    issuer,
    discovery: true,
    defaultScopes: ["openid", "email", "offline_access"],
    pkce: "S256",
    authorizationParams: { prompt: "consent" },
    tokenResponse: "standard",
    tokenEndpointAuthMethod: "client_secret_basic",
    revocation: "rfc7009",
    account: "oidc",
    client: { idEnv: CLIENT_ID_ENV, secretEnv: CLIENT_SECRET_ENV },
    api: {
      baseUrl: apiBaseUrl,
      allowedHosts: ["localhost"],
      credentialHeader: { name: "Authorization", scheme: "Bearer" },
      // SANDBOX ONLY: the API is on loopback and its certificate comes from the sandbox CA.
      allowPrivateAddresses: true,
      caFile: SANDBOX_CA_FILE,
    },
  };
}

/**
 * Once the broker listens: register it with the sandbox provider, connect the sample user through the real
 * authorization-code flow (BeginConnect, the provider's sign-in played in code, the broker's callback), mint an agent
 * capability over the broker's RPCs and narrow it to /repos/acme/widgets/, and write it to a file (mode 0600).
 */
export async function connectSandbox(
  sandbox: PreparedSandbox,
  broker: { grpcAddress: string; httpUrl: string; devOperatorToken: string },
  tenant: string,
): Promise<ReadySandbox> {
  const callbackUrl = `${broker.httpUrl}/oauth/callback`;
  await sandbox.provider.registerClient(callbackUrl);
  const insecure = credentials.createInsecure();
  const connections = new ConnectionServiceClient(broker.grpcAddress, insecure);
  const capabilities = new CapabilityServiceClient(broker.grpcAddress, insecure);
  const md = (token = broker.devOperatorToken) => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
    return m;
  };
  const call = <Res>(f: (cb: (err: ServiceError | null, res: Res) => void) => void) =>
    new Promise<Res>((resolve, reject) => f((err, res) => (err ? reject(err) : resolve(res))));
  try {
    const begun = await call<BeginConnectResponse>((cb) =>
      connections.beginConnect({ tenant, user: SANDBOX_ACCOUNT, provider: SANDBOX_PROVIDER, scopes: [] }, md(), cb),
    );
    const signIn = await signInInCode(begun.authorizationUrl, callbackUrl);
    if (!signIn.page.includes("is now connected")) throw new Error(`the sandbox sign-in did not connect: ${signIn.page}`);
    const minted = await call<MintResponse>((cb) =>
      capabilities.mint(
        {
          tenant,
          subject: "sandbox-agent",
          grants: [{ connection: begun.connectionId, method: "GET", pathPrefix: "/repos/acme/" }],
          ttl: { seconds: 8 * 3600, nanos: 0 },
          operator: false,
          allowUnknownConnections: false,
        },
        md(),
        cb,
      ),
    );
    const narrowed = await call<AttenuateResponse>((cb) =>
      capabilities.attenuate(
        { token: minted.token, restriction: { connections: [], methods: [], pathPrefix: AGENT_PREFIX, query: [], body: [], checks: [], approvalMethods: [] } },
        md(minted.token),
        cb,
      ),
    );
    const tokenFile = join(sandbox.dir, "agent.token");
    await writeFile(tokenFile, `${narrowed.token}\n`, { mode: 0o600 });
    return {
      connection: begun.connectionId,
      user: SANDBOX_ACCOUNT,
      tokenFile,
      allowedPath: `${AGENT_PREFIX}issues`,
      deniedPath: "/repos/acme/secrets",
      agentPrefix: AGENT_PREFIX,
    };
  } finally {
    connections.close();
    capabilities.close();
  }
}
