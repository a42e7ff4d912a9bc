import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhook } from "../../src/approvals/approval-webhook.js";
import { CapvaultClientError, type CapvaultClient } from "../../src/client/index.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";
import { parsePrometheusText, seriesValue } from "../support/prometheus-text.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

/**
 * The approval page in headless Chromium, on a whole broker (FerretDB, oidc-provider, a recording upstream): an
 * agent's call is held by an organisation approval rule, the signed webhook delivers the one-time link, a person opens
 * it, reads what is asked and why, and approves or denies; a reused or forged link decides nothing; the page never
 * shows a token; and the approved call goes upstream exactly once.
 */

const CHROMIUM = "/usr/bin/chromium";
const SECRET = "whsec-test-0123456789abcdef";
const RULE = [
  'approval_required("read a secret report") <- method("GET"), path($p), $p.starts_with("/repos/acme/secret/");',
  'approval_required("comment on a secret report", "show body") <- method("POST"), path($p), $p.starts_with("/repos/acme/secret/");',
].join("\n");

let t: TestBroker;
let hooks: WebhookReceiver;
let browser: BrowserContext;
let profile: string;
let connection: string;
let agentToken: string;
let agent: CapvaultClient;

beforeAll(async () => {
  hooks = await startWebhookReceiver();
  t = await startTestBroker({
    exposeSecrets: true,
    policies: { "approvals.datalog": RULE },
    config: { "approvals.webhookUrl": hooks.url, "approvals.webhookSecret": SECRET, "metrics.addr": "127.0.0.1:0" },
  });
  connection = await t.connectAccount("alice");
  agentToken = (
    await t.mint(
      [
        { connection, method: "GET", pathPrefix: "/repos/" },
        { connection, method: "POST", pathPrefix: "/repos/" },
      ],
      3600,
      "report-agent",
    )
  ).token;
  agent = t.client(agentToken);
  profile = mkdtempSync(join(tmpdir(), "capvault-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 900, height: 700 },
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}, 90_000);
afterAll(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await t?.close();
  await hooks?.close();
});

/** Make a call that is held; the approval id, the page URL the agent was told, and the link the webhook delivered. */
async function held(path: string, post?: object): Promise<{ id: string; pageUrl: string; link: string; raw: string; signature: string }> {
  const err = await agent.fetch(connection, post ? { method: "POST", path, body: post } : { path }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CapvaultClientError);
  expect((err as CapvaultClientError).reason).toBe("APPROVAL_REQUIRED");
  const { approval_id: id, approval_url: pageUrl } = (err as CapvaultClientError).metadata;
  expect(id).toMatch(/^apr_/);
  expect(pageUrl).toBe(`${t.broker.httpUrl}/approvals/${id}`);
  const delivery = await hooks.next((e) => e.id === id);
  return { id, pageUrl, link: String(delivery.event.approvalUrl), raw: delivery.body, signature: String(delivery.headers["capvault-signature"]) };
}

const upstreamCalls = (path: string) => t.upstream.requests.filter((r) => r.url === path).length;

describe("the approval page in headless Chromium", () => {
  it("has Debian chromium installed (bash .ci/run installs it)", () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing`).toBe(true);
  });

  it("shows what is asked and why, approves once, and the approved call goes upstream exactly once", async () => {
    const path = "/repos/acme/secret/q3-report";
    const h = await held(path);
    expect(upstreamCalls(path)).toBe(0);

    const page = await browser.newPage();
    // The URL the agent was told shows the request, but offers no decision: that needs the link.
    await page.goto(h.pageUrl);
    expect(await page.locator("h1").textContent()).toBe("Request pending");
    expect(await page.locator("button").count()).toBe(0);

    const response = await page.goto(h.link);
    expect(response?.status()).toBe(200);
    const text = await page.locator("main").innerText();
    expect(text).toContain(`GET ${path}`);
    expect(text).toContain("read a secret report");
    expect(text).toContain("report-agent");
    const html = await page.content();
    const secrets = await t.secretsOf(connection);
    for (const secret of [agentToken, ...secrets.accessTokens, ...secrets.refreshTokens]) expect(html.includes(secret)).toBe(false);
    await page.screenshot({ path: "/tmp/capvault-approval-page.png" });

    await page.getByRole("button", { name: "Approve" }).click();
    await page.waitForLoadState();
    expect(await page.locator("h1").textContent()).toBe("Approved");

    // The link worked once: opened again it decides nothing.
    const again = await page.goto(h.link);
    expect(again?.status()).toBe(403);
    expect(await page.locator("h1").textContent()).toBe("This link is not valid");
    await page.close();

    const res = await agent.fetch(connection, { path, approvalId: h.id });
    expect(res.status).toBe(200);
    expect(upstreamCalls(path)).toBe(1);
    const replay = await agent.fetch(connection, { path, approvalId: h.id }).then(
      () => undefined,
      (e: unknown) => e as CapvaultClientError,
    );
    expect(replay?.reason).toBe("APPROVAL_USED");
    expect(upstreamCalls(path)).toBe(1);
  });

  it("denies: the agent's repeat is refused and nothing goes upstream", async () => {
    const path = "/repos/acme/secret/salaries";
    const h = await held(path);
    const page = await browser.newPage();
    await page.goto(h.link);
    await page.getByRole("button", { name: "Deny" }).click();
    await page.waitForLoadState();
    expect(await page.locator("h1").textContent()).toBe("Denied");
    await page.close();
    const refused = await agent.fetch(connection, { path, approvalId: h.id }).then(
      () => undefined,
      (e: unknown) => e as CapvaultClientError,
    );
    expect(refused?.reason).toBe("APPROVAL_DENIED");
    expect(upstreamCalls(path)).toBe(0);
  });

  it("refuses a forged link and a cross-site form post, and decides nothing", async () => {
    const path = "/repos/acme/secret/roadmap";
    const h = await held(path);
    const page = await browser.newPage();
    const forged = new URL(h.link);
    forged.searchParams.set("key", `${forged.searchParams.get("key")!.slice(0, -2)}AA`);
    expect((await page.goto(forged.href))?.status()).toBe(403);
    expect(await page.locator("h1").textContent()).toBe("This link is not valid");
    // A page elsewhere posting the form (with the real key, but without the page's CSRF cookie and field) is refused.
    const key = new URL(h.link).searchParams.get("key")!;
    const post = await fetch(h.pageUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://evil.example" },
      body: new URLSearchParams({ key, decision: "approve", csrf: "guess" }).toString(),
    });
    expect(post.status).toBe(403);
    await page.goto(h.pageUrl);
    expect(await page.locator("h1").textContent()).toBe("Request pending");
    await page.close();
    const still = await agent.fetch(connection, { path, approvalId: h.id }).then(
      () => undefined,
      (e: unknown) => e as CapvaultClientError,
    );
    expect(still?.reason).toBe("APPROVAL_PENDING");
    expect(upstreamCalls(path)).toBe(0);
  });
});

describe("a rule that shows the body", () => {
  it("shows the approver the request body on the page (escaped), and not in the webhook", async () => {
    const path = "/repos/acme/secret/q3-report/comments";
    const h = await held(path, { body: "Numbers <b>look</b> fine & ship it" });
    expect(h.raw).not.toContain("look");
    const page = await browser.newPage();
    await page.goto(h.link);
    const text = await page.locator("main").innerText();
    expect(text).toContain('{"body":"Numbers <b>look</b> fine & ship it"}');
    expect(text).toContain("comment on a secret report");
    expect(await page.locator("main b").count()).toBe(0);
    await page.close();
  });
});

describe("the approval webhook", () => {
  it("delivers a signed event that a receiver verifies; a wrong secret or an edited body does not verify; no token in it", async () => {
    const h = await held("/repos/acme/secret/webhook-check");
    expect(verifyWebhook(SECRET, h.raw, h.signature)).toBe(true);
    expect(verifyWebhook("another-secret-0123456789", h.raw, h.signature)).toBe(false);
    expect(verifyWebhook(SECRET, h.raw.replace("webhook-check", "webhook-chekc"), h.signature)).toBe(false);
    // An old delivery replayed later is refused by the timestamp.
    expect(verifyWebhook(SECRET, h.raw, h.signature, Math.floor(Date.now() / 1000) + 3600)).toBe(false);
    const event = JSON.parse(h.raw) as Record<string, unknown>;
    expect(event).toMatchObject({ type: "approval.requested", id: h.id, method: "GET", path: "/repos/acme/secret/webhook-check", reasons: ["read a secret report"], subject: "report-agent" });
    const secrets = await t.secretsOf(connection);
    for (const secret of [agentToken, ...secrets.accessTokens, ...secrets.refreshTokens]) expect(h.raw.includes(secret)).toBe(false);
  });
});

describe("approval metrics", () => {
  it("count every step of the calls above: 5 held, 1 approved, 1 denied, 1 used, 1 replayed", async () => {
    const families = parsePrometheusText(await (await fetch(t.broker.metricsUrl!)).text());
    const count = (event: string) => seriesValue(families, "capvault_approvals_total", { event }) ?? 0;
    expect({ held: count("held"), approved: count("approved"), denied: count("denied"), used: count("used"), replayed: count("replayed"), expired: count("expired") }).toEqual({
      held: 5,
      approved: 1,
      denied: 1,
      used: 1,
      replayed: 1,
      expired: 0,
    });
  });
});
