import { bearerCapability, type CapabilityAuthority } from "../capabilities/capability-authority.js";
import { verifyAuditChain } from "../audit/verify-audit.js";
import { listAuditPage } from "../audit/audit-pages.js";
import { tailAudit } from "../audit/tail-audit.js";
import type {
  AdminServiceServer,
  AuditEvent,
  GetKeyStatusRequest,
  GetKeyStatusResponse,
  ListAuditEventsRequest,
  ListAuditEventsResponse,
  TailAuditEventsRequest,
  TailAuditEventsResponse,
  VerifyAuditRequest,
  VerifyAuditResponse,
} from "../gen/capvault/v1/admin.js";
import { serverStream, unary } from "../server/rpc-handlers.js";
import type { AuditRecord } from "../store/records.js";
import type { Store } from "../store/store.js";
import { keyStatus } from "../vault/key-admin.js";
import type { Kms } from "../vault/kms.js";

export interface AdminServiceDependencies {
  authority: CapabilityAuthority;
  store: Store;
  kms: Kms;
}

/** AdminService: key status and the audit trail, for operators of the tenant concerned. */
export function createAdminService(deps: AdminServiceDependencies): AdminServiceServer {
  const { authority, store } = deps;
  return {
    getKeyStatus: unary<GetKeyStatusRequest, GetKeyStatusResponse>("GetKeyStatus", async (_req, ctx) => {
      const identity = await authority.caps.inspect(bearerCapability(ctx), authority.keys.keys(), authority.revocations.set);
      await authority.requireOperator(ctx, identity.tenant, "key-status");
      const status = await keyStatus({ dataKeys: store.dataKeys, kms: deps.kms });
      return { keys: status.map((k) => ({ keyId: k.id, state: k.state, records: k.dataKeys, createdAt: k.createdAt })) };
    }),

    listAuditEvents: unary<ListAuditEventsRequest, ListAuditEventsResponse>("ListAuditEvents", async (req, ctx) => {
      await authority.requireOperator(ctx, req.tenant, "audit-read");
      const limit = Math.min(Math.max(req.limit || 100, 1), 1000);
      const page = await listAuditPage(store.audit, {
        tenant: req.tenant,
        limit,
        writer: req.writer,
        afterSequence: req.afterSequence,
        pageToken: req.pageToken,
      });
      return { events: page.events.map(toAuditEvent), nextPageToken: page.nextPageToken };
    }),

    tailAuditEvents: serverStream<TailAuditEventsRequest, TailAuditEventsResponse>("TailAuditEvents", async (req, ctx, write) => {
      await authority.requireOperator(ctx, req.tenant, "audit-read");
      for await (const event of tailAudit(store.audit, req.tenant, ctx.signal, {
        writer: req.writer || undefined,
        afterSequence: req.afterSequence,
        fromNow: req.fromNow,
      })) {
        await write({ event: toAuditEvent(event) });
      }
    }),

    verifyAudit: unary<VerifyAuditRequest, VerifyAuditResponse>("VerifyAudit", async (req, ctx) => {
      await authority.requireOperator(ctx, req.tenant, "audit-read");
      const result = await verifyAuditChain(store.audit, req.tenant);
      return {
        ok: result.ok,
        eventsChecked: result.eventsChecked,
        brokenEventId: result.broken?.id ?? "",
        brokenSequence: result.broken?.sequence ?? 0,
        problem: result.broken?.problem ?? "",
        brokenWriter: result.broken?.writer ?? "",
        chainsChecked: result.chainsChecked,
      };
    }),
  };
}

/** An audit record as the API shows it. */
export function toAuditEvent(e: AuditRecord): AuditEvent {
  return {
    id: e.id,
    tenant: e.tenant,
    sequence: e.sequence,
    time: e.time,
    action: e.action,
    subject: e.subject,
    delegationChain: e.delegationChain,
    connection: e.connection,
    provider: e.provider,
    method: e.method,
    path: e.path,
    decision: e.decision,
    reason: e.reason,
    detail: e.detail,
    upstreamStatus: e.upstreamStatus,
    latencyMs: e.latencyMs,
    hash: e.hash,
    previousHash: e.previousHash,
    writer: e.writer,
  };
}

