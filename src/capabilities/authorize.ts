import { CapvaultError } from "../errors/capvault-error.js";
import type { Reason } from "../errors/reasons.js";
import { authorizerLayout, denialsOf, isAllowed, primaryReason, type Denial } from "./denials.js";
import type { DecisionCache } from "./decision-cache.js";
import type { DatalogSnippet } from "./datalog-values.js";
import type { CapabilityLimits } from "./limits.js";
import type { PolicySet } from "./policies.js";
import type { RevocationSet } from "./revocation-set.js";
import type { RootPublicKey } from "./root-keys.js";
import type { AuthorizeJobResult, Job, PolicySetWire } from "./protocol.js";
import { prepareToken, type PreparedToken } from "./token-input.js";
import { compileRequest, type CompiledRequest } from "./request-facts.js";
import type { AccessRequest } from "./vocabulary.js";

/** Runs an authorize job: on the native runtime when it is built, in the worker pool otherwise (capabilities.ts). */
export type AuthorizeRunner = (job: Extract<Job, { kind: "authorize" }>, token: PreparedToken) => Promise<AuthorizeJobResult>;

/** Options of one authorization. */
export interface AuthorizeOptions {
  /** Root public keys by id (retired keys are refused). */
  publicKeys: readonly RootPublicKey[];
  /** Organisation policies (loaded and validated); applied to grant operations ("proxy", "authorize"). */
  policies?: PolicySet;
  /** The time to authorize at (default: now). */
  now?: Date;
  /** When given, a token with any block revoked in its tenant fails with CAPABILITY_REVOKED. */
  revocations?: RevocationSet;
}

/** The decision (proto capvault.v1.AuthorizeResponse, plus the token's identity and revocation ids). */
export interface AuthorizeOutput {
  allowed: boolean;
  /** The main reason when refused. */
  reason?: Reason;
  denials: Denial[];
  /** Every block's revocation id: check them against the revocation set if none was given. */
  revocationIds: string[];
  tenant: string;
  subject: string;
  operator: boolean;
  operation: string;
  canonicalMethod: string;
  canonicalPath: string;
}

/**
 * Authorize a request with a token. Token-level failures throw a CapvaultError (CAPABILITY_MISSING, _MALFORMED,
 * _TOO_LARGE, _TOO_DEEP, _SIGNATURE_INVALID, _UNKNOWN_ROOT_KEY, _REVOKED; PATH_INVALID and friends for a bad request);
 * a refusal is returned as `allowed: false` with every denial named (use {@link assertAllowed} to throw instead).
 */
export async function authorize(
  runner: AuthorizeRunner,
  limits: CapabilityLimits,
  token: string,
  request: AccessRequest,
  options: AuthorizeOptions,
  decisions?: DecisionCache,
): Promise<AuthorizeOutput> {
  const prepared = prepareToken(token, options.publicKeys, limits);
  const now = options.now ?? new Date();
  const second = Math.floor(now.getTime() / 1000);
  const { compiled, requestKey } = compiledFor(request, now, second, limits);
  // Organisation policies describe what agents may do with connections: they apply to grant operations (proxy and
  // its dry run). Operator operations are decided by the operator token alone.
  const policies = compiled.allow === "grant" ? options.policies : undefined;
  const run = () =>
    runner(
      {
        kind: "authorize",
        token: prepared.bytes,
        key: prepared.key,
        maxBlocks: limits.maxBlocks,
        ...(policies ? { policies: { id: policies.id, statements: policies.statements } } : {}),
        request: compiled.snippet,
        limits: limits.run,
      },
      prepared,
    );
  const result = await (decisions ? decisions.through(second, decisionKey(prepared, limits, policies, requestKey), run) : run());
  return decisionOf(result, compiled, policies, options);
}

/** Everything the worker's authorizer reads, as one string (see decision-cache.ts for why this key is exact). */
function decisionKey(prepared: PreparedToken, limits: CapabilityLimits, policies: PolicySetWire | undefined, requestKey: string): string {
  const run = limits.run;
  // The token's bytes and verifying key by their cache id (token-input.ts): short, so the key is cheap to hash.
  return [prepared.cacheId, limits.maxBlocks, policies?.id ?? "", run.maxFacts, run.maxIterations, run.maxTimeMicros, requestKey].join("\u0000");
}

interface CompiledFor {
  second: number;
  limits: CapabilityLimits;
  compiled: CompiledRequest;
  /** The request's part of the decision key: its Datalog code and parameters, or an id that stands for them. */
  requestKey: string;
}

/** Compiled facts of deeply frozen requests, for the second they were compiled in (the `time` fact is part of them). */
const compiledRequests = new WeakMap<AccessRequest, CompiledFor>();
let nextCompiledId = 1;

/**
 * The request's compiled facts and its part of the decision key. A deeply frozen request (Proxy's are: see
 * accessRequestOf) cannot change, so within one second and one set of limits its compiled facts are the same every
 * time: they are compiled once, and a unique id stands for their code and parameters in the decision key (two
 * compilations never share an id, so the key stays exact). Anything else is compiled afresh and keyed by its text.
 */
function compiledFor(request: AccessRequest, now: Date, second: number, limits: CapabilityLimits): CompiledFor {
  // Only deeply frozen requests are ever kept, and freezing cannot be undone: a kept request needs no second look.
  const known = compiledRequests.get(request);
  if (known && known.second === second && known.limits === limits) return known;
  const frozen = known !== undefined || isDeeplyFrozen(request);
  const compiled = compileRequest(request, now, limits);
  if (!frozen) return { second, limits, compiled, requestKey: `${compiled.snippet.code}\u0000${paramsJson(compiled.snippet.params)}` };
  const entry = { second, limits, compiled, requestKey: `#${nextCompiledId++}` };
  compiledRequests.set(request, entry);
  return entry;
}

/** Frozen all the way down: the object, its query list and entries, and a body of plain values (never bytes, which
 * stay writable even when frozen, nor nested objects). */
function isDeeplyFrozen(request: AccessRequest): boolean {
  if (!request || typeof request !== "object" || !Object.isFrozen(request)) return false;
  const { query, body } = request;
  if (query !== undefined && (!Object.isFrozen(query) || !query.every((q) => Object.isFrozen(q)))) return false;
  if (body === undefined) return true;
  if (body instanceof Uint8Array || !Object.isFrozen(body)) return false;
  return Object.values(body).every((v) => v === null || typeof v !== "object");
}

/** JSON of the parameters; a bigint (which JSON.stringify refuses) is written as an object no parameter can be. */
function paramsJson(params: DatalogSnippet["params"]): string {
  try {
    return JSON.stringify(params);
  } catch {
    return JSON.stringify(params, (_, v: unknown) => (typeof v === "bigint" ? { bigint: v.toString() } : v));
  }
}

const NO_STATEMENTS: readonly PolicySet["statements"][number][] = Object.freeze([]);

/** The worker's result as a decision: revocation checked against the live set, refusals explained. */
function decisionOf(
  result: AuthorizeJobResult,
  compiled: CompiledRequest,
  policies: PolicySet | undefined,
  options: AuthorizeOptions,
): AuthorizeOutput {
  if (options.revocations?.isRevoked(result.identity.tenant, result.revocationIds)) {
    throw new RevokedCapabilityError(result.identity.tenant, result.identity.subject, [...result.revocationIds]);
  }
  const layout = authorizerLayout(policies?.statements ?? NO_STATEMENTS, compiled.allow);
  const allowed = isAllowed(result.outcome, layout);
  const denials = allowed ? [] : denialsOf(result.outcome, layout);
  const reason = primaryReason(denials);
  return {
    allowed,
    ...(reason ? { reason } : {}),
    denials,
    revocationIds: [...result.revocationIds],
    tenant: result.identity.tenant,
    subject: result.identity.subject,
    operator: result.identity.operator,
    operation: compiled.operation,
    canonicalMethod: compiled.method,
    canonicalPath: compiled.path,
  };
}

/**
 * CAPABILITY_REVOKED, still knowing whose (verified) capability it was, so that the refusal is audited with its
 * subject and delegation chain. Only the reason and its public message reach the client.
 */
export class RevokedCapabilityError extends CapvaultError {
  constructor(
    readonly tenant: string,
    readonly subject: string,
    readonly revocationIds: readonly string[],
  ) {
    super("CAPABILITY_REVOKED");
  }
}

/** Throw the decision's main reason as a CapvaultError (metadata names the failing block/check/policy) unless allowed. */
export function assertAllowed(decision: AuthorizeOutput): void {
  if (decision.allowed) return;
  const reason = decision.reason ?? "NO_MATCHING_GRANT";
  const first = decision.denials.find((d) => d.reason === reason) ?? decision.denials[0];
  const metadata: Record<string, string> = {};
  if (first) {
    if (first.blockIndex >= 0) metadata.block = String(first.blockIndex);
    if (first.checkIndex >= 0) metadata.check = String(first.checkIndex);
    if (first.policy) metadata.policy = first.policy;
  }
  throw new CapvaultError(reason, undefined, { metadata });
}
