import { status } from "@grpc/grpc-js";
import type { AuditEntry } from "../audit/audit-event.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { Approvals } from "../approvals/approvals.js";
import { RevokedCapabilityError, type AuthorizeOutput } from "../capabilities/authorize.js";
import type { CapabilityAuthority } from "../capabilities/capability-authority.js";
import type { AccessRequest } from "../capabilities/vocabulary.js";
import type { BrokerMetrics } from "../observability/metrics.js";
import { CapvaultError } from "../errors/capvault-error.js";
import type { Admission } from "./admission.js";
import type { AccessTokenCache } from "../oauth/access-token-cache.js";
import { buildUpstreamUrl, type UpstreamUrl } from "./build-upstream-url.js";
import type { CanonicalLimits, CanonicalRequest } from "./canonical-request.js";
import type { CanonicalRequestMemo } from "./canonical-request-memo.js";
import type { ConnectionDirectory, ConnectionRoute } from "./connection-directory.js";
import type { UpstreamDispatchers } from "./fenced-dispatcher.js";
import type { UpstreamLimits } from "./upstream-call.js";

/** What the Proxy steps need. */
export interface ProxyDependencies {
  authority: CapabilityAuthority;
  connections: ConnectionDirectory;
  tokens: AccessTokenCache;
  dispatchers: UpstreamDispatchers;
  audit: AuditLog;
  canonicalLimits?: Partial<CanonicalLimits>;
  /** Reuses the canonical form of repeated requests (built with `canonicalLimits`); without it every call canonicalizes. */
  canonicalRequests?: CanonicalRequestMemo;
  upstreamLimits?: Partial<UpstreamLimits>;
  /** Where each call's counts and latencies go (proxy-telemetry.ts); none in tests that do not look. */
  metrics?: BrokerMetrics;
  /** Step-up approval (src/approvals); without it a held request is refused with APPROVAL_REQUIRED. */
  approvals?: Approvals;
}

/**
 * The ambient facts of one request, exactly one of each. `url` is the upstream URL built (and fenced) from the same
 * canonical request; Proxy builds it once and sends exactly there. The result is deeply frozen, and a repeated
 * request (the same frozen CanonicalRequest, route, URL and operation) gets the very same object, which lets the
 * capability runtime reuse its compiled facts within the second (authorize.ts).
 */
export function accessRequestOf(
  request: CanonicalRequest,
  route: ConnectionRoute,
  url: UpstreamUrl = buildUpstreamUrl(route.target, request),
  operation = "proxy",
  approved = false,
): AccessRequest {
  const known = accessRequests.get(request);
  if (known && known.route === route && known.url === url && known.operation === operation && known.approved === approved) return known.access;
  const access: AccessRequest = Object.freeze({
    operation,
    tenant: route.tenant,
    connection: route.id,
    provider: route.provider,
    host: url.hostname,
    method: request.method,
    path: request.path,
    query: Object.freeze(request.query.map((q) => Object.freeze({ name: q.name, value: q.value }))) as AccessRequest["query"],
    body: Object.freeze(Object.fromEntries(request.bodyFields)),
    ...(approved ? { approved } : {}),
  });
  accessRequests.set(request, { route, url, operation, approved, access });
  return access;
}

const accessRequests = new WeakMap<CanonicalRequest, { route: ConnectionRoute; url: UpstreamUrl; operation: string; approved: boolean; access: AccessRequest }>();

/** How a Proxy call ended, for its audit event. */
export interface ProxyOutcome {
  startedAt: number;
  upstreamStatus?: number;
  error?: unknown;
}

/**
 * The audit event of one Proxy call (who, what, decision, failing check or policy, upstream status, latency), from
 * what admission established and how the call ended. Never a secret.
 */
export function proxyAuditEntry(known: Partial<Admission>, outcome: ProxyOutcome): AuditEntry {
  const err = outcome.error === undefined ? undefined : CapvaultError.from(outcome.error);
  // A call held for approval was refused too: nothing was sent.
  const denied = err !== undefined && (err.code === status.PERMISSION_DENIED || err.code === status.UNAUTHENTICATED || err.reason.startsWith("APPROVAL_"));
  // A revoked capability is refused before a decision exists; the error still says whose it was.
  const holder = known.decision ?? (err instanceof RevokedCapabilityError ? err : undefined);
  return {
    tenant: known.route?.tenant ?? holder?.tenant ?? "_unrouted",
    action: "proxy",
    subject: holder?.subject ?? "",
    delegationChain: [...(holder?.revocationIds ?? [])],
    connection: known.route?.id ?? known.request?.connection ?? "",
    provider: known.route?.provider ?? "",
    method: known.request?.method ?? "",
    path: known.request?.path ?? "",
    decision: err === undefined ? "allow" : denied ? "deny" : known.decision?.allowed ? "allow" : "error",
    reason: err?.reason ?? "",
    detail: err ? auditDetail(err, known.decision) : "",
    upstreamStatus: outcome.upstreamStatus ?? 0,
    latencyMs: performance.now() - outcome.startedAt,
  };
}

/**
 * The audit detail of a failed call: the error's metadata (e.g. `block=1 check=0`, `host=api.github.com`) and, for a
 * refusal by the capability or a policy, the text of every failing check or policy, so the trail says which rule
 * refused without re-running anything. Rules are Datalog from the token and the policies: never a secret.
 */
function auditDetail(err: CapvaultError, decision: AuthorizeOutput | undefined): string {
  const parts = [Object.entries(err.metadata).map(([k, v]) => `${k}=${v}`).join(" ")];
  if (decision && !decision.allowed) {
    for (const d of decision.denials) {
      const where = d.policy ? `policy ${d.policy}` : d.blockIndex >= 0 ? `block ${d.blockIndex} check ${d.checkIndex}` : "authorizer";
      parts.push(`${where}: ${d.rule}`);
    }
  }
  return parts.filter((p) => p !== "").join("; ");
}
