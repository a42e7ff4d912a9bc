/**
 * The broker's peers for bench/proxy.ts, in their own process so that the relay or broker process is measured alone:
 * an HTTPS API upstream on 127.0.0.1 (the test CA's certificate, SAN localhost) and oidc-provider as the user's OAuth
 * provider (used only while connecting the account).
 *
 *   node --import tsx bench/support/peers.ts <redirect-uri>
 *
 * Reports { upstreamPort, issuer, clientId, clientSecret } to the parent over the IPC channel, then serves until the
 * parent disconnects or sends SIGTERM.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { startOidcServer } from "../../test/oauth/support/oidc-server.js";
import { FIXTURES } from "./paths.js";

export interface PeersReady {
  upstreamPort: number;
  issuer: string;
  clientId: string;
  clientSecret: string;
}

const redirectUri = process.argv[2];
if (!redirectUri || !process.send) {
  process.stderr.write("usage: spawned by bench/proxy.ts with an IPC channel and the broker's OAuth redirect URI\n");
  process.exit(2);
}

// A small JSON answer, like the test harness's upstream: method, path+query, body size. Nothing is recorded, so the
// upstream's own memory stays flat however many calls it serves.
const upstream = createServer(
  { key: readFileSync(`${FIXTURES}/test-server-key.pem`), cert: readFileSync(`${FIXTURES}/test-server.pem`) },
  (req, res) => {
    let bytes = 0;
    req.on("data", (c: Buffer) => (bytes += c.length));
    req.on("end", () => {
      const body = JSON.stringify({ method: req.method, url: req.url, bodyBytes: bytes });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  },
);
// Node closes idle keep-alive sockets after 5 s by default; the bench pauses longer than that between segments and
// must not pay TLS handshakes inside a timed loop.
upstream.keepAliveTimeout = 120_000;
upstream.headersTimeout = 121_000;
await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", () => resolve()));

const idp = await startOidcServer({ redirectUris: [redirectUri] });
const ready: PeersReady = {
  upstreamPort: (upstream.address() as AddressInfo).port,
  issuer: idp.issuer,
  clientId: idp.clientId,
  clientSecret: idp.clientSecret,
};
process.send(ready);

const stop = () => {
  upstream.closeAllConnections();
  upstream.close();
  void idp.close().finally(() => process.exit(0));
};
process.on("disconnect", stop);
process.on("SIGTERM", stop);
