/**
 * Setting up a real capvault broker process for bench/proxy.ts: a provider catalog whose API is the bench upstream,
 * the account connected through the real OAuth authorization-code flow against oidc-provider, and capabilities
 * minted through the broker's own RPCs.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Capabilities } from "../../src/capabilities/capabilities.js";
import type { RootPublicKey } from "../../src/capabilities/root-keys.js";
import {
  CapabilityServiceClient,
  type AttenuateResponse,
  type ListPublicKeysResponse,
  type MintResponse,
  type Restriction,
} from "../../src/gen/capvault/v1/capability.js";
import { ConnectionServiceClient, type BeginConnectResponse } from "../../src/gen/capvault/v1/connection.js";
import { followToCallback, openCallback } from "../../test/oauth/support/authorize-driver.js";
import type { PeersReady } from "./peers.js";

export const TENANT = "dev"; // the tenant of the dev operator capability `capvault dev` prints
export const CLIENT_ID_ENV = "CAPVAULT_BENCH_GH_ID";
export const CLIENT_SECRET_ENV = "CAPVAULT_BENCH_GH_SECRET";

/** Write providers/gh.json (the upstream as the provider's API, loopback allowed, the test CA) and ca.pem. */
export async function writeCatalog(dir: string, peers: PeersReady, ca: Buffer): Promise<string> {
  const providersDir = join(dir, "providers");
  await mkdir(providersDir, { recursive: true });
  await writeFile(join(dir, "ca.pem"), ca);
  await writeFile(
    join(providersDir, "gh.json"),
    JSON.stringify({
      id: "gh",
      displayName: "GitHub (bench)",
      issuer: peers.issuer,
      discovery: true,
      defaultScopes: ["openid", "email", "offline_access"],
      scopeSeparator: " ",
      pkce: "S256",
      authorizationParams: { prompt: "consent" },
      tokenResponse: "standard",
      tokenEndpointAuthMethod: "client_secret_basic",
      revocation: "rfc7009",
      account: "oidc",
      client: { idEnv: CLIENT_ID_ENV, secretEnv: CLIENT_SECRET_ENV },
      api: {
        baseUrl: `https://localhost:${peers.upstreamPort}`,
        allowedHosts: ["localhost"],
        credentialHeader: { name: "Authorization", scheme: "Bearer" },
        allowPrivateAddresses: true,
        caFile: join(dir, "ca.pem"),
      },
    }),
  );
  return providersDir;
}

const unaryCall = <Res>(fn: (cb: (err: ServiceError | null, res: Res) => void) => void) =>
  new Promise<Res>((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));

/** Operator-side RPCs against the broker: connect an account, mint and attenuate capabilities. */
export class Operator {
  private readonly connections: ConnectionServiceClient;
  private readonly capabilities: CapabilityServiceClient;

  constructor(
    address: string,
    private readonly operatorToken: string,
  ) {
    this.connections = new ConnectionServiceClient(address, credentials.createInsecure());
    this.capabilities = new CapabilityServiceClient(address, credentials.createInsecure());
  }

  private md(token = this.operatorToken): Metadata {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
    return m;
  }

  /** The real authorization-code flow: BeginConnect, the provider's pages, the broker's callback. */
  async connectAccount(callbackPrefix: string, user = "alice"): Promise<string> {
    const begun = await unaryCall<BeginConnectResponse>((cb) =>
      this.connections.beginConnect({ tenant: TENANT, user, provider: "gh", scopes: [] }, this.md(), cb),
    );
    const callback = await followToCallback(begun.authorizationUrl, callbackPrefix);
    const page = await openCallback(callback);
    if (!page.text.includes("is now connected")) throw new Error(`connect failed: ${page.text}`);
    return begun.connectionId;
  }

  /** Mint a 1-block agent capability for `methods` (GET by default) under /repos/acme/ on `connection`. */
  async mint(connection: string, subject: string, methods: string[] = ["GET"]): Promise<string> {
    const grants = methods.map((method) => ({ connection, method, pathPrefix: "/repos/acme/" }));
    const res = await unaryCall<MintResponse>((cb) =>
      this.capabilities.mint(
        { tenant: TENANT, subject, grants, ttl: { seconds: 4 * 3600, nanos: 0 }, operator: false, allowUnknownConnections: false },
        this.md(),
        cb,
      ),
    );
    return res.token;
  }

  /** Attenuate through the broker's Attenuate RPC (as an agent would). */
  async attenuate(token: string, restriction: Partial<Restriction>): Promise<string> {
    const res = await unaryCall<AttenuateResponse>((cb) =>
      this.capabilities.attenuate(
        { token, restriction: { connections: [], methods: [], pathPrefix: "", query: [], body: [], checks: [], approvalMethods: [], ...restriction } },
        this.md(token),
        cb,
      ),
    );
    return res.token;
  }

  async publicKeys(): Promise<RootPublicKey[]> {
    const res = await unaryCall<ListPublicKeysResponse>((cb) => this.capabilities.listPublicKeys({}, this.md(), cb));
    return res.keys.map((k) => ({ id: k.keyId, publicKeyHex: k.publicKey, algorithm: "ed25519" as const, retired: k.retired }));
  }

  close(): void {
    this.connections.close();
    this.capabilities.close();
  }
}

/** The two restrictions that make a 3-block token (both still allow GET /repos/acme/widgets/issues). */
export const BLOCK_2: Partial<Restriction> = { pathPrefix: "/repos/acme/widgets/" };
export const BLOCK_3: Partial<Restriction> = { methods: ["GET", "HEAD"], ttl: { seconds: 3 * 3600, nanos: 0 } };

/** Seven restrictions that make an 8-block token, each a real narrowing an orchestration chain would add. */
export const EIGHT_BLOCKS: Array<Partial<Restriction>> = [
  { pathPrefix: "/repos/acme/" },
  BLOCK_2,
  { methods: ["GET", "HEAD", "POST"] },
  BLOCK_3,
  { pathPrefix: "/repos/acme/widgets/issues/" },
  { ttl: { seconds: 2 * 3600, nanos: 0 } },
  { methods: ["GET"], ttl: { seconds: 3600, nanos: 0 } },
];

/**
 * `count` distinct 3-block tokens: each minted by the broker (Mint RPC, a distinct subject), then attenuated twice
 * offline in this process with capvault's own capability runtime (Biscuit attenuation needs no broker), so that
 * making them costs the broker one Mint each and leaves no extra audit events. The runtime is taken from `distDir`,
 * the same build the broker runs.
 */
export async function distinctTokens(
  operator: Operator,
  connection: string,
  count: number,
  distDir: string,
  onProgress?: (done: number) => void,
): Promise<string[]> {
  const keys = await operator.publicKeys();
  const runtime = (await import(pathToFileURL(join(distDir, "capabilities", "capabilities.js")).href)) as {
    Capabilities: typeof Capabilities;
  };
  const caps = new runtime.Capabilities({ workers: 2 });
  await caps.ready();
  const tokens = new Array<string>(count);
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      let t = await operator.mint(connection, `agent-${i}`);
      t = (await caps.attenuate(t, { pathPrefix: BLOCK_2.pathPrefix }, keys)).token;
      t = (await caps.attenuate(t, { methods: BLOCK_3.methods, ttlSeconds: Number(BLOCK_3.ttl!.seconds) }, keys)).token;
      tokens[i] = t;
      if (++done % 1000 === 0) onProgress?.(done);
    }
  };
  // A few at a time: the broker's Mint waits for its audit event, and concurrent mints race for audit sequences.
  await Promise.all(Array.from({ length: 4 }, lane));
  await caps.close();
  return tokens;
}
