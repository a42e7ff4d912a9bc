import { attenuate, type AttenuateOutput } from "./attenuate.js";
import { DecisionCache } from "./decision-cache.js";
import { authorize, type AuthorizeOptions, type AuthorizeOutput } from "./authorize.js";
import { inspect, type InspectOutput } from "./inspect.js";
import { resolveLimits, type CapabilityLimits, type RunLimits } from "./limits.js";
import { mint, type MintInput, type MintOutput } from "./mint.js";
import { loadPolicyDirectory, policySetFromSources, validatePolicySet, type PolicySet } from "./policies.js";
import type { RevocationSet } from "./revocation-set.js";
import type { RootPublicKey } from "./root-keys.js";
import type { AccessRequest, Restriction } from "./vocabulary.js";
import { WorkerPool, type PoolStats, type WorkerPoolOptions } from "./worker-pool.js";

/** Options: the worker pool's, plus capability limits. */
export interface CapabilitiesOptions extends WorkerPoolOptions {
  limits?: Partial<Omit<CapabilityLimits, "run">> & { run?: Partial<RunLimits> };
  /** Most authorizer results kept for the current second (decision-cache.ts; default 4096, 0 turns it off). */
  decisionCacheSize?: number;
}

/**
 * The capability runtime: mint, attenuate, inspect and authorize Biscuit capabilities, all through a worker pool.
 * One instance per process; `close()` on shutdown. The RPC handlers are thin adapters over these methods.
 */
export class Capabilities {
  readonly limits: CapabilityLimits;
  readonly pool: WorkerPool;
  readonly decisions: DecisionCache;

  constructor(options: CapabilitiesOptions = {}) {
    const { limits, decisionCacheSize, ...poolOptions } = options;
    this.limits = resolveLimits(limits);
    this.pool = new WorkerPool(poolOptions);
    this.decisions = new DecisionCache(decisionCacheSize ?? 4096);
  }

  /** Mint a token (see mint.ts). */
  mint(input: MintInput): Promise<MintOutput> {
    return mint(this.pool, this.limits, input);
  }

  /** Append a block of checks (see attenuate.ts). */
  attenuate(token: string, restriction: Restriction, publicKeys: readonly RootPublicKey[], now?: Date): Promise<AttenuateOutput> {
    return attenuate(this.pool, this.limits, token, restriction, publicKeys, now);
  }

  /** Describe a token block by block (see inspect.ts). */
  inspect(token: string, publicKeys: readonly RootPublicKey[], revocations?: RevocationSet): Promise<InspectOutput> {
    return inspect(this.pool, this.limits, token, publicKeys, revocations);
  }

  /** Authorize a request (see authorize.ts). */
  authorize(token: string, request: AccessRequest, options: AuthorizeOptions): Promise<AuthorizeOutput> {
    return authorize(this.pool, this.limits, token, request, options, this.decisions);
  }

  /** Read and validate a directory of organisation policies. */
  loadPolicies(dir: string): Promise<PolicySet> {
    return loadPolicyDirectory(this.pool, dir);
  }

  /** Build and validate a policy set from in-memory files. */
  policiesFromSources(files: Record<string, string>): Promise<PolicySet> {
    return validatePolicySet(this.pool, policySetFromSources(files));
  }

  /** Wait until all workers are up. */
  ready(): Promise<void> {
    return this.pool.ready();
  }

  /** Pool state and counters. */
  stats(): PoolStats {
    return this.pool.stats();
  }

  /** Terminate the workers. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
