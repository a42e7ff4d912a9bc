import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { AuditEntry } from "../audit/audit-event.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { AuthorizeOutput } from "../capabilities/authorize.js";
import { CapvaultError } from "../errors/capvault-error.js";
import type { CanonicalRequest } from "../proxy/canonical-request.js";
import type { ConnectionRoute } from "../proxy/connection-directory.js";
import type { ApprovalDecisionRecord, ApprovalRecord, ApprovalRepository, ApprovalUseRecord } from "../store/approval-repository.js";
import type { ApprovalNotifier } from "./approval-webhook.js";

/** An approval as the API and the page show it: the stored request, its decision and use, and its state now. */
export interface ApprovalView extends ApprovalRecord {
  state: "pending" | "approved" | "denied" | "used" | "expired";
  decision?: ApprovalDecisionRecord;
  use?: ApprovalUseRecord;
}

export interface ApprovalsOptions {
  store: ApprovalRepository;
  audit: AuditLog;
  /** How long a held call may wait for a decision and then for its one use. */
  ttlMs: number;
  /** The broker's HTTP listener as people reach it (http.publicUrl, else the listener's own URL). */
  pageBaseUrl: () => string;
  notifier?: ApprovalNotifier;
  /** Told of each step, for metrics: held, approved, denied, used, expired (a use found it expired), replayed. */
  onEvent?: (event: ApprovalEvent) => void;
  now?: () => Date;
}

export type ApprovalEvent = "held" | "approved" | "denied" | "used" | "expired" | "replayed";

/** What a held call is: the canonical request, where it goes and whose capability asked. */
export interface HeldCall {
  request: CanonicalRequest;
  route: ConnectionRoute;
  decision: AuthorizeOutput;
}

/**
 * Step-up approval: a call that an organisation approval rule or the capability's approvalMethods mark (denials.ts:
 * APPROVAL_REQUIRED) is held, never sent; a person approves or denies it (ApprovalService, or the one-time page link
 * of the connection's user); the agent repeats the identical call with the approval id, and exactly one such call
 * goes through. Every step is a hash-chained audit event: approval_held, approval_decided, approval_used,
 * approval_expired.
 */
export class Approvals {
  private readonly now: () => Date;

  constructor(private readonly options: ApprovalsOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** Hold a call: store a pending approval, audit it, notify; returns the APPROVAL_REQUIRED error to answer with. */
  async hold(call: HeldCall): Promise<CapvaultError> {
    const { request, route, decision } = call;
    const id = `apr_${randomBytes(16).toString("base64url")}`;
    const secret = randomBytes(32).toString("base64url");
    const createdAt = this.now();
    const record: ApprovalRecord = {
      id,
      tenant: route.tenant,
      connection: route.id,
      provider: route.provider,
      method: request.method,
      path: request.path,
      query: request.queryString,
      bodySha256: sha256(request.body),
      subject: decision.subject,
      delegationChain: [...decision.revocationIds],
      reasons: approvalReasons(decision),
      ...(decision.denials.some((d) => d.approvalShowsBody) && request.body.length ? { body: shownBody(request.body) } : {}),
      linkSecretSha256: sha256(secret),
      createdAt,
      expiresAt: new Date(createdAt.getTime() + this.options.ttlMs),
    };
    const reservation = this.options.audit.reserve();
    await this.options.store.insert(record);
    await reservation.commit(this.event(record, "approval_held", { decision: "ok", detail: `approval=${id} reasons=${record.reasons.join("; ")}` }));
    this.options.onEvent?.("held");
    this.options.notifier?.notify(record, this.linkUrl(id, secret));
    return new CapvaultError("APPROVAL_REQUIRED", undefined, { metadata: { approval_id: id, approval_url: this.pageUrl(id) } });
  }

  /**
   * Check that approval `id` may let this call through: the same tenant, connection and canonical request (method,
   * path, query, body hash), the same capability chain or a narrower one of it, approved, unused, unexpired. Throws
   * the reason it may not (APPROVAL_NOT_FOUND, _MISMATCH, _USED, _DENIED, _EXPIRED, _PENDING).
   */
  async check(id: string, call: HeldCall): Promise<ApprovalView> {
    const view = await this.view(id);
    const { request, route, decision } = call;
    if (!view || view.tenant !== route.tenant) throw new CapvaultError("APPROVAL_NOT_FOUND", undefined, { metadata: { approval_id: id } });
    const sameRequest =
      view.connection === route.id &&
      view.method === request.method &&
      view.path === request.path &&
      view.query === request.queryString &&
      view.bodySha256 === sha256(request.body);
    const sameChain = coversChain(view.delegationChain, decision.revocationIds);
    if (!sameRequest || !sameChain) {
      throw new CapvaultError("APPROVAL_MISMATCH", sameRequest ? "the approval was given to another capability" : "the approval was given for another request", {
        metadata: { approval_id: id },
      });
    }
    switch (view.state) {
      case "approved":
        return view;
      case "used":
        this.options.onEvent?.("replayed");
        throw new CapvaultError("APPROVAL_USED", undefined, { metadata: { approval_id: id } });
      case "denied":
        throw new CapvaultError("APPROVAL_DENIED", undefined, { metadata: { approval_id: id } });
      case "expired":
        await this.options.audit.recordAndWait(this.event(view, "approval_expired", { decision: "deny", reason: "APPROVAL_EXPIRED", detail: `approval=${id}` }));
        this.options.onEvent?.("expired");
        throw new CapvaultError("APPROVAL_EXPIRED", undefined, { metadata: { approval_id: id } });
      default:
        throw new CapvaultError("APPROVAL_PENDING", undefined, { metadata: { approval_id: id, approval_url: this.pageUrl(id) } });
    }
  }

  /** Use a checked approval, exactly once across every broker (an insert-once record); the use is audited first. */
  async consume(view: ApprovalView, subject: string): Promise<void> {
    const reservation = this.options.audit.reserve();
    if (!(await this.options.store.use({ id: view.id, subject, at: this.now() }))) {
      await reservation.commit(this.event(view, "approval_used", { subject, decision: "deny", reason: "APPROVAL_USED", detail: `approval=${view.id} replay` }));
      this.options.onEvent?.("replayed");
      throw new CapvaultError("APPROVAL_USED", undefined, { metadata: { approval_id: view.id } });
    }
    await reservation.commit(this.event(view, "approval_used", { subject, decision: "ok", detail: `approval=${view.id}` }));
    this.options.onEvent?.("used");
  }

  /** Approve or deny a pending approval, once; `via` says through which channel. Audited before it is answered. */
  async decide(
    id: string,
    tenant: string,
    input: { approve: boolean; by: string; via: "api" | "page"; note?: string; byChain?: string[] },
  ): Promise<ApprovalView> {
    const view = await this.view(id);
    if (!view || view.tenant !== tenant) throw new CapvaultError("APPROVAL_NOT_FOUND", undefined, { metadata: { approval_id: id } });
    return this.decideOn(view, input);
  }

  private async decideOn(
    view: ApprovalView,
    input: { approve: boolean; by: string; via: "api" | "page"; note?: string; byChain?: string[] },
  ): Promise<ApprovalView> {
    const id = view.id;
    if (view.state === "expired") throw new CapvaultError("APPROVAL_EXPIRED", undefined, { metadata: { approval_id: id } });
    if (view.state !== "pending") throw new CapvaultError("APPROVAL_DECIDED", undefined, { metadata: { approval_id: id, state: view.state } });
    const note = (input.note ?? "").slice(0, 200);
    const reservation = this.options.audit.reserve();
    const record = { id, approved: input.approve, by: input.by, via: input.via, note, at: this.now() };
    const decided = await this.options.store.decide(record);
    const detail = `approval=${id} via=${input.via}${note ? ` note=${JSON.stringify(note)}` : ""}`;
    if (!decided) {
      await reservation.commit(this.event(view, "approval_decided", { subject: input.by, delegationChain: input.byChain ?? [], decision: "error", reason: "APPROVAL_DECIDED", detail }));
      throw new CapvaultError("APPROVAL_DECIDED", undefined, { metadata: { approval_id: id } });
    }
    // The decider acts here, with its own capability (an operator's) or the link (the connection's user): its chain.
    await reservation.commit(this.event(view, "approval_decided", { subject: input.by, delegationChain: input.byChain ?? [], decision: input.approve ? "allow" : "deny", detail }));
    this.options.onEvent?.(input.approve ? "approved" : "denied");
    return this.withState(view, record, view.use);
  }

  /** Decide through the page: the one-time link secret must match the pending approval's. */
  async decideWithLink(id: string, secret: string, approve: boolean): Promise<ApprovalView> {
    const view = await this.viewWithLink(id, secret);
    return this.decideOn(view, { approve, by: "connection user (approval link)", via: "page" });
  }

  /** The pending approval a link opens, or APPROVAL_LINK_INVALID (forged, already decided or expired: one use only). */
  async viewWithLink(id: string, secret: string): Promise<ApprovalView> {
    const view = await this.view(id);
    if (!view || !secret || !sameHash(sha256(secret), view.linkSecretSha256) || view.state !== "pending") {
      throw new CapvaultError("APPROVAL_LINK_INVALID");
    }
    return view;
  }

  /** One approval with its decision, use and current state, or undefined. */
  async view(id: string): Promise<ApprovalView | undefined> {
    if (!/^apr_[A-Za-z0-9_-]{22}$/.test(id)) return undefined;
    const record = await this.options.store.get(id);
    return record && this.viewOf(record);
  }

  /** A stored approval with its decision, use and current state. */
  private async viewOf(record: ApprovalRecord): Promise<ApprovalView> {
    const [decision, use] = await Promise.all([this.options.store.decision(record.id), this.options.store.used(record.id)]);
    return this.withState(record, decision, use);
  }

  private withState(record: ApprovalRecord, decision: ApprovalDecisionRecord | undefined, use: ApprovalUseRecord | undefined): ApprovalView {
    const { decision: _d, use: _u, state: _s, ...stored } = record as ApprovalView;
    return { ...stored, ...(decision ? { decision } : {}), ...(use ? { use } : {}), state: stateOf(stored, decision, use, this.now()) };
  }

  /** A tenant's approvals, newest first, optionally only those in one state. */
  async list(tenant: string, state: string, limit: number): Promise<ApprovalView[]> {
    const records = await this.options.store.list(tenant, state ? Math.min(limit * 4, 2000) : limit);
    const views = await Promise.all(records.map((r) => this.viewOf(r)));
    return views.filter((v) => !state || v.state === state).slice(0, limit);
  }

  /** The page where the held request can be read (no secret: this is what the agent is told). */
  pageUrl(id: string): string {
    return `${this.options.pageBaseUrl()}/approvals/${id}`;
  }

  /** The one-time link that lets its holder approve or deny (given to operators and the notification webhook only). */
  linkUrl(id: string, secret: string): string {
    return `${this.pageUrl(id)}?key=${secret}`;
  }

  private event(a: ApprovalRecord, action: string, extra: Partial<AuditEntry> & Pick<AuditEntry, "decision">): AuditEntry {
    return {
      tenant: a.tenant,
      action,
      subject: a.subject,
      delegationChain: [...a.delegationChain],
      connection: a.connection,
      provider: a.provider,
      method: a.method,
      path: a.path,
      ...extra,
    };
  }
}

/** Why a decision holds the call: each approval rule's reason or capability block, once. */
export function approvalReasons(decision: AuthorizeOutput): string[] {
  return [...new Set(decision.denials.filter((d) => d.reason === "APPROVAL_REQUIRED").map((d) => d.approval ?? d.rule))];
}

/** Whether `revocationIds` (a capability's blocks) are `chain` or a narrower capability derived from it. */
export function coversChain(chain: readonly string[], revocationIds: readonly string[]): boolean {
  return chain.every((rid, i) => revocationIds[i] === rid);
}

/** Whether a decision refuses a request only because a person must approve it. */
export function needsApproval(decision: AuthorizeOutput): boolean {
  return !decision.allowed && decision.reason === "APPROVAL_REQUIRED";
}

function stateOf(record: ApprovalRecord, decision: ApprovalDecisionRecord | undefined, use: ApprovalUseRecord | undefined, now: Date): ApprovalView["state"] {
  if (use) return "used";
  if (decision && !decision.approved) return "denied";
  if (record.expiresAt.getTime() <= now.getTime()) return "expired";
  return decision ? "approved" : "pending";
}

/** The most body bytes an approval keeps to show the approver. */
const MAX_SHOWN_BODY_BYTES = 4096;

/** A body as the approver reads it: text (cut at 4 KiB with a note), or a note that it is not text. */
function shownBody(body: Buffer): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return `(${body.length} bytes that are not UTF-8 text)`;
  }
  return text.length > MAX_SHOWN_BODY_BYTES ? `${text.slice(0, MAX_SHOWN_BODY_BYTES)}… (${body.length} bytes; the start shown)` : text;
}

function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
