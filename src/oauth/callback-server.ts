import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CapvaultError } from "../errors/capvault-error.js";
import type { CallbackOutcome } from "./callback.js";
import { callbackPageText, renderCallbackPage, type CallbackPageText } from "./callback-page.js";
import { errorName, silentLogger, type OAuthLogger } from "./oauth-events.js";

/** The part of the OAuth module the callback server needs. */
export interface CallbackHandler {
  /** The exact redirect URI registered at the providers; its path is the one served. */
  readonly redirectUri: string;
  handleCallback(params: URLSearchParams): Promise<CallbackOutcome>;
}

export interface CallbackServerOptions {
  /** `host:port` to listen on; default "127.0.0.1:8080". Port 0 picks a free port. */
  addr?: string;
  oauth: CallbackHandler;
  logger?: OAuthLogger;
  /** Other pages served by this listener (the approval page): true when it answered the request. */
  pages?: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;
}

/** A running callback listener. */
export interface CallbackServer {
  /** The base URL it listens on, e.g. "http://127.0.0.1:8080". */
  url: string;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  pragma: "no-cache",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
};

/**
 * Serve `GET <path of redirectUri>` (by default /oauth/callback) over node:http: complete the authorization response
 * and answer with a small HTML page saying what was connected, or why not. Anything else is a 404/405 page.
 */
export async function startCallbackServer(options: CallbackServerOptions): Promise<CallbackServer> {
  const { host, port } = parseAddr(options.addr ?? "127.0.0.1:8080");
  const logger = options.logger ?? silentLogger;
  const path = new URL(options.oauth.redirectUri).pathname;

  const server = createServer((req, res) => {
    serve(req, res).catch((err) => {
      logger.error({ err: errorName(err) }, "callback server failed");
      send(res, 500, { ok: false, title: "Something went wrong", paragraphs: ["Please go back to the app and try again."] });
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://callback.invalid");
    if (url.pathname !== path && options.pages && (await options.pages(req, res, url))) return;
    if (url.pathname !== path) {
      send(res, 404, { ok: false, title: "Page not found", paragraphs: ["There is nothing here."] });
      return;
    }
    if (req.method !== "GET") {
      res.setHeader("allow", "GET");
      send(res, 405, { ok: false, title: "Method not allowed", paragraphs: ["Open this page with a normal link."] });
      return;
    }
    const outcome = await options.oauth.handleCallback(url.searchParams);
    send(res, outcome.ok ? 200 : 400, callbackPageText(outcome));
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, text: CallbackPageText): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, SECURITY_HEADERS);
  res.end(renderCallbackPage(text));
}

function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!m) throw new CapvaultError("CONFIG_INVALID", `invalid callback listen address "${addr}" (expected host:port)`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port: Number(m[3]) };
}
