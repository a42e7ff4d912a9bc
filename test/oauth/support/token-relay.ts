import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { EventEmitter } from "node:events";

/**
 * A loopback relay in front of a token endpoint. While `holdRefreshes` > 0, it holds each refresh request instead of
 * forwarding it, and drops it for good if the client goes away (a killed broker's request never reaches the provider).
 * Emits "held" when it holds one. While `loseRefreshAnswers` > 0, it forwards each refresh request to the provider and
 * keeps the answer (the provider has rotated the token; the client never learns the new one), emitting "lost".
 */
export interface TokenRelay extends EventEmitter {
  url: string;
  holdRefreshes: number;
  loseRefreshAnswers: number;
  /** The HTTP statuses of the answers kept back (never their bodies: they hold tokens). */
  lostAnswers: number[];
  forwarded: { refresh_token: number; other: number };
  dropped: number;
  close(): Promise<void>;
}

export async function startTokenRelay(upstream: string): Promise<TokenRelay> {
  const relay = new EventEmitter() as TokenRelay;
  relay.holdRefreshes = 0;
  relay.loseRefreshAnswers = 0;
  relay.lostAnswers = [];
  relay.forwarded = { refresh_token: 0, other: 0 };
  relay.dropped = 0;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const grant = new URLSearchParams(body.toString()).get("grant_type");
      if (grant === "refresh_token" && relay.holdRefreshes > 0) {
        relay.holdRefreshes--;
        res.on("close", () => relay.dropped++);
        relay.emit("held");
        return; // never forwarded
      }
      if (grant === "refresh_token") relay.forwarded.refresh_token++;
      else relay.forwarded.other++;
      const headers: Record<string, string> = {};
      for (const h of ["authorization", "content-type", "accept"]) if (req.headers[h]) headers[h] = String(req.headers[h]);
      const lose = grant === "refresh_token" && relay.loseRefreshAnswers > 0;
      if (lose) relay.loseRefreshAnswers--;
      const up = await fetch(upstream, { method: "POST", headers, body });
      if (lose) {
        await up.arrayBuffer();
        relay.lostAnswers.push(up.status);
        relay.emit("lost");
        return; // the provider answered; the client never gets the answer
      }
      res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/json" });
      res.end(Buffer.from(await up.arrayBuffer()));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  relay.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/token`;
  relay.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return relay;
}
