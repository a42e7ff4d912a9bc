import { CapvaultError } from "../errors/capvault-error.js";

/**
 * The one path grammar of capvault. The Proxy canonicalizes an agent's path with it before authorization; grants and
 * restrictions are checked against it when minted or attenuated (a prefix that is not canonical is refused, so no
 * grant can name a path that no request could ever have); authorization only checks that what it is given is
 * already canonical. So the path that was authorized is exactly the path that is sent, byte for byte.
 */

/** The one canonical form of an agent's path: what the capability is checked against and what goes on the wire. */
export interface CanonicalPath {
  /**
   * The canonical origin-form path, re-encoded deterministically: every segment percent-decoded, dot segments and
   * repeated slashes resolved, then every byte outside `A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , = : @` written as
   * upper-case `%XX` (`;` is always encoded, see below). Two inputs that mean the same path give the same string.
   */
  readonly path: string;
  /** The decoded segments of `path` (a trailing slash shows as a final empty segment; the root is `[]`). */
  readonly segments: readonly string[];
}

/** Size limits for a path. */
export interface PathLimits {
  maxPathLength: number;
  maxPathSegments: number;
}

// RFC 3986 path characters (pchar) plus "/" and the "%" of pct-encoded. Anything else is refused, not encoded.
const RAW_PATH = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
// Bytes written literally on the wire. ";" is left out: some servers (Tomcat, Jetty) cut "path parameters" at a
// raw ";", which would let "/public/..;/admin" be authorized as one path and served as another.
const LITERAL_BYTE = /^[A-Za-z0-9\-._~!$&'()*+,=:@]$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,=:@]*$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Canonicalize an origin-form path before authorization (security checklist item 23).
 *
 * Refused with PATH_INVALID (never silently repaired): anything not starting with a single `/` (absolute-form
 * `https://…`, authority-form, scheme-relative `//host/…`), backslashes, `?`, `#`, spaces, control characters and
 * non-ASCII (the agent must percent-encode), malformed `%` escapes, an encoded `/` or `\` (`%2F`, `%5C`), encoded
 * control characters, percent-encoded bytes that are not UTF-8, a `..` that would climb above the root, and a
 * segment that only looks like a dot segment to some servers (`..;x`, full-width `．．`).
 *
 * Resolved: percent-encoding (every segment is decoded, then re-encoded deterministically), dot segments in any
 * spelling (`.`, `..`, `%2e`, `%2E%2E`, `.%2e`), and repeated slashes (`/a//b` is `/a/b`). A trailing slash is kept.
 */
export function canonicalizePath(raw: string, limits: PathLimits): CanonicalPath {
  if (typeof raw !== "string" || raw.length === 0) throw invalid("the path is empty");
  if (raw.length > limits.maxPathLength) throw invalid("the path is too long", { maxPathLength: String(limits.maxPathLength) });
  if (raw[0] !== "/") throw invalid("the path must be origin-form: it must start with '/' and name no scheme or host");
  if (raw.startsWith("//")) throw invalid("the path must not start with '//' (that names a host)");
  const plain = plainPath(raw, limits);
  if (plain) return plain;
  if (raw.includes("?")) throw invalid("the path must not contain '?': send query parameters in the query field");
  if (raw.includes("#")) throw invalid("the path must not contain '#'");
  if (raw.includes("\\")) throw invalid("the path must not contain a backslash");
  if (!RAW_PATH.test(raw)) {
    throw invalid("the path contains a character that must be percent-encoded (space, control, non-ASCII, or one of \"<>[]^`{|})\"");
  }
  if (BAD_PERCENT.test(raw)) throw invalid("the path contains a malformed percent-escape");

  const rawSegments = raw.slice(1).split("/");
  if (rawSegments.length > limits.maxPathSegments) {
    throw invalid("the path has too many segments", { maxPathSegments: String(limits.maxPathSegments) });
  }

  const out: string[] = [];
  for (let i = 0; i < rawSegments.length; i++) {
    const last = i === rawSegments.length - 1;
    const segment = decodeSegment(rawSegments[i]);
    if (segment === "") {
      if (last) out.push(""); // keep one trailing slash; collapse empty segments elsewhere
      continue;
    }
    if (segment === ".") {
      if (last) out.push("");
      continue;
    }
    if (segment === "..") {
      if (out.length === 0) throw invalid("the path climbs above the root with '..'");
      out.pop();
      if (last) out.push("");
      continue;
    }
    out.push(segment);
  }
  // "/a/.." leaves [""]: that is the root.
  const segments = out.length === 1 && out[0] === "" ? [] : out;
  const path = "/" + segments.map(encodeSegment).join("/");
  if (path.length <= PATH_LIMITS.maxPathLength && segments.length < PATH_LIMITS.maxPathSegments) rememberCanonical(path);
  return Object.freeze({ path, segments: Object.freeze(segments) });
}

// Segments of literal bytes only, none empty except a final one (a trailing slash), none a dot segment.
const PLAIN_PATH = /^(?:\/[A-Za-z0-9\-._~!$&'()*+,=:@]+)*\/?$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/**
 * The canonical form of a path that already is canonical on sight, without the steps below: each of them would give
 * it back unchanged (nothing to decode, no ";", no dot or empty segment, every byte literal). Undefined for any other
 * path, which takes the full way. test/capabilities/canonical-path.test.ts compares the two ways.
 */
function plainPath(raw: string, limits: PathLimits): CanonicalPath | undefined {
  if (!PLAIN_PATH.test(raw) || DOT_SEGMENT.test(raw)) return undefined;
  const segments = raw === "/" ? [] : raw.slice(1).split("/");
  if (segments.length > limits.maxPathSegments) return undefined;
  if (raw.length <= PATH_LIMITS.maxPathLength && segments.length < PATH_LIMITS.maxPathSegments) rememberCanonical(raw);
  return Object.freeze({ path: raw, segments: Object.freeze(segments) });
}

/**
 * Paths this function produced recently that are within the default limits. Canonicalization is idempotent (see
 * test/proxy/path-grammar.property.test.ts), so each of them is canonical and {@link isCanonicalPath} need not
 * canonicalize it again (Proxy canonicalizes a request's path, then authorization asserts it is canonical). Bounded,
 * oldest first out.
 */
const recentCanonical = new Set<string>();
const RECENT_CANONICAL = 256;

function rememberCanonical(path: string): void {
  recentCanonical.add(path);
  if (recentCanonical.size > RECENT_CANONICAL) recentCanonical.delete(recentCanonical.values().next().value as string);
}

/** Percent-decode one raw segment and refuse what must not hide inside a segment. */
function decodeSegment(raw: string): string {
  // RAW_PATH admits only printable ASCII, so without a "%" the raw segment already is its decoded text.
  if (!raw.includes("%")) return checkDecoded(raw, true);
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === "%") {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(raw.charCodeAt(i));
    }
  }
  let decoded: string;
  try {
    decoded = UTF8.decode(Uint8Array.from(bytes));
  } catch {
    throw invalid("the path contains percent-encoded bytes that are not UTF-8");
  }
  return checkDecoded(decoded, false);
}

/**
 * Refuse a decoded segment that hides a separator, a control character or a dot segment. `ascii`: the segment is
 * known to be ASCII, which Unicode normalization leaves as it is (no ASCII character has a decomposition).
 */
function checkDecoded(decoded: string, ascii: boolean): string {
  if (decoded.includes("/")) throw invalid("the path contains an encoded slash (%2F)");
  if (decoded.includes("\\")) throw invalid("the path contains an encoded backslash (%5C)");
  if (CONTROL.test(decoded)) throw invalid("the path contains an encoded control character");
  const semicolon = decoded.indexOf(";");
  const beforeParams = semicolon < 0 ? decoded : decoded.slice(0, semicolon);
  if (decoded !== beforeParams && (beforeParams === "." || beforeParams === ".." || beforeParams === "")) {
    throw invalid("the path contains a segment that servers may read as a dot segment ('..;')");
  }
  if (ascii) return decoded;
  const folded = decoded.normalize("NFKC");
  if (folded !== decoded && (folded.includes("/") || folded.includes("\\") || /^\.{1,2}(;|$)/.test(folded))) {
    throw invalid("the path contains a character that Unicode-normalizes to '/', '\\' or a dot segment");
  }
  return decoded;
}

/** Encode one decoded segment for the wire (UTF-8, upper-case hex, fixed literal set). */
function encodeSegment(segment: string): string {
  if (LITERAL_SEGMENT.test(segment)) return segment; // every byte is written as itself
  let out = "";
  for (const byte of Buffer.from(segment, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += LITERAL_BYTE.test(ch) ? ch : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

function invalid(message: string, metadata?: Record<string, string>): CapvaultError {
  return new CapvaultError("PATH_INVALID", message, { metadata });
}

/** The default size limits (the Proxy's canonical-request limits). */
export const PATH_LIMITS: PathLimits = { maxPathLength: 4096, maxPathSegments: 128 };

/**
 * The canonical form of a path with the default limits. Throws CapvaultError PATH_INVALID.
 *
 * @example canonicalPath("/repos/acme/widgets/../%2e%2e/acme-evil") === "/repos/acme-evil"
 */
export function canonicalPath(raw: string): string {
  return canonicalizePath(raw, PATH_LIMITS).path;
}

/** Whether `path` is already canonical. */
export function isCanonicalPath(path: string): boolean {
  if (recentCanonical.has(path)) return true;
  try {
    return canonicalizePath(path, PATH_LIMITS).path === path;
  } catch {
    return false;
  }
}

/** Throw PATH_INVALID unless `path` is already canonical (authorization never canonicalises silently). */
export function assertCanonicalPath(path: unknown): string {
  if (typeof path !== "string" || !isCanonicalPath(path)) {
    throw new CapvaultError("PATH_INVALID", "the path is not canonical (resolve dot segments and escapes first)");
  }
  return path;
}

/**
 * Normalise a grant or restriction path prefix so that it matches on segment boundaries: already canonical (else
 * PATH_INVALID) and ending in `/`
 * (`/repos/acme` becomes `/repos/acme/`, which matches `/repos/acme` and `/repos/acme/x` but never `/repos/acme-evil`).
 */
export function normalisePathPrefix(prefix: unknown): string {
  const canonical = assertCanonicalPath(prefix);
  return canonical.endsWith("/") ? canonical : `${canonical}/`;
}
