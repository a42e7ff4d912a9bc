import { CapvaultError } from "../errors/capvault-error.js";
import type { CallContext } from "../server/call-context.js";
import { assertAllowed, type AuthorizeOutput } from "./authorize.js";
import type { Capabilities } from "./capabilities.js";
import type { PolicySet } from "./policies.js";
import type { RevocationPoller } from "./revocation-poller.js";
import type { RootKeyRing } from "./root-key-ring.js";
import type { AccessRequest } from "./vocabulary.js";

/**
 * "Who may": everything one authorization needs, held together — the runtime, the root keys, the revocation set
 * kept current by polling, and the organisation's policies.
 */
export class CapabilityAuthority {
  constructor(
    readonly caps: Capabilities,
    readonly keys: RootKeyRing,
    readonly revocations: RevocationPoller,
    readonly policies: PolicySet | undefined,
  ) {}

  /** Decide a request (revoked blocks fail with CAPABILITY_REVOKED; a refusal comes back with its denials). */
  decide(token: string, request: AccessRequest): Promise<AuthorizeOutput> {
    return this.caps.authorize(token, request, {
      publicKeys: this.keys.keys(),
      revocations: this.revocations.set,
      ...(this.policies ? { policies: this.policies } : {}),
    });
  }

  /** Like decide, but a refusal throws its reason (PERMISSION_DENIED) naming the failing check or policy. */
  async require(token: string, request: AccessRequest): Promise<AuthorizeOutput> {
    const decision = await this.decide(token, request);
    assertAllowed(decision);
    return decision;
  }

  /**
   * Operators authenticate with an operator capability too (no shared passwords): the caller's bearer token must carry
   * operator(true) for this tenant and pass every check and policy for `operation`.
   */
  async requireOperator(ctx: CallContext, tenant: string, operation: string): Promise<AuthorizeOutput> {
    const token = bearerCapability(ctx);
    if (!tenant) throw new CapvaultError("INVALID_REQUEST", "tenant is required");
    const decision = await this.decide(token, { operation, tenant });
    // The operator allow policy's refusal is reported as OPERATOR_REQUIRED (denials.ts), never NO_MATCHING_GRANT:
    // name the operation that needed it.
    if (!decision.allowed && (decision.reason === "OPERATOR_REQUIRED" || decision.reason === "NO_MATCHING_GRANT")) {
      throw new CapvaultError("OPERATOR_REQUIRED", undefined, { metadata: { operation } });
    }
    assertAllowed(decision);
    return decision;
  }
}

/** The capability from `authorization: Bearer <token>` metadata, or CAPABILITY_MISSING. */
export function bearerCapability(ctx: CallContext): string {
  const token = ctx.bearerToken();
  if (!token) throw new CapvaultError("CAPABILITY_MISSING");
  return token;
}
