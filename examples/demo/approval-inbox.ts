import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { SIGNATURE_HEADER, verifyWebhook, type ApprovalRequestedEvent } from "../../src/approvals/approval-webhook.js";

/**
 * The demo's stand-in for a Slack bot: a loopback HTTP server that receives the broker's approval webhook, verifies
 * each delivery's signature as docs/approvals.md says, and keeps the events (whose approvalUrl is the one-time link a
 * real bot would send to the connection's user).
 */
export interface ApprovalInbox {
  url: string;
  /** The next verified event (waits up to 10 s). */
  next(): Promise<ApprovalRequestedEvent>;
  /** Deliveries whose signature did not verify. */
  rejected: number;
  close(): Promise<void>;
}

export async function startApprovalInbox(secret: string): Promise<ApprovalInbox> {
  const events: ApprovalRequestedEvent[] = [];
  const inbox = { rejected: 0 } as ApprovalInbox;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const signature = req.headers[SIGNATURE_HEADER];
      if (!verifyWebhook(secret, body, typeof signature === "string" ? signature : undefined)) {
        inbox.rejected++;
        res.writeHead(401).end();
        return;
      }
      events.push(JSON.parse(body) as ApprovalRequestedEvent);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(inbox, {
    url: `http://127.0.0.1:${port}/approvals`,
    async next() {
      const until = Date.now() + 10_000;
      while (!events.length) {
        if (Date.now() > until) throw new Error("no approval webhook arrived within 10 s");
        await new Promise((r) => setTimeout(r, 25));
      }
      return events.shift()!;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

/**
 * What the user does on the approval page, in code (as the demo signs in in code): open the one-time link, read the
 * page, press the button. Returns the page's heading after the decision.
 */
export async function decideOnApprovalPage(link: string, decision: "approve" | "deny"): Promise<{ shown: string; result: string }> {
  const page = await fetch(link);
  const html = await page.text();
  const cookie = (page.headers.get("set-cookie") ?? "").split(";")[0];
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
  const shown = [...html.matchAll(/<dt>([^<]*)<\/dt><dd>([^<]*)<\/dd>/g)].map((m) => `${m[1]}: ${m[2].replace(/&amp;/g, "&").replace(/&#39;/g, "'").replace(/&quot;/g, '"')}`).join("; ");
  const url = new URL(link);
  const posted = await fetch(`${url.origin}${url.pathname}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie, origin: url.origin },
    body: new URLSearchParams({ key: field("key"), csrf: field("csrf"), decision }).toString(),
  });
  const result = /<h1[^>]*>([^<]*)<\/h1>/.exec(await posted.text())?.[1] ?? `HTTP ${posted.status}`;
  return { shown, result };
}
