import type { HttpRequest } from "../gen/capvault/v1/common.js";
import { canonicalizeRequest, type CanonicalLimits, type CanonicalRequest } from "./canonical-request.js";

/**
 * Recently canonicalized bodiless requests, by their exact raw form. canonicalizeRequest is a pure function of the
 * request and the limits, and its result is deeply frozen, so a repeat (an agent polling an endpoint, a fan-out of the
 * same call) gets the very same CanonicalRequest without redoing the work. The key is the JSON of every raw field
 * (JSON is injective on strings, so two different requests never share a key); a request with a body, or with a field
 * that is not a string, is canonicalized afresh. Refused requests are never kept. Bounded; oldest first out.
 */
export class CanonicalRequestMemo {
  private readonly entries = new Map<string, CanonicalRequest>();

  constructor(
    private readonly limits: Partial<CanonicalLimits> = {},
    private readonly capacity = 1024,
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
  if (!query.every((q) => isString(q?.name) && isString(q?.value))) return undefined;
  if (!headers.every((h) => isString(h?.name) && isString(h?.value))) return undefined;
  return JSON.stringify([r.connection, r.method, r.path, query.map((q) => [q.name, q.value]), headers.map((h) => [h.name, h.value])]);
}
