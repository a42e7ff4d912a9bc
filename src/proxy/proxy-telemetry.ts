import { trace } from "@opentelemetry/api";
import type { AuditEntry } from "../audit/audit-event.js";
import type { AccessFields } from "../observability/access-log.js";
import { CapvaultError } from "../errors/capvault-error.js";
import { inStepSpan, tracingEnabled } from "../observability/tracing.js";
import type { AdmissionResult } from "./admission.js";
import type { ProxyDependencies } from "./proxy-pipeline.js";

/**
 * What operators see of each Proxy step, kept around the steps rather than inside them: a child span and a latency
 * histogram for admission (authorization) and each upstream call, a child span for resolving and refreshing the
 * credential, and one count per finished call. Span attributes are a provider id, a status, a reason: never a token,
 * a path, a query value or a body.
 */

/** Admission (authenticate, canonicalize, route, authorize) as the "authorize" span, timed. */
export function observeAdmission(deps: ProxyDependencies, admitting: () => Promise<AdmissionResult>): Promise<AdmissionResult> {
  // Without tracing there is no span to describe: only the timing (this runs on every call).
  if (!tracingEnabled()) return deps.metrics ? deps.metrics.timeAuthorization(admitting) : admitting();
  return inStepSpan("authorize", async () => {
    const result = await (deps.metrics ? deps.metrics.timeAuthorization(admitting) : admitting());
    const span = trace.getActiveSpan();
    if (result.ok) span?.setAttributes({ "capvault.decision": "allow", "capvault.provider": result.admission.route.provider });
    else span?.setAttributes({ "capvault.decision": "refuse", "capvault.reason": CapvaultError.from(result.error).reason });
    return result;
  });
}

/** One upstream HTTP call (to its response head) as the "upstream" span, timed by provider and status class. */
export function observeUpstream<T extends { status: number }>(deps: ProxyDependencies, provider: string, call: () => Promise<T>): Promise<T> {
  return inStepSpan("upstream", () => (deps.metrics ? deps.metrics.timeUpstream(provider, call) : call()), { "capvault.provider": provider });
}

/** Resolving (from the cache or the store) or refreshing the connection's access token, as a "credential" span. */
export function observeCredential<T>(kind: "resolve" | "refresh", step: () => Promise<T>): Promise<T> {
  return inStepSpan(`credential.${kind}`, step);
}

/**
 * A finished call: counted (provider, decision, reason, latency) and described for the access log line, then handed
 * on unchanged to the audit step.
 */
export function observed(deps: ProxyDependencies, entry: AuditEntry, access: AccessFields): AuditEntry {
  deps.metrics?.proxyCall(entry);
  access.tenant = entry.tenant;
  access.subject = entry.subject;
  access.connection = entry.connection;
  access.decision = entry.decision;
  if (entry.upstreamStatus) access.upstreamStatus = entry.upstreamStatus;
  return entry;
}
