/**
 * Follow an authorization URL like a browser would (manual redirects, a cookie jar), without executing any page,
 * until the provider redirects to the callback. Returns that callback URL without requesting it, so tests can replay
 * or tamper with it first.
 */
export async function followToCallback(authorizationUrl: string, callbackPrefix: string): Promise<URL> {
  const jar = new Map<string, string>();
  let url = new URL(authorizationUrl);
  let method = "GET";
  for (let hop = 0; hop < 15; hop++) {
    const res = await fetch(url, {
      method,
      redirect: "manual",
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !location) {
      throw new Error(`authorization stopped at ${url.pathname} with HTTP ${res.status}`);
    }
    url = new URL(location, url);
    method = "GET";
    if (url.href.startsWith(callbackPrefix)) return url;
  }
  throw new Error("too many redirects");
}

/** Fetch a callback URL and return its status and visible text. */
export async function openCallback(url: URL | string): Promise<{ status: number; html: string; text: string }> {
  const res = await fetch(url, { redirect: "manual" });
  const html = await res.text();
  const text = html
    .replace(/<style[\s\S]*?<\/style>/g, "")
    .replace(/<title>[\s\S]*?<\/title>/g, "")
    .replace(/<[^>]+>/g, " ")
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
  return { status: res.status, html, text };
}
