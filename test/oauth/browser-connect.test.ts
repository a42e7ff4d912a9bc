import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/free-port.js";
import { openOAuthStore, startBroker, type Broker } from "./support/oauth-harness.js";
import { startOidcServer, type OidcServer } from "./support/oidc-server.js";

const CHROMIUM = "/usr/bin/chromium";
export const SCREENSHOT = "/tmp/capvault-oauth-callback.png";

/** Once in a real browser: headless Chromium clicks through oidc-provider's consent page to capvault's callback page. */
describe("connect in headless Chromium", () => {
  it("has Debian chromium installed (bash .ci/run installs it; locally: apt-get install chromium)", () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing`).toBe(true);
  });

  let env: Awaited<ReturnType<typeof openOAuthStore>>;
  let idp: OidcServer;
  let broker: Broker;
  let browser: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    env = await openOAuthStore();
    await env.store.tenants.insert({ id: "acme", name: "Acme Robotics", createdAt: new Date() });
    const port = await freePort();
    idp = await startOidcServer({ redirectUris: [`http://127.0.0.1:${port}/oauth/callback`] });
    idp.interaction = "page";
    broker = await startBroker(env.store, env.vault, {
      port,
      providerOverrides: { "generic-oidc": { issuer: idp.issuer } },
      clients: { "generic-oidc": { clientId: idp.clientId, clientSecret: idp.clientSecret } },
    });
    profile = mkdtempSync(join(tmpdir(), "capvault-chromium-"));
    // A fresh profile directory: playwright passes it as --user-data-dir.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      viewport: { width: 900, height: 600 },
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await broker?.close();
    await idp?.close();
    await env?.close();
  });

  it("clicks Allow on the consent page and lands on a page that says what was connected", async () => {
    const { authorizationUrl, connectionId } = await broker.oauth.beginConnect({ tenant: "acme", user: "u-alice", provider: "generic-oidc" });
    const page = await browser.newPage();
    await page.goto(authorizationUrl);
    await page.getByRole("button", { name: "Allow" }).click();
    await page.waitForURL((u) => u.href.startsWith(broker.redirectUri));
    const heading = await page.getByRole("heading", { level: 1 }).textContent();
    expect(heading).toBe("Example Identity Provider connected");
    const text = (await page.locator("main").innerText()).replace(/\s+/g, " ");
    expect(text).toContain("Your Example Identity Provider account alice@example.com is now connected to Acme Robotics.");
    expect(text).toContain("You can close this tab.");
    await page.screenshot({ path: SCREENSHOT });
    expect((await broker.oauth.getConnection("acme", connectionId)).status).toBe("active");
    expect(idp.tokenRequests.authorization_code).toBe(1);

    // Reloading the callback (a replayed state) explains itself too.
    await page.reload();
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("This link was already used");
    await page.screenshot({ path: SCREENSHOT.replace(".png", "-replayed.png") });
    expect(idp.tokenRequests.authorization_code).toBe(1);
  }, 60_000);
});
