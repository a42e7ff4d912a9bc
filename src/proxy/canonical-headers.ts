import { CapvaultError } from "../errors/capvault-error.js";
import type { Header } from "../gen/capvault/v1/common.js";
import { isFieldValue, isHttpToken } from "./http-grammar.js";

/** One validated request header: name lower-cased, value with surrounding whitespace trimmed. */
export interface CanonicalHeader {
  readonly name: string;
  readonly value: string;
}

/** Size limits for the agent's headers. */
export interface HeaderLimits {
  maxHeaders: number;
  /** Sum over headers of name + value length. */
  maxHeaderBytes: number;
}

/**
 * Validate the agent's headers against RFC 9110 and normalise them: names must be tokens (lower-cased here);
 * values must be visible ASCII, SP or HTAB (so a CR, LF or NUL is HEADER_INVALID, never stripped or folded), and
 * lose their leading and trailing whitespace. Order and repeats are kept. More than one Content-Type is refused,
 * because the body's interpretation (and so its authorized fields) must not be ambiguous.
 */
export function canonicalizeHeaders(headers: readonly Header[], limits: HeaderLimits): readonly CanonicalHeader[] {
  if (headers.length > limits.maxHeaders) {
    throw new CapvaultError("HEADER_INVALID", "too many headers", { metadata: { maxHeaders: String(limits.maxHeaders) } });
  }
  let bytes = 0;
  let contentTypes = 0;
  const out: CanonicalHeader[] = [];
  for (const h of headers) {
    const rawName = h.name ?? "";
    const rawValue = h.value ?? "";
    if (!isHttpToken(rawName)) throw new CapvaultError("HEADER_INVALID", "a header name is not an RFC 9110 token");
    const name = rawName.toLowerCase();
    if (!isFieldValue(rawValue)) {
      throw new CapvaultError("HEADER_INVALID", "a header value contains CR, LF, NUL, another control character or non-ASCII", {
        metadata: { header: name },
      });
    }
    bytes += name.length + rawValue.length;
    if (bytes > limits.maxHeaderBytes) {
      throw new CapvaultError("HEADER_INVALID", "the headers are too large", { metadata: { maxHeaderBytes: String(limits.maxHeaderBytes) } });
    }
    if (name === "content-type" && ++contentTypes > 1) {
      throw new CapvaultError("HEADER_INVALID", "more than one content-type header", { metadata: { header: name } });
    }
    out.push(Object.freeze({ name, value: rawValue.replace(/^[\t ]+|[\t ]+$/g, "") }));
  }
  return Object.freeze(out);
}
