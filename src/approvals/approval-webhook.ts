import { createHmac, timingSafeEqual } from "node:crypto";
import { request } from "undici";
import type { Logger } from "../log/logger.js";
import type { ApprovalRecord } from "../store/approval-repository.js";

/** Tells someone that a call waits for approval. */
export interface ApprovalNotifier {
  notify(approval: ApprovalRecord, approvalLink: string): void;
}

/** The JSON body of a webhook delivery (docs/approvals.md). Never a capability, an OAuth token or a request body. */
export interface ApprovalRequestedEvent {
  type: "approval.requested";
  id: string;
  tenant: string;
  connection: string;
  provider: string;
  method: string;
  path: string;
  query: string;
  subject: string;
  reasons: string[];
  createdAt: string;
  expiresAt: string;
  /** The one-time page link that approves or denies (whoever holds it decides: deliver it to the right person). */
  approvalUrl: string;
}

/** The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the shared secret>`. */
export const SIGNATURE_HEADER = "capvault-signature";

export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex")}`;
}

/**
 * Verify a delivery as a receiver should (docs/approvals.md): the HMAC over "<t>.<raw body>" must match, compared in
 * constant time, and t must be recent (replays of old deliveries are refused).
 */
export function verifyWebhook(secret: string, body: string, header: string | undefined, nowSeconds = Math.floor(Date.now() / 1000), toleranceSeconds = 300): boolean {
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac("sha256", secret).update(`${t}.${body}`).digest("hex"), "hex");
  return timingSafeEqual(expected, Buffer.from(m[2], "hex"));
}

export interface WebhookOptions {
  url: string;
  secret: string;
  logger: Logger;
  /** Delays between attempts (default 0.5 s, 1 s, 2 s, 4 s, 8 s: six attempts). */
  retryDelaysMs?: number[];
  timeoutMs?: number;
}

/**
 * Deliver each new approval to a webhook (a Slack bot, a pager): a signed JSON POST, retried with backoff until a 2xx
 * answer or the attempts run out (logged; the approval stays pending and can still be decided through the API).
 */
export class ApprovalWebhook implements ApprovalNotifier {
  private readonly delays: number[];
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: WebhookOptions) {
    this.delays = options.retryDelaysMs ?? [500, 1000, 2000, 4000, 8000];
  }

  notify(approval: ApprovalRecord, approvalLink: string): void {
    const event: ApprovalRequestedEvent = {
      type: "approval.requested",
      id: approval.id,
      tenant: approval.tenant,
      connection: approval.connection,
      provider: approval.provider,
      method: approval.method,
      path: approval.path,
      query: approval.query,
      subject: approval.subject,
      reasons: approval.reasons,
      createdAt: approval.createdAt.toISOString(),
      expiresAt: approval.expiresAt.toISOString(),
      approvalUrl: approvalLink,
    };
    const delivery = this.deliver(JSON.stringify(event), approval.id).finally(() => this.pending.delete(delivery));
    this.pending.add(delivery);
  }

  /** Wait for deliveries in flight (shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private async deliver(body: string, id: string): Promise<void> {
    const log = this.options.logger;
    for (let attempt = 0; ; attempt++) {
      let outcome: string;
      try {
        const res = await request(this.options.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "capvault-webhook-id": id,
            [SIGNATURE_HEADER]: signWebhook(this.options.secret, body, Math.floor(Date.now() / 1000)),
          },
          body,
          headersTimeout: this.options.timeoutMs ?? 10_000,
          bodyTimeout: this.options.timeoutMs ?? 10_000,
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) {
          log.info({ event: "approval_webhook_delivered", approval: id, attempt: attempt + 1 }, "approval webhook delivered");
          return;
        }
        outcome = `HTTP ${res.statusCode}`;
      } catch (err) {
        outcome = (err as { code?: string }).code ?? (err as Error).name;
      }
      if (attempt >= this.delays.length) {
        log.error({ event: "approval_webhook_failed", approval: id, attempts: attempt + 1, outcome }, "approval webhook not delivered: giving up");
        return;
      }
      log.warn({ event: "approval_webhook_retry", approval: id, attempt: attempt + 1, outcome }, "approval webhook failed; retrying");
      // Retries do not keep a stopping broker alive: an undelivered approval can still be decided through the API.
      await new Promise((r) => setTimeout(r, this.delays[attempt]).unref());
    }
  }
}
