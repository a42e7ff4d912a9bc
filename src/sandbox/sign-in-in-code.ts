/**
 * Play alice's browser: follow the authorization URL's redirects with a cookie jar (no page is rendered, no script
 * runs) until the provider sends the browser back to the broker's callback, then open that callback like the
 * browser would and return what the page says.
 */
export async function signInInCode(authorizationUrl: string, callbackUrl: string): Promise<{ hops: string[]; page: string; status: number }> {
  const jar = new Map<string, string>();
  const hops: string[] = [];
  let url = new URL(authorizationUrl);
  for (let hop = 0; hop < 15; hop++) {
    hops.push(url.pathname);
    const res = await fetch(url, { redirect: "manual", headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !location) throw new Error(`the sign-in stopped at ${url.pathname} with HTTP ${res.status}`);
    url = new URL(location, url);
    if (url.href.startsWith(callbackUrl)) {
      hops.push(url.pathname);
      const page = await fetch(url, { redirect: "manual" });
      return { hops, status: page.status, page: visibleText(await page.text()) };
    }
  }
  throw new Error("the sign-in went through too many redirects");
}

function visibleText(html: string): string {
  return html
    .replace(/<(style|title|script)[\s\S]*?<\/\1>/g, "")
    .replace(/<[^>]+>/g, " ")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
}
