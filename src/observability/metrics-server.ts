import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { BrokerMetrics } from "./metrics.js";

/** A running metrics listener. */
export interface MetricsServer {
  /** e.g. "http://127.0.0.1:9464/metrics". */
  url: string;
  close(): Promise<void>;
}

/**
 * Serve `GET /metrics` (Prometheus text exposition) on its own listener, apart from gRPC and the OAuth callback, so
 * it can be bound to an address only the scraper reaches. Nothing else is served.
 */
export async function startMetricsServer(addr: string, metrics: BrokerMetrics): Promise<MetricsServer> {
  const colon = addr.lastIndexOf(":");
  const host = addr.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(addr.slice(colon + 1));
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://metrics.invalid").pathname;
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    metrics.scrape().then(
      (text) => res.writeHead(200, { "content-type": metrics.registry.contentType, "cache-control": "no-store" }).end(req.method === "HEAD" ? undefined : text),
      () => res.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n"),
    );
  });
  await listen(server, host, port);
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shownHost}:${bound.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
