/**
 * capvault capabilities: Biscuit tokens that say who may call which connection, with which method, under which path.
 * See docs/capabilities.md for the vocabulary and examples.
 */
export { Capabilities, type CapabilitiesOptions } from "./capabilities.js";
export { mint, type MintInput, type MintOutput } from "./mint.js";
export { attenuate, type AttenuateOutput } from "./attenuate.js";
export { inspect, type InspectOutput, type InspectedBlock } from "./inspect.js";
export { authorize, assertAllowed, type AuthorizeOptions, type AuthorizeOutput } from "./authorize.js";
export { primaryReason, type Denial } from "./denials.js";
export {
  generateRootKey,
  publicKeyFromPrivate,
  selectSigningKey,
  toPublicKey,
  verificationKey,
  type RootKey,
  type RootPublicKey,
  type SigningKey,
} from "./root-keys.js";
export { RevocationSet, type RevokedBlock } from "./revocation-set.js";
export {
  loadPolicyDirectory,
  parsePolicyFile,
  policySetFromSources,
  readPolicyDirectory,
  validatePolicySet,
  type PolicySet,
  type PolicyStatement,
} from "./policies.js";
export { runPolicyTests, type PolicyTestCase, type PolicyTestResult, type PolicyTestReport } from "./policy-tests.js";
export { canonicalPath, isCanonicalPath, assertCanonicalPath, normalisePathPrefix } from "./canonical-path.js";
export {
  GRANT_OPERATIONS,
  type AccessRequest,
  type FieldConstraint,
  type Grant,
  type QueryParam,
  type RawCheck,
  type Restriction,
} from "./vocabulary.js";
export { DEFAULT_LIMITS, resolveLimits, type CapabilityLimits, type RunLimits } from "./limits.js";
export { WorkerPool, type PoolEvent, type PoolStats, type WorkerPoolOptions } from "./worker-pool.js";
export { replayAuthorizer, type ReplayResult } from "./replay.js";
export type { TermValue, Predicate } from "./token-format.js";
