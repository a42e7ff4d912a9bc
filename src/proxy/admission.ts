import { needsApproval } from "../approvals/approvals.js";
import { assertAllowed, type AuthorizeOutput } from "../capabilities/authorize.js";
import { CapvaultError } from "../errors/capvault-error.js";
import type { HttpRequest } from "../gen/capvault/v1/common.js";
import { upstreamUrlFor } from "./build-upstream-url.js";
import type { UpstreamUrl } from "./build-upstream-url.js";
import { canonicalizeRequest, type CanonicalRequest } from "./canonical-request.js";
import type { ConnectionRoute } from "./connection-directory.js";
import { accessRequestOf, type ProxyDependencies } from "./proxy-pipeline.js";

/** A request that has been authenticated, canonicalized, routed and authorized: the upstream call is built from it. */
export interface Admission {
  request: CanonicalRequest;
  route: ConnectionRoute;
  /** The upstream URL, built and fenced from the same canonical request: the call goes exactly there. */
  url: UpstreamUrl;
  decision: AuthorizeOutput;
}

/** The outcome of admission: admitted, or refused with whatever was established before the refusal (for the audit). */
export type AdmissionResult = { ok: true; admission: Admission } | { ok: false; error: unknown; known: Partial<Admission> };

export interface AdmitOptions {
  /** The Authorize RPC's dry run: a denial is a result, not a refusal. */
  dryRun?: boolean;
  /** The approval the caller redeems for a held request (metadata `capvault-approval-id`). */
  approvalId?: string;
  /** ProxyStream: a held request is refused without an approval (a streamed body cannot be bound to one). */
  streaming?: boolean;
  /** The INVALID_REQUEST message when there is no request. */
  missingRequest?: string;
}

/**
 * The one admission step shared by Proxy, ProxyStream and the Authorize dry run: authenticate the capability,
 * canonicalize the request, route it to its connection, build the upstream URL, authorize. Returns values; never
 * throws (a refusal comes back with what was known, so that the audit says who was refused and why).
 */
export async function admit(
  deps: ProxyDependencies,
  capability: () => string,
  httpRequest: HttpRequest | undefined,
  options: AdmitOptions = {},
): Promise<AdmissionResult> {
  const known: Partial<Admission> = {};
  try {
    const token = capability();
    if (!httpRequest) throw new CapvaultError("INVALID_REQUEST", options.missingRequest ?? "request is required");
    const request = (known.request = canonicalize(deps, httpRequest));
    const route = (known.route = await deps.connections.route(request.connection));
    const url = (known.url = upstreamUrlFor(route.target, request));
    let decision = (known.decision = await deps.authority.decide(token, accessRequestOf(request, route, url)));
    if (!options.dryRun && needsApproval(decision)) {
      decision = known.decision = await approvedDecision(deps, token, { request, route, url, decision }, options);
    }
    if (!options.dryRun) assertAllowed(decision);
    return { ok: true, admission: { request, route, url, decision } };
  } catch (error) {
    return { ok: false, error, known };
  }
}

/**
 * A request held for a person's approval (approvals.ts). Without an approval id it is held: a pending approval is
 * stored and APPROVAL_REQUIRED answered. With one, the approval must match this request and capability and be
 * approved; the request is then authorized again as approved (every other check and policy still applies) and the
 * approval used, once across all brokers, before anything is sent.
 */
async function approvedDecision(deps: ProxyDependencies, token: string, held: Admission, options: AdmitOptions): Promise<AuthorizeOutput> {
  if (!deps.approvals || options.streaming) {
    throw new CapvaultError("APPROVAL_REQUIRED", "this request needs a person's approval; send it through Proxy (not ProxyStream) to ask for one");
  }
  if (!options.approvalId) throw await deps.approvals.hold(held);
  const approval = await deps.approvals.check(options.approvalId, held);
  const decision = await deps.authority.decide(token, accessRequestOf(held.request, held.route, held.url, "proxy", true));
  assertAllowed(decision);
  await deps.approvals.consume(approval, decision.subject);
  return decision;
}

/** The request in canonical form (the same values are authorized and sent). */
function canonicalize(deps: ProxyDependencies, request: HttpRequest): CanonicalRequest {
  return deps.canonicalRequests ? deps.canonicalRequests.canonicalize(request) : canonicalizeRequest(request, deps.canonicalLimits);
}
