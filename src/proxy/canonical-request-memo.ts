import type { HttpRequest } from "../gen/capvault/v1/common.js";
import { canonicalizeRequest, type CanonicalLimits, type CanonicalRequest } from "./canonical-request.js";

/**
 * Recently canonicalized bodiless requests, by their exact raw form. canonicalizeRequest is a pure function of the
 * request and the limits, and its result is deeply frozen, so a repeat (an agent polling an endpoint, a fan-out of the
 * same call) gets the very same CanonicalRequest without redoing the work. Entries are found by the raw path, then
 * every other raw field is compared (no key string is built: under distinct traffic every lookup misses, and a miss
 * should cost little); a request with a body, or with a field that is not a string, is canonicalized afresh. Refused
 * requests are never kept. Bounded; oldest first out, and small on purpose: everything worked out from a kept request
 * (its access request, compiled facts and URL) stays alive with it, and under distinct traffic a large memo keeps
 * thousands of such requests alive long enough to be copied into the old generation by the garbage collector, only to
 * be dropped unused.
 */
export class CanonicalRequestMemo {
  private readonly byPath = new Map<string, Entry[]>();
  /** Every entry, oldest first. */
  private readonly order: Entry[] = [];

  constructor(
    private readonly limits: Partial<CanonicalLimits> = {},
    private readonly capacity = 128,
  ) {}

  canonicalize(request: HttpRequest): CanonicalRequest {
    const raw = rawFields(request);
    if (raw === undefined) return canonicalizeRequest(request, this.limits);
    const sameRaw = this.byPath.get(request.path);
    if (sameRaw) for (const entry of sameRaw) if (sameFields(entry.raw, raw)) return entry.canonical;
    const canonical = canonicalizeRequest(request, this.limits);
    if (this.capacity <= 0) return canonical;
    if (this.order.length >= this.capacity) this.forget(this.order.shift()!);
    const entry: Entry = { path: request.path, raw, canonical };
    this.order.push(entry);
    if (sameRaw) sameRaw.push(entry);
    else this.byPath.set(request.path, [entry]);
    return canonical;
  }

  private forget(entry: Entry): void {
    const list = this.byPath.get(entry.path)!;
    if (list.length === 1) this.byPath.delete(entry.path);
    else list.splice(list.indexOf(entry), 1);
  }
}

interface Entry {
  path: string;
  raw: readonly string[];
  canonical: CanonicalRequest;
}

const isString = (v: unknown): v is string => typeof v === "string";

/**
 * The raw fields besides the path, in one flat list: connection, method, the number of query parameters, each name and
 * value, then each header's name and value (the count keeps a query parameter from passing for a header). Undefined
 * for a request with a body or a field that is not a string.
 */
function rawFields(r: HttpRequest): string[] | undefined {
  if (r.body !== undefined && r.body.length > 0) return undefined;
  if (!isString(r.connection) || !isString(r.method) || !isString(r.path)) return undefined;
  const query = r.query ?? [];
  const headers = r.headers ?? [];
  const out = [r.connection, r.method, String(query.length)];
  for (const q of query) {
    if (!isString(q?.name) || !isString(q?.value)) return undefined;
    out.push(q.name, q.value);
  }
  for (const h of headers) {
    if (!isString(h?.name) || !isString(h?.value)) return undefined;
    out.push(h.name, h.value);
  }
  return out;
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
