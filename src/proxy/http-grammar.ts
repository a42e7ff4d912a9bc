/**
 * The two pieces of RFC 9110 grammar the proxy checks agent input against. Kept strict on purpose: anything the
 * grammar does not allow is refused rather than repaired, so the broker and the upstream never disagree about
 * what was sent.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Visible ASCII, space and tab. obs-text (0x80-0xFF) is deliberately refused: RFC 9110 deprecates it, and a JS
// string above 0x7F has no single agreed byte encoding on the wire.
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

/** Whether `s` is an RFC 9110 `token` (method names, header field names). */
export function isHttpToken(s: string): boolean {
  return TOKEN.test(s);
}

/**
 * Whether `s` is an acceptable header field value: visible ASCII, SP and HTAB only (so never CR, LF, NUL or any
 * other control character). Leading and trailing whitespace is allowed here; callers trim it.
 */
export function isFieldValue(s: string): boolean {
  return FIELD_VALUE.test(s);
}
