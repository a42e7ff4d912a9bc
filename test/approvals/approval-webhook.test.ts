import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalWebhook, signWebhook, verifyWebhook } from "../../src/approvals/approval-webhook.js";
import { createLogger } from "../../src/log/logger.js";
import type { ApprovalRecord } from "../../src/store/approval-repository.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const SECRET = "whsec-unit-0123456789abcdef";
const approval: ApprovalRecord = {
  id: "apr_AAAAAAAAAAAAAAAAAAAAAA",
  tenant: "acme",
  connection: "conn_1",
  provider: "github",
  method: "DELETE",
  path: "/repos/acme/widgets/branches/old",
  query: "",
  bodySha256: "",
  subject: "agent-7",
  delegationChain: ["aa"],
  reasons: ["delete a branch"],
  linkSecretSha256: "cd".repeat(32),
  createdAt: new Date("2030-01-15T12:00:00Z"),
  expiresAt: new Date("2030-01-15T12:15:00Z"),
};

let hooks: WebhookReceiver;
beforeAll(async () => {
  hooks = await startWebhookReceiver();
});
afterAll(() => hooks.close());

describe("the approval webhook", () => {
  it("retries a failing receiver with backoff until it answers 2xx, each attempt signed", async () => {
    hooks.status = 503;
    const lines: string[] = [];
    const logger = createLogger("info", { write: (l: string) => lines.push(l) } as never);
    const webhook = new ApprovalWebhook({ url: hooks.url, secret: SECRET, logger, retryDelaysMs: [50, 1000, 1000] });
    webhook.notify(approval, "http://127.0.0.1:1/approvals/x?key=k");
    await hooks.next();
    await hooks.next();
    hooks.status = 200;
    await webhook.drain();
    expect(hooks.deliveries.length).toBe(3);
    for (const d of hooks.deliveries) expect(verifyWebhook(SECRET, d.body, String(d.headers["capvault-signature"]))).toBe(true);
    const events = lines.map((l) => (JSON.parse(l) as { event?: string }).event);
    expect(events).toEqual(["approval_webhook_retry", "approval_webhook_retry", "approval_webhook_delivered"]);
  });

  it("signs the exact body and time: another body, another signature or an old time does not verify", () => {
    const body = '{"a":1}';
    const header = signWebhook(SECRET, body, 1_900_000_000);
    expect(verifyWebhook(SECRET, body, header, 1_900_000_100)).toBe(true);
    expect(verifyWebhook(SECRET, '{"a":2}', header, 1_900_000_100)).toBe(false);
    const flipped = header.slice(0, -1) + (header.endsWith("0") ? "1" : "0");
    expect(verifyWebhook(SECRET, body, flipped, 1_900_000_100)).toBe(false);
    expect(verifyWebhook(SECRET, body, header, 1_900_000_000 + 301)).toBe(false);
    expect(verifyWebhook(SECRET, body, undefined)).toBe(false);
    expect(verifyWebhook(SECRET, body, "t=abc,v1=00")).toBe(false);
  });

  it("stops after the last attempt with an error line", async () => {
    hooks.status = 500;
    const before = hooks.deliveries.length;
    const lines: string[] = [];
    const logger = createLogger("info", { write: (l: string) => lines.push(l) } as never);
    const webhook = new ApprovalWebhook({ url: hooks.url, secret: SECRET, logger, retryDelaysMs: [20, 20] });
    webhook.notify(approval, "http://127.0.0.1:1/approvals/x?key=k");
    await webhook.drain();
    expect(hooks.deliveries.length - before).toBe(3);
    const last = JSON.parse(lines.at(-1)!) as { level: number; event: string; attempts: number; outcome: string };
    expect(last).toMatchObject({ level: 50, event: "approval_webhook_failed", attempts: 3, outcome: "HTTP 500" });
  });
});
