import { attenuate, type AttenuateOutput } from "./attenuate.js";
import { DecisionCache } from "./decision-cache.js";
import { authorize, type AuthorizeOptions, type AuthorizeOutput, type AuthorizeRunner } from "./authorize.js";
import { loadNativeBiscuit } from "./binding/native-loader.js";
import { NativeAuthorizer } from "./native-authorizer.js";
import { CapvaultError } from "../errors/capvault-error.js";
import { inspect, type InspectOutput } from "./inspect.js";
import { resolveLimits, type CapabilityLimits, type RunLimits } from "./limits.js";
import { mint, type MintInput, type MintOutput } from "./mint.js";
import { loadPolicyDirectory, policySetFromSources, validatePolicySet, type PolicySet } from "./policies.js";
import type { RevocationSet } from "./revocation-set.js";
import type { RootPublicKey } from "./root-keys.js";
import type { AccessRequest, Restriction } from "./vocabulary.js";
import { WorkerPool, type PoolEvent, type PoolStats, type WorkerPoolOptions } from "./worker-pool.js";

/** Options: the worker pool's, plus capability limits. */
/** Something an operator should hear about: a worker lifecycle event, or a panic caught by the native runtime. */
export type CapabilityEvent = PoolEvent | { type: "native-panic"; detail: string };

export interface CapabilitiesOptions extends Omit<WorkerPoolOptions, "onEvent"> {
  /** Observe worker lifecycle events and native panics (for logs and metrics). */
  onEvent?: (event: CapabilityEvent) => void;
  limits?: Partial<Omit<CapabilityLimits, "run">> & { run?: Partial<RunLimits> };
  /** Most authorizer results kept for the current second (decision-cache.ts; default 4096, 0 turns it off). */
  decisionCacheSize?: number;
  /**
   * Where authorizations run: "native" (native/capvault-biscuit.node, biscuit-auth through Node-API; an error when it
   * was not built), "wasm" (@biscuit-auth/biscuit-wasm in the worker pool), or "auto" (native when built; the default).
   */
  runtime?: CapabilityRuntime;
}

export type CapabilityRuntime = "auto" | "native" | "wasm";

/**
 * The capability runtime: mint, attenuate, inspect and authorize Biscuit capabilities, all through a worker pool.
 * One instance per process; `close()` on shutdown. The RPC handlers are thin adapters over these methods.
 */
export class Capabilities {
  readonly limits: CapabilityLimits;
  readonly pool: WorkerPool;
  readonly decisions: DecisionCache;
  /** The native authorizer, when authorizations run on the native runtime. */
  readonly native: NativeAuthorizer | undefined;
  /** The runtime authorizations run on. */
  readonly runtime: "native" | "wasm";
  private readonly runAuthorize: AuthorizeRunner;

  constructor(options: CapabilitiesOptions = {}) {
    const { limits, decisionCacheSize, runtime = "auto", ...poolOptions } = options;
    const binding = runtime === "wasm" ? undefined : loadNativeBiscuit();
    if (runtime === "native" && !binding) {
      throw new CapvaultError("CONFIG_INVALID", "capabilities.runtime is native but the native runtime is not built (node native/build.mjs)");
    }
    this.limits = resolveLimits(limits);
    this.pool = new WorkerPool(poolOptions);
    this.decisions = new DecisionCache(decisionCacheSize ?? 4096);
    const onEvent = poolOptions.onEvent;
    const native = binding
      ? new NativeAuthorizer(binding, { onPanic: (detail) => onEvent?.({ type: "native-panic", detail }) })
      : undefined;
    this.native = native;
    this.runtime = native ? "native" : "wasm";
    this.runAuthorize = native
      ? (job, token) => native.authorize(job, token.digest)
      : (job, token) => this.pool.run(job, token.affinity);
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
    return authorize(this.runAuthorize, this.limits, token, request, options, this.decisions);
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

  /** Pool state and counters; completed and failed count authorizations on the native runtime too. */
  stats(): PoolStats {
    const stats = this.pool.stats();
    if (!this.native) return stats;
    return { ...stats, completed: stats.completed + this.native.completed, failed: stats.failed + this.native.failed };
  }

  /** Terminate the workers. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
