import type { HttpRequest } from "../gen/capvault/v1/common.js";
import { canonicalizeRequest, type CanonicalLimits, type CanonicalRequest } from "./canonical-request.js";

/**
 * Recently canonicalized bodiless requests, by their exact raw form. canonicalizeRequest is a pure function of the
 * request and the limits, and its result is deeply frozen, so a repeat (an agent polling an endpoint, a fan-out of the
 * same call) gets the very same CanonicalRequest without redoing the work. The key is every raw field, each with its
 * length before it (so two different requests never share a key); a request with a body, or with a field
 * that is not a string, is canonicalized afresh. Refused requests are never kept. Bounded; oldest first out, and
 * small on purpose: everything worked out from a kept request (its access request, compiled facts and URL) stays
 * alive with it, and under distinct traffic a large memo keeps thousands of such requests alive long enough to be
 * copied into the old generation by the garbage collector, only to be dropped unused.
 */
export class CanonicalRequestMemo {
  private readonly entries = new Map<string, CanonicalRequest>();

  constructor(
    private readonly limits: Partial<CanonicalLimits> = {},
    private readonly capacity = 128,
  ) {}

  canonicalize(request: HttpRequest): CanonicalRequest {
    const key = rawKey(request);
    if (key === undefined) return canonicalizeRequest(request, this.limits);
    const known = this.entries.get(key);
    if (known) return known;
    const canonical = canonicalizeRequest(request, this.limits);
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, canonical);
    return canonical;
  }
}

const isString = (v: unknown): v is string => typeof v === "string";

function rawKey(r: HttpRequest): string | undefined {
  if (r.body !== undefined && r.body.length > 0) return undefined;
  if (!isString(r.connection) || !isString(r.method) || !isString(r.path)) return undefined;
  const query = r.query ?? [];
  const headers = r.headers ?? [];
  // Every string with its length before it, and the counts of query parameters and headers: no two different
  // requests share a key (cheaper than JSON, which scans every character for escapes).
  let key = `${r.connection.length}:${r.connection}${r.method.length}:${r.method}${r.path.length}:${r.path}?${query.length}`;
  for (const q of query) {
    if (!isString(q?.name) || !isString(q?.value)) return undefined;
    key += `${q.name.length}:${q.name}${q.value.length}:${q.value}`;
  }
  key += `#${headers.length}`;
  for (const h of headers) {
    if (!isString(h?.name) || !isString(h?.value)) return undefined;
    key += `${h.name.length}:${h.name}${h.value.length}:${h.value}`;
  }
  return key;
}
