import { CapvaultError } from "../errors/capvault-error.js";
import { stringParam } from "./datalog-values.js";
import type { CapabilityLimits } from "./limits.js";
import { assertRootKeyId, type SigningKey } from "./root-keys.js";
import { encodeToken } from "./token-input.js";
import { authoritySnippet, normaliseGrant, type Grant } from "./vocabulary.js";
import type { WorkerPool } from "./worker-pool.js";

/** What to mint (proto capvault.v1.MintRequest plus the signing key). */
export interface MintInput {
  /** The signing root key (normally the newest: see selectSigningKey). */
  rootKey: SigningKey;
  tenant: string;
  /** The agent or principal the token is for. */
  subject: string;
  grants: Grant[];
  /** Lifetime in seconds (or `ttl` in the proto Duration shape). */
  ttlSeconds?: number;
  ttl?: { seconds: number; nanos?: number };
  /** Mint an operator capability. */
  operator?: boolean;
  /** Clock override (tests). */
  now?: Date;
}

/** A minted token (proto capvault.v1.MintResponse). */
export interface MintOutput {
  /** base64url, as Biscuit prints it. */
  token: string;
  expiresAt: Date;
  revocationIds: string[];
  rootKeyId: string;
}

/**
 * Mint a capability: authority block with `tenant`, `subject`, one `right(connection, method, prefix)` tuple per
 * grant, `operator(true)` for operators, and `check if time($time), $time <= <expiry>`. Signed in a worker.
 */
export async function mint(pool: WorkerPool, limits: CapabilityLimits, input: MintInput): Promise<MintOutput> {
  const rootKeyId = assertRootKeyId(input?.rootKey?.id);
  const privateKeyHex = input.rootKey.privateKeyHex;
  if (typeof privateKeyHex !== "string" || !/^[0-9a-fA-F]{64}$/.test(privateKeyHex)) {
    throw new CapvaultError("CONFIG_INVALID", "a root private key must be 32 bytes of hex");
  }
  const tenant = stringParam(input.tenant, "tenant", { maxBytes: limits.maxIdentifierBytes });
  const subject = stringParam(input.subject, "subject", { maxBytes: limits.maxIdentifierBytes });
  const operator = input.operator ?? false;
  if (typeof operator !== "boolean") throw new CapvaultError("INVALID_REQUEST", "operator must be a boolean");
  if (!Array.isArray(input.grants) || input.grants.length > limits.maxGrants) {
    throw new CapvaultError("INVALID_REQUEST", `grants must be a list of at most ${limits.maxGrants}`);
  }
  const seen = new Set<string>();
  const grants = input.grants
    .map((g) => normaliseGrant(g, limits))
    .filter((g) => {
      const key = JSON.stringify([g.connection, g.method, g.pathPrefix]);
      return !seen.has(key) && seen.add(key);
    });
  if (!grants.length && !operator) throw new CapvaultError("INVALID_REQUEST", "an agent capability needs at least one grant");
  const ttl = input.ttlSeconds ?? (input.ttl ? input.ttl.seconds + (input.ttl.nanos ?? 0) / 1e9 : undefined);
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl < 1 || ttl > limits.maxTtlSeconds) {
    throw new CapvaultError("INVALID_REQUEST", `ttl must be between 1 second and ${limits.maxTtlSeconds} seconds`);
  }
  const now = input.now ?? new Date();
  const expiresAt = new Date(Math.floor(now.getTime() / 1000 + ttl) * 1000);

  const result = await pool.run({
    kind: "mint",
    privateKeyHex: privateKeyHex.toLowerCase(),
    rootKeyId,
    authority: authoritySnippet({ tenant, subject, grants, expiresAt, operator }),
  });
  if (result.token.length > limits.maxTokenBytes) {
    throw new CapvaultError("CAPABILITY_TOO_LARGE", "the minted capability would exceed the token size limit");
  }
  return { token: encodeToken(result.token), expiresAt, revocationIds: result.revocationIds, rootKeyId: String(rootKeyId) };
}
