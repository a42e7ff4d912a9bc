import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

/** One delivery as the receiver saw it: the raw body (what a signature covers) and the headers. */
export interface Delivery {
  body: string;
  headers: IncomingHttpHeaders;
}

/** A loopback HTTP server that records every POST (a Slack bot or pager stand-in); `status` is what it answers. */
export interface WebhookReceiver {
  url: string;
  deliveries: Delivery[];
  status: number;
  /** The next delivery whose JSON body satisfies `match` (waits up to `timeoutMs`). */
  next(match?: (event: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Delivery & { event: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  const receiver = { status: 200 } as WebhookReceiver;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      deliveries.push({ body: Buffer.concat(chunks).toString("utf8"), headers: req.headers });
      res.writeHead(receiver.status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  let seen = 0;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/hooks/capvault`,
    deliveries,
    async next(match: (event: Record<string, unknown>) => boolean = () => true, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        while (seen < deliveries.length) {
          const d = deliveries[seen++];
          const event = JSON.parse(d.body) as Record<string, unknown>;
          if (match(event)) return { ...d, event };
        }
        if (Date.now() > until) throw new Error(`no matching webhook delivery in ${timeoutMs} ms (${deliveries.length} received)`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
