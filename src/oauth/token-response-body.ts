/** Small readers and writers of token-endpoint bodies, shared by the provider normalizers. */

/** A JSON response with the given status, for normalizers. */
export function jsonResponse(status: number, body: Record<string, unknown>, from: Response): Response {
  const headers = new Headers({ "content-type": "application/json", "cache-control": "no-store" });
  const www = from.headers.get("www-authenticate");
  if (www && status === 401) headers.set("www-authenticate", www);
  return new Response(JSON.stringify(body), { status, headers });
}

/** Read a body that may be JSON or form-encoded into a plain object; undefined if it is neither. */
export async function readLooseBody(response: Response): Promise<Record<string, unknown> | undefined> {
  const text = await response.text();
  const type = response.headers.get("content-type") ?? "";
  if (type.includes("application/x-www-form-urlencoded")) return Object.fromEntries(new URLSearchParams(text));
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Numbers that arrive as strings in form-encoded answers. */
export function asNumber(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "string" && /^\d+$/.test(v)) return Number(v);
  return undefined;
}
