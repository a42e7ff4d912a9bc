import { describe, expect, it } from "vitest";
import { callbackPageText, renderCallbackPage } from "../../src/oauth/callback-page.js";

describe("callback page", () => {
  it("escapes every value and loads nothing external", () => {
    const html = renderCallbackPage(
      callbackPageText({
        ok: true,
        tenant: "t",
        tenantName: `<img src=x onerror=alert(1)> & "Co"`,
        providerName: "GitHub",
        connection: { id: "c", tenant: "t", user: "u", provider: "github", account: "<script>alert(1)</script>", scopes: [], status: "active", createdAt: new Date(), updatedAt: new Date() },
      }),
    );
    expect(html).not.toContain("<script>");
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("&amp; &quot;Co&quot;");
    expect(html).not.toMatch(/<(link|script|img|iframe|object)\b/i);
    expect(html).not.toMatch(/url\(|@import|https?:\/\//);
    expect(html).toContain('lang="en"');
  });

  it("shows only a well-formed provider error code", () => {
    const text = callbackPageText({ ok: false, failure: "provider_error", reason: "OAUTH_PROVIDER_ERROR", providerName: "Slack", providerError: "server_error" });
    expect(text.paragraphs.join(" ")).toContain("Slack could not complete the sign-in (it said: server_error)");
  });
});
