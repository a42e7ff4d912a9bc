import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { CapvaultError } from "../errors/capvault-error.js";
import { escapeHtml } from "../oauth/callback-page.js";
import type { Approvals, ApprovalView } from "./approvals.js";

/*
 * The approval page on the broker's HTTP listener: GET /approvals/<id> shows a held request; with the one-time link
 * (?key=...) it offers Approve and Deny. The form is protected against cross-site requests three ways: the link
 * secret travels in the POST body (a forger does not have it), a double-submit token (an HttpOnly SameSite=Strict
 * cookie that must equal a hidden field), and the Origin header, when sent, must be this listener's. The page has no
 * script and shows no token: the request's method, path, query, who asks and why it is held.
 */

const CSRF_COOKIE = "capvault_approval_csrf";
const MAX_FORM_BYTES = 4096;

const HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  pragma: "no-cache",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  // Not no-referrer: with it a browser sends `Origin: null` on the form post. same-origin still keeps the link (its
  // secret is in the query) from leaking to any other site.
  "referrer-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
};

/** Serve /approvals/<id> (GET and POST); answers false for any other path. */
export function approvalPages(approvals: Approvals): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean> {
  return async (req, res, url) => {
    const m = /^\/approvals\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname);
    if (!m) return false;
    const id = m[1];
    if (req.method === "GET") await showPage(approvals, id, url.searchParams.get("key") ?? "", res);
    else if (req.method === "POST") await decideOnPage(approvals, id, req, res);
    else {
      res.setHeader("allow", "GET, POST");
      send(res, 405, page("Method not allowed", ["Open this page with the link you were sent."], "alert"));
    }
    return true;
  };
}

async function showPage(approvals: Approvals, id: string, key: string, res: ServerResponse): Promise<void> {
  if (!key) {
    const view = await approvals.view(id);
    if (!view) return send(res, 404, page("No such request", ["There is no approval request here."], "alert"));
    return send(res, 200, page(`Request ${view.state}`, [stateLine(view), "To approve or deny it, open the link from your approval notification."], "status", details(view)));
  }
  let view: ApprovalView;
  try {
    view = await approvals.viewWithLink(id, key);
  } catch (err) {
    if (CapvaultError.is(err, "APPROVAL_LINK_INVALID")) return invalidLink(res);
    throw err;
  }
  const csrf = randomBytes(24).toString("base64url");
  res.setHeader("set-cookie", `${CSRF_COOKIE}=${csrf}; Path=/approvals/; HttpOnly; SameSite=Strict; Max-Age=900`);
  const form = `<form method="post" action="/approvals/${escapeHtml(id)}">
    <input type="hidden" name="key" value="${escapeHtml(key)}">
    <input type="hidden" name="csrf" value="${csrf}">
    <button type="submit" name="decision" value="approve" class="approve">Approve</button>
    <button type="submit" name="decision" value="deny" class="deny">Deny</button>
  </form>`;
  send(res, 200, page("An agent asks for your approval", [`${view.subject || "An agent"} wants to send this request with your ${view.provider} account. It is held until you decide; approving lets it through once.`], "status", details(view) + form));
}

async function decideOnPage(approvals: Approvals, id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const form = await readForm(req);
  const origin = req.headers.origin;
  const host = req.headers.host;
  const cookie = cookieValue(req.headers.cookie, CSRF_COOKIE);
  const csrfOk = !!form && !!cookie && sameString(cookie, form.get("csrf") ?? "") && (origin === undefined || origin === `http://${host}` || origin === `https://${host}`);
  if (!form || !csrfOk) return send(res, 403, page("Request refused", ["This form did not come from the approval page. Open the link from your notification again."], "alert"));
  const decision = form.get("decision");
  if (decision !== "approve" && decision !== "deny") return send(res, 400, page("Choose Approve or Deny", ["Open the link from your notification again."], "alert"));
  let view: ApprovalView;
  try {
    view = await approvals.decideWithLink(id, form.get("key") ?? "", decision === "approve");
  } catch (err) {
    if (CapvaultError.is(err, "APPROVAL_LINK_INVALID") || CapvaultError.is(err, "APPROVAL_DECIDED") || CapvaultError.is(err, "APPROVAL_EXPIRED")) return invalidLink(res);
    throw err;
  }
  res.setHeader("set-cookie", `${CSRF_COOKIE}=; Path=/approvals/; HttpOnly; SameSite=Strict; Max-Age=0`);
  const approved = view.state === "approved";
  send(
    res,
    200,
    page(approved ? "Approved" : "Denied", [approved ? "The agent may now send this request, once." : "The request will not be sent."], "status", details(view)),
  );
}

function invalidLink(res: ServerResponse): void {
  send(res, 403, page("This link is not valid", ["The link is wrong, was already used, or the request expired. Nothing was decided."], "alert"));
}

function stateLine(view: ApprovalView): string {
  const words: Record<ApprovalView["state"], string> = {
    pending: "This request is waiting for a person's approval.",
    approved: "This request was approved; the agent may send it once.",
    denied: "This request was denied.",
    used: "This request was approved and sent.",
    expired: "This request expired before it was decided or used.",
  };
  return words[view.state];
}

function details(view: ApprovalView): string {
  const rows: Array<[string, string]> = [
    ["Request", `${view.method} ${view.path}${view.query ? `?${view.query}` : ""}`],
    ["Account", `${view.provider} (connection ${view.connection})`],
    ["Asked by", view.subject || "unknown"],
    ["Why it is held", view.reasons.join("; ")],
    ...(view.body !== undefined ? [["Body", view.body] as [string, string]] : []),
    ["Expires", view.expiresAt.toISOString()],
  ];
  return `<dl>${rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join("")}</dl>`;
}

function page(title: string, paragraphs: string[], role: "status" | "alert", extra = ""): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${escapeHtml(title)} · capvault</title>
<style>
  :root { color-scheme: light dark; }
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: #f6f7f9; color: #1f2328;
         font: 17px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  main { max-width: 38rem; margin: 1.5rem; padding: 2rem 2.25rem; background: #fff; border-radius: 12px;
         box-shadow: 0 1px 3px rgba(0,0,0,.12), 0 8px 24px rgba(0,0,0,.06); border-top: 6px solid #9a6700; }
  h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; margin: 1rem 0; }
  dt { font-weight: 600; } dd { margin: 0; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
  button { font: inherit; padding: .5rem 1.4rem; border-radius: 8px; border: 0; color: #fff; cursor: pointer; margin-right: .75rem; }
  .approve { background: #1a7f37; } .deny { background: #b42318; }
  .brand { margin-top: 1.5rem; font-size: .85rem; color: #59636e; }
  @media (prefers-color-scheme: dark) { body { background: #0d1117; color: #e6edf3; } main { background: #161b22; } }
</style>
</head>
<body>
<main role="${role}" aria-labelledby="title">
  <h1 id="title">${escapeHtml(title)}</h1>
${paragraphs.map((p) => `  <p>${escapeHtml(p)}</p>`).join("\n")}
  ${extra}
  <p class="brand">capvault</p>
</main>
</body>
</html>
`;
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, HEADERS);
  res.end(html);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers["content-type"] ?? "")) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
