import { coversChain, type Approvals, type ApprovalView } from "../approvals/approvals.js";
import { bearerCapability, type CapabilityAuthority } from "../capabilities/capability-authority.js";
import { CapvaultError } from "../errors/capvault-error.js";
import type {
  Approval,
  ApprovalServiceServer,
  DecideRequest,
  DecideResponse,
  GetApprovalRequest,
  GetApprovalResponse,
  ListApprovalsRequest,
  ListApprovalsResponse,
  WaitApprovalRequest,
  WaitApprovalResponse,
} from "../gen/capvault/v1/approval.js";
import type { CallContext } from "../server/call-context.js";
import { serverStream, unary } from "../server/rpc-handlers.js";

/** How often WaitApproval looks at the approval (a decision may come from any broker or the page). */
const WAIT_POLL_MS = 250;

/** An approval as the API shows it: the held request and its state; never the link secret or its hash. */
export function toApprovalMessage(v: ApprovalView, pageUrl: string): Approval {
  return {
    id: v.id,
    tenant: v.tenant,
    connection: v.connection,
    provider: v.provider,
    method: v.method,
    path: v.path,
    query: v.query,
    bodySha256: v.bodySha256,
    subject: v.subject,
    delegationChain: [...v.delegationChain],
    reasons: [...v.reasons],
    state: v.state,
    createdAt: v.createdAt,
    expiresAt: v.expiresAt,
    decidedBy: v.decision?.by ?? "",
    decidedVia: v.decision?.via ?? "",
    decidedAt: v.decision?.at,
    approvalUrl: pageUrl,
    body: v.body ?? "",
  };
}

/**
 * The gRPC ApprovalService: operators list, read and decide approvals (operations "approvals-read" and "approve");
 * the held agent (its capability or a narrower one of it) or an operator waits for one.
 */
export function createApprovalService(approvals: Approvals, authority: CapabilityAuthority): ApprovalServiceServer {
  const message = (v: ApprovalView) => toApprovalMessage(v, approvals.pageUrl(v.id));
  const found = async (tenant: string, id: string) => {
    const view = await approvals.view(id);
    if (!view || view.tenant !== tenant) throw new CapvaultError("APPROVAL_NOT_FOUND", undefined, { metadata: { approval_id: id } });
    return view;
  };
  return {
    listApprovals: unary<ListApprovalsRequest, ListApprovalsResponse>("ListApprovals", async (req, ctx) => {
      await authority.requireOperator(ctx, req.tenant, "approvals-read");
      if (req.state && !["pending", "approved", "denied", "used", "expired"].includes(req.state)) {
        throw new CapvaultError("INVALID_REQUEST", "state must be pending, approved, denied, used or expired");
      }
      const limit = Math.min(req.limit || 50, 500);
      return { approvals: (await approvals.list(req.tenant, req.state, limit)).map(message) };
    }),
    getApproval: unary<GetApprovalRequest, GetApprovalResponse>("GetApproval", async (req, ctx) => {
      await authority.requireOperator(ctx, req.tenant, "approvals-read");
      return { approval: message(await found(req.tenant, req.id)) };
    }),
    decide: unary<DecideRequest, DecideResponse>("Decide", async (req, ctx) => {
      const operator = await authority.requireOperator(ctx, req.tenant, "approve");
      const view = await approvals.decide(req.id, req.tenant, { approve: req.approve, by: operator.subject, byChain: operator.revocationIds, via: "api", note: req.note });
      return { approval: message(view) };
    }),
    waitApproval: serverStream<WaitApprovalRequest, WaitApprovalResponse>("WaitApproval", async (req, ctx, write) => {
      let view = await mayWait(approvals, authority, ctx, req.id);
      let shown = "";
      for (;;) {
        if (view.state !== shown) {
          await write({ approval: message(view) });
          shown = view.state;
        }
        if (view.state !== "pending") return;
        await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
        if (ctx.signal.aborted) throw new CapvaultError("CANCELLED");
        view = (await approvals.view(req.id))!;
      }
    }),
  };
}

/** The approval, if the caller's capability may wait for it: an operator of its tenant, or the held capability's chain. */
async function mayWait(approvals: Approvals, authority: CapabilityAuthority, ctx: CallContext, id: string): Promise<ApprovalView> {
  const token = bearerCapability(ctx);
  const view = await approvals.view(id);
  const notFound = new CapvaultError("APPROVAL_NOT_FOUND", undefined, { metadata: { approval_id: id } });
  if (!view) throw notFound;
  const decision = await authority.decide(token, { operation: "approvals-read", tenant: view.tenant });
  const heldChain = decision.tenant === view.tenant && coversChain(view.delegationChain, decision.revocationIds);
  if (!decision.allowed && !heldChain) throw notFound;
  return view;
}
