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
    const decision = (known.decision = await deps.authority.decide(token, accessRequestOf(request, route, url)));
    if (!options.dryRun) assertAllowed(decision);
    return { ok: true, admission: { request, route, url, decision } };
  } catch (error) {
    return { ok: false, error, known };
  }
}

/** The request in canonical form (the same values are authorized and sent). */
function canonicalize(deps: ProxyDependencies, request: HttpRequest): CanonicalRequest {
  return deps.canonicalRequests ? deps.canonicalRequests.canonicalize(request) : canonicalizeRequest(request, deps.canonicalLimits);
}
