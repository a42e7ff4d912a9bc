/**
 * Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection, so a proxy never forwards them, in
 * either direction. That covers the fixed list below, every `Proxy-*` header, and every name listed in a
 * `Connection` (or legacy `Proxy-Connection`) header of the same message.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/** Whether `name` (any case) is hop-by-hop on its own, whatever the Connection header says. */
export function isHopByHopHeader(name: string): boolean {
  if (HOP_BY_HOP_HEADERS.has(name) || name.startsWith("proxy-")) return true; // names usually come lower-case
  const n = name.toLowerCase();
  return n !== name && (HOP_BY_HOP_HEADERS.has(n) || n.startsWith("proxy-"));
}

/**
 * Remove every hop-by-hop header from `headers`, including the names that the message's own Connection or
 * Proxy-Connection headers list. Names are compared case-insensitively; order is kept.
 */
export function withoutHopByHopHeaders<T extends { readonly name: string; readonly value: string }>(headers: readonly T[]): T[] {
  const listed = connectionListedNames(headers);
  return headers.filter((h) => {
    const n = h.name.toLowerCase();
    return !isHopByHopHeader(n) && !listed?.has(n);
  });
}

/** The names (lower-case) that a message's Connection or Proxy-Connection headers list; undefined when it has none. */
export function connectionListedNames(headers: readonly { readonly name: string; readonly value: string }[]): Set<string> | undefined {
  let listed: Set<string> | undefined;
  for (const h of headers) {
    const n = h.name.toLowerCase();
    if (n === "connection" || n === "proxy-connection") {
      listed ??= new Set<string>();
      for (const token of h.value.split(",")) {
        const t = token.trim().toLowerCase();
        if (t !== "") listed.add(t);
      }
    }
  }
  return listed;
}
