import type { Header } from "../gen/capvault/v1/common.js";

/**
 * An upstream that echoes request headers (httpbin-style debugging endpoints, error pages, a misconfigured API) would
 * hand the agent the access token the broker sent. The broker knows exactly which credentials it sent on the call,
 * so it takes them out of what the agent gets: a response header containing one is dropped, and in the body every
 * occurrence is overwritten in place with a marker of the same length (so Content-Length stays true), in buffered
 * bodies and across the chunks of a streamed one. Also caught: the JSON-escaped and the URL-encoded forms of a token.
 *
 * The upstream is asked for an unencoded body (`accept-encoding: identity`, upstream-request-headers.ts); a body that
 * comes back compressed anyway cannot be searched and is passed on as it is (see docs/proxy.md).
 */

/** The forms in which an echoed credential can appear in a body. */
function forms(sent: readonly string[]): Buffer[] {
  const out = new Map<string, Buffer>();
  for (const secret of sent) {
    if (secret.length === 0) continue;
    for (const form of [secret, JSON.stringify(secret).slice(1, -1).replace(/\//g, "\\/"), encodeURIComponent(secret)]) {
      out.set(form, Buffer.from(form, "utf8"));
    }
  }
  return [...out.values()];
}

function marker(length: number): Buffer {
  return Buffer.from(("[redacted by capvault]" + "*".repeat(Math.max(0, length))).slice(0, length), "utf8");
}

/** Overwrite every occurrence of each pattern in `body` (in place), returning the same buffer. */
function overwrite(body: Buffer, patterns: readonly Buffer[]): Buffer {
  for (const p of patterns) {
    for (let at = body.indexOf(p); at !== -1; at = body.indexOf(p, at + p.length)) marker(p.length).copy(body, at);
  }
  return body;
}

/** Response headers without any header whose value contains a credential this call sent. */
export function withoutCredentialEchoes(headers: readonly Header[], sent: readonly string[]): Header[] {
  const secrets = sent.filter((s) => s.length > 0);
  return headers.filter((h) => !secrets.some((s) => h.value.includes(s)));
}

/** A buffered response body with every credential this call sent overwritten. */
export function redactCredentialEchoes(body: Buffer, sent: readonly string[]): Buffer {
  const patterns = forms(sent);
  if (!patterns.length || !patterns.some((p) => body.includes(p))) return body;
  return overwrite(Buffer.from(body), patterns);
}

/**
 * A streamed response body with every credential overwritten, including one split across chunks: the end of a chunk
 * that could be the start of a credential is held back until the next chunk shows whether it is one. Nothing else is
 * held: a chunk that ends in no such prefix goes out whole, at once.
 */
export async function* redactCredentialEchoesInStream(chunks: AsyncIterable<Uint8Array>, sent: readonly string[]): AsyncGenerator<Buffer> {
  const patterns = forms(sent);
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    pending = overwrite(Buffer.concat([pending, chunk]), patterns);
    const hold = partialMatchAtEnd(pending, patterns);
    if (pending.length > hold) {
      const ready = Buffer.from(pending.subarray(0, pending.length - hold));
      pending = Buffer.from(pending.subarray(pending.length - hold));
      yield ready;
    }
  }
  if (pending.length) yield overwrite(pending, patterns);
}

/** The length of the longest end of `body` that is the beginning of one of the patterns (0 if none). */
function partialMatchAtEnd(body: Buffer, patterns: readonly Buffer[]): number {
  let longest = 0;
  for (const p of patterns) {
    for (let k = Math.min(p.length - 1, body.length); k > longest; k--) {
      if (body.subarray(body.length - k).equals(p.subarray(0, k))) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}
