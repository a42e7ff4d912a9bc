import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const CERTS = certsDirectory();
/** The sandbox CA (SANDBOX ONLY: its key was thrown away; it signed only demo-api.pem, for localhost). */
export const SANDBOX_CA_FILE = join(CERTS, "demo-ca.pem");

/** src/sandbox/certs, from src/ or dist/ (tsc does not copy the PEM files). */
function certsDirectory(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(dir, "certs", "demo-ca.pem"))) return join(dir, "certs");
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find src/sandbox/certs");
    dir = parent;
  }
  return join(dir, "src", "sandbox", "certs");
}

/** One request as the sandbox API saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  /** The Authorization header exactly as received (only the sandbox API and the broker ever hold it). */
  authorization: string;
  status: number;
}

/**
 * The sandbox API (for `capvault dev`, the demo and tests): a small GitHub-like HTTPS API on loopback, a few
 * repositories of the "acme" organisation, bearer tokens of the sandbox OAuth provider required.
 */
export interface SandboxApi {
  port: number;
  /** https://localhost:<port> (the certificate's name is localhost). */
  baseUrl: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

type Json = Record<string, unknown> | Array<Record<string, unknown>>;

const REPOS: Record<string, Json> = {
  "/repos/acme/widgets": { full_name: "acme/widgets", private: false, open_issues_count: 2, default_branch: "main" },
  "/repos/acme/widgets/issues": [
    { number: 42, title: "Widgets squeak when turned clockwise", state: "open", user: { login: "bob" } },
    { number: 41, title: "Add a metric widget size", state: "open", user: { login: "carol" } },
  ],
  "/repos/acme/gadgets": { full_name: "acme/gadgets", private: false, open_issues_count: 0, default_branch: "main" },
  "/repos/acme/secrets": { full_name: "acme/secrets", private: true, description: "production credentials" },
};

/**
 * Start the sandbox API. `checkToken` says whether a bearer token is a live token of the sandbox OAuth provider (the API
 * asks the provider, like a resource server would); anything else is answered 401.
 */
export async function startSandboxApi(checkToken: (token: string) => Promise<{ accountId: string } | undefined>): Promise<SandboxApi> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer({ key: readFileSync(join(CERTS, "demo-api-key.pem")), cert: readFileSync(join(CERTS, "demo-api.pem")) });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err) => send(res, 500, { message: String(err) }));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for await (const _ of req); // drain any body
    const authorization = req.headers.authorization ?? "";
    const seen: SeenRequest = { method: req.method ?? "", url: req.url ?? "", authorization, status: 0 };
    requests.push(seen);
    const token = /^Bearer (\S+)$/.exec(authorization)?.[1];
    const holder = token ? await checkToken(token) : undefined;
    if (!holder) return void (seen.status = send(res, 401, { message: "Bad credentials" }));
    const path = new URL(req.url ?? "/", "https://localhost").pathname;
    // Deleting a branch (GitHub answers 204): the demo's step-up approval story.
    if (req.method === "DELETE" && /^\/repos\/acme\/widgets\/branches\/[A-Za-z0-9._-]+$/.test(path)) {
      res.writeHead(204, { "x-sandbox-viewer": holder.accountId }).end();
      return void (seen.status = 204);
    }
    const body = REPOS[path];
    if (req.method !== "GET" || body === undefined) return void (seen.status = send(res, 404, { message: "Not Found" }));
    seen.status = send(res, 200, body, { "x-sandbox-viewer": holder.accountId });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    baseUrl: `https://localhost:${port}`,
    requests,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): number {
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    // A cookie and a server header the broker will not pass on to the agent (response headers are allowlisted).
    "set-cookie": "api_session=sandbox-upstream-session; HttpOnly",
    "x-served-by": "capvault-sandbox-api",
    ...headers,
  });
  res.end(JSON.stringify(body));
  return status;
}
