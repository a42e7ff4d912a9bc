import type { Header } from "../gen/capvault/v1/common.js";

/**
 * Credential echoes: an upstream that reflects the request back (httpbin-style debugging endpoints, error pages that
 * print the request, a Location carrying the token) would hand the agent the access token the broker injected
 * (checklist item 10). The broker knows exactly which credentials it sent on the call, so it removes them from what
 * goes back: a response header that contains one is dropped; in a response body every occurrence is overwritten.
 *
 * What is recognised (see {@link echoFormsOf}): the token as sent, its JSON string escapings (standard; with `\/` as
 * PHP writes it; with `<`, `>`, `&` as `\u003c`-style escapes as Go writes them; with `+`, `'`, `` ` `` also escaped
 * as .NET writes them), and its percent-encoding. Not recognised: a body the broker cannot read as sent (a
 * Content-Encoding such as gzip: nothing is decompressed), and re-encodings such as base64 or hex of the token.
 */

/**
 * What a credential in a body becomes. The replacement has the same length as what it replaces (the marker, then
 * `*` up to that length, or the marker's first bytes for a shorter one), so Content-Length, Content-Range and the
 * response-size cap keep their meaning, and a streamed response needs no change to the head already sent. The length
 * of a token is not a secret worth a broken framing. The marker contains no `"`, `\` or `%`, so it stays inert in
 * JSON strings and URLs.
 */
export const REDACTION_MARKER = "[capvault:redacted]";

/** The strings an upstream echoing `secret` would most likely write: raw, JSON-escaped in common styles, percent-encoded. */
export function echoFormsOf(secret: string): string[] {
  if (secret.length === 0) return [];
  const json = JSON.stringify(secret).slice(1, -1);
  const go = json.replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
  const dotnet = json.replace(/[<>&'+`]/g, (c) => `\\u00${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return [...new Set([secret, json, json.replaceAll("/", "\\/"), go, dotnet, encodeURIComponent(secret)])];
}

/**
 * The response headers without any header whose value contains a credential sent on this call, in any form of
 * {@link echoFormsOf} (a header cannot be partly trusted, so it is dropped rather than rewritten).
 */
export function withoutCredentialEchoes(headers: readonly Header[], sent: readonly string[]): Header[] {
  const { strings } = echoFormsOfAll(sent);
  return headers.filter((h) => !strings.some((f) => h.value.includes(f)));
}

/** Echo forms as strings and as UTF-8 bytes, without repeats. */
interface EchoForms {
  strings: string[];
  bytes: Buffer[];
}

/**
 * The echo forms of every credential sent on a call. A connection's access token is used for many calls in a row
 * and its forms are the same every time, so they are kept per token for the calls that sent one (the usual case).
 * Bounded (oldest first out); it holds nothing the access-token cache does not already hold in the same process.
 */
function echoFormsOfAll(sent: readonly string[]): EchoForms {
  if (sent.length !== 1) return echoFormsFrom([...new Set(sent.flatMap(echoFormsOf))]);
  let known = recentForms.get(sent[0]);
  if (!known) {
    known = echoFormsFrom(echoFormsOf(sent[0]));
    recentForms.set(sent[0], known);
    if (recentForms.size > RECENT_FORMS) recentForms.delete(recentForms.keys().next().value as string);
  }
  return known;
}

const recentForms = new Map<string, EchoForms>();
const RECENT_FORMS = 64;

function echoFormsFrom(strings: string[]): EchoForms {
  return { strings, bytes: strings.map((f) => Buffer.from(f, "utf8")) };
}

/** A whole response body with every credential echo overwritten (see {@link REDACTION_MARKER}). */
export function redactCredentialEchoes(body: Buffer, sent: readonly string[]): Buffer {
  return new CredentialEchoRedactor(sent).end(body);
}

/**
 * A streamed response body with every credential echo overwritten, also across chunk boundaries: the output, joined,
 * is exactly {@link redactCredentialEchoes} of the input, joined. Between chunks at most (longest echo form − 1)
 * bytes are held back, and only bytes that could still begin an echo (so a stream of events is not delayed when its
 * chunks end in anything else). Breaking out of the result stops `chunks` too.
 */
export async function* redactCredentialEchoStream(chunks: AsyncIterable<Uint8Array>, sent: readonly string[]): AsyncGenerator<Buffer> {
  const redactor = new CredentialEchoRedactor(sent);
  for await (const chunk of chunks) {
    const out = redactor.push(chunk);
    if (out.length > 0) yield out;
  }
  const rest = redactor.end();
  if (rest.length > 0) yield rest;
}

/**
 * The incremental redactor behind both functions. State between chunks: the bytes not yet emitted (`pending`), how
 * many of them are already known to be inside an echo that started in emitted bytes (`carry`), and how far into the
 * replacement text the last emitted byte was (`runOffset`, so a replacement split over two chunks reads as one).
 */
export class CredentialEchoRedactor {
  private readonly forms: Buffer[];
  private pending: Buffer = Buffer.alloc(0);
  private carry = 0;
  private runOffset = 0;

  constructor(sent: readonly string[]) {
    this.forms = echoFormsOfAll(sent).bytes;
  }

  /** Take the next chunk; returns the bytes that can no longer be part of an echo, redacted. */
  push(chunk: Uint8Array): Buffer {
    return this.process(this.withPending(chunk), false);
  }

  /** End of the body (with an optional last chunk): returns everything still held, redacted. */
  end(last: Uint8Array = new Uint8Array(0)): Buffer {
    return this.process(this.withPending(last), true);
  }

  private withPending(chunk: Uint8Array): Buffer {
    const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    return this.pending.length === 0 ? b : Buffer.concat([this.pending, b]);
  }

  private process(buf: Buffer, final: boolean): Buffer {
    if (this.forms.length === 0) return buf;
    const cut = final ? buf.length : buf.length - this.possibleEchoStart(buf);
    // Every echo starting before `cut` ends inside `buf` (else `cut` would be earlier); echoes starting at or after
    // `cut` are found again next time, from `pending`.
    const runs: Array<[number, number]> = [];
    let carry = Math.max(0, this.carry - cut);
    if (this.carry > 0) runs.push([0, Math.min(this.carry, cut)]);
    for (const form of this.forms) {
      for (let i = buf.indexOf(form); i !== -1 && i < cut; i = buf.indexOf(form, i + 1)) {
        runs.push([i, Math.min(i + form.length, cut)]);
        carry = Math.max(carry, i + form.length - cut);
      }
    }
    let out: Buffer;
    if (runs.length === 0) {
      out = buf.subarray(0, cut);
      if (cut > 0) this.runOffset = 0;
    } else {
      out = Buffer.from(buf.subarray(0, cut));
      runs.sort((a, b) => a[0] - b[0]);
      let runStart = -1;
      let runEnd = -1;
      let offset = 0;
      for (const [s, e] of runs) {
        if (e <= s) continue;
        if (s > runEnd) {
          runStart = s;
          offset = s === 0 ? this.runOffset : 0;
        } else if (e <= runEnd) continue;
        const from = Math.max(s, runEnd, runStart);
        fill(out, from, e, offset + (from - runStart));
        runEnd = e;
      }
      if (cut > 0) this.runOffset = runEnd === cut ? offset + (cut - runStart) : 0;
    }
    this.pending = final ? Buffer.alloc(0) : Buffer.from(buf.subarray(cut));
    this.carry = final ? 0 : carry;
    return out;
  }

  /** How many bytes at the end of `buf` could be the beginning of an echo (a proper prefix of some form). */
  private possibleEchoStart(buf: Buffer): number {
    let longest = 0;
    for (const form of this.forms) {
      for (let j = Math.max(0, buf.length - form.length + 1); j < buf.length - longest; j++) {
        if (buf[j] === form[0] && buf.subarray(j).equals(form.subarray(0, buf.length - j))) {
          longest = buf.length - j;
          break;
        }
      }
    }
    return longest;
  }
}

const FILLER = 0x2a; // "*"
const MARKER = Buffer.from(REDACTION_MARKER, "ascii");

/** Overwrite out[from, to) with the replacement text from position `offset` on. */
function fill(out: Buffer, from: number, to: number, offset: number): void {
  for (let i = from; i < to; i++, offset++) out[i] = offset < MARKER.length ? MARKER[offset] : FILLER;
}
