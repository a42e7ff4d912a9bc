import { CapvaultError } from "../errors/capvault-error.js";

/** A top-level scalar of a JSON body, as the authorizer sees it. */
export type BodyFieldValue = string | number | boolean;

/** How the body was read for authorization. */
export type BodyFormat = "empty" | "json" | "other";

/** What the authorizer may know about the body. */
export interface BodyFields {
  /** "json" only when the content type says JSON and the body parsed; "other" for any other non-empty body. */
  readonly format: BodyFormat;
  /**
   * Top-level scalar fields of a JSON object body. Strings as strings, booleans as booleans, integer literals that are
   * safe integers as numbers, every other number as its exact source text (so `1.0`, `1e3` and
   * `12345678901234567890` stay strings). `null`, objects and arrays are left out. Empty for any other body.
   */
  readonly fields: ReadonlyMap<string, BodyFieldValue>;
}

/** Limits on what is extracted. */
export interface BodyFieldLimits {
  maxBodyFields: number;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;
const EMPTY: ReadonlyMap<string, BodyFieldValue> = new Map();

/** Whether a Content-Type value names JSON (`application/json` or any `+json` suffix type). */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mediaType = contentType.split(";")[0].trim().toLowerCase();
  return mediaType === "application/json" || /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(mediaType);
}

/**
 * Read the body's top-level fields for the authorizer.
 *
 * Decision: a body whose Content-Type claims JSON must be one strict JSON text, or the request is refused with
 * BODY_INVALID, rather than forwarded with no fields. An upstream that parses more leniently (or differently)
 * than the broker would otherwise act on values the authorizer never saw. For the same reason these are refused:
 * bytes that are not UTF-8, a byte-order mark, a charset other than UTF-8, a duplicated top-level key (parsers
 * disagree on which copy wins), lone surrogates in a top-level key or string, and more than `maxBodyFields`
 * top-level keys (silently dropping fields would defeat a check that forbids a field).
 *
 * A body without a JSON content type yields no fields and format "other". Some upstreams parse JSON whatever the
 * content type says, so a grant that constrains body fields must require the fields it checks (and format "json"),
 * never merely forbid values: absence of a field is not evidence.
 */
export function readBodyFields(body: Buffer, contentType: string | undefined, limits: BodyFieldLimits): BodyFields {
  if (body.length === 0) return Object.freeze({ format: "empty", fields: EMPTY });
  if (!isJsonContentType(contentType)) return Object.freeze({ format: "other", fields: EMPTY });

  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? "")?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") throw invalid("a JSON body must be UTF-8");

  let text: string;
  let parsed: unknown;
  try {
    text = UTF8.decode(body);
    parsed = JSON.parse(text);
  } catch {
    throw invalid();
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return Object.freeze({ format: "json", fields: EMPTY });
  }

  const fields = new Map<string, BodyFieldValue>();
  const seen = new Set<string>();
  for (const [key, raw] of topLevelMembers(text)) {
    if (seen.has(key)) throw invalid("the JSON body has a duplicated top-level key", { field: truncate(key) });
    seen.add(key);
    if (seen.size > limits.maxBodyFields) {
      throw invalid("the JSON body has too many top-level fields", { maxBodyFields: String(limits.maxBodyFields) });
    }
    if (LONE_SURROGATE.test(key)) throw invalid("the JSON body has a top-level key that is not well-formed Unicode");
    const value = scalar(raw);
    if (typeof value === "string" && LONE_SURROGATE.test(value)) {
      throw invalid("the JSON body has a top-level string that is not well-formed Unicode", { field: truncate(key) });
    }
    if (value !== undefined) fields.set(key, value);
  }
  return Object.freeze({ format: "json", fields });
}

/** The authorizer's view of one raw JSON value; undefined for null, objects and arrays. */
function scalar(raw: string): BodyFieldValue | undefined {
  const c = raw[0];
  if (c === '"') return JSON.parse(raw) as string;
  if (raw === "true") return true;
  if (raw === "false") return false;
  if (raw === "null" || c === "{" || c === "[") return undefined;
  const n = Number(raw);
  return INTEGER_LITERAL.test(raw) && Number.isSafeInteger(n) ? (n === 0 ? 0 : n) : raw;
}

/**
 * The (decoded key, raw value text) pairs of a top-level JSON object, in source order, duplicates included.
 * Only called on text JSON.parse accepted, so it can be a plain scanner.
 */
function* topLevelMembers(text: string): Generator<[string, string]> {
  let i = skipWs(text, 0);
  i++; // "{"
  for (;;) {
    i = skipWs(text, i);
    if (text[i] === "}") return;
    if (text[i] === ",") i = skipWs(text, i + 1);
    const keyEnd = endOfString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd) + 1; // ":"
    i = skipWs(text, i);
    const valueEnd = endOfValue(text, i);
    yield [key, text.slice(i, valueEnd)];
    i = valueEnd;
  }
}

function skipWs(text: string, i: number): number {
  while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  return i;
}

/** Index just past the string starting at `i` (which is a `"`). */
function endOfString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === "\\") j++;
    else if (text[j] === '"') return j + 1;
  }
  return text.length;
}

/** Index just past the value starting at `i`. */
function endOfValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return endOfString(text, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') j = endOfString(text, j) - 1;
      else if (d === "{" || d === "[") depth++;
      else if ((d === "}" || d === "]") && --depth === 0) return j + 1;
    }
    return text.length;
  }
  let j = i;
  while (j < text.length && !",}] \t\n\r".includes(text[j])) j++;
  return j;
}

function truncate(s: string): string {
  return s.length > 64 ? s.slice(0, 64) + "…" : s;
}

function invalid(message?: string, metadata?: Record<string, string>): CapvaultError {
  return new CapvaultError("BODY_INVALID", message, { metadata });
}
