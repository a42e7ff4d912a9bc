import { CapvaultError } from "../errors/capvault-error.js";

/**
 * Canonical request paths for capability matching. Grants and restrictions compare path prefixes on segment
 * boundaries, which is only sound if the path cannot mean two things: so dot segments are resolved, percent-encoded
 * unreserved characters are decoded (`%2e%2e` is `..`), other escapes are upper-cased, empty segments are collapsed,
 * and encoded slashes, backslashes, NUL and control characters are refused outright.
 *
 * The proxy canonicalises paths before authorization; authorization only checks (with {@link assertCanonicalPath})
 * that what it is given is already canonical, so the path that was authorized is exactly the path that is sent.
 */

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;
const PCHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]*$/;

function pathInvalid(why: string): CapvaultError {
  return new CapvaultError("PATH_INVALID", `the path is not a valid origin-form path: ${why}`);
}

/** Normalise the characters of one segment (no `/` inside). */
function normaliseSegment(raw: string): string {
  if (PCHARS.test(raw)) return raw; // nothing to decode, refuse or encode
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === "%") {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw pathInvalid("bad percent-encoding");
      const byte = parseInt(hex, 16);
      if (byte === 0x2f || byte === 0x5c) throw pathInvalid("encoded slash or backslash");
      if (byte < 0x20 || byte === 0x7f) throw pathInvalid("encoded control character");
      const ch = String.fromCharCode(byte);
      out += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
      i += 2;
    } else if (PCHAR.test(c)) {
      out += c;
    } else if (c === "\\" || c < " " || c === "\u007f") {
      throw pathInvalid("backslash or control character");
    } else {
      out += encodeURIComponent(c).replace(/%[0-9a-f]{2}/g, (m) => m.toUpperCase());
    }
  }
  return out;
}

/**
 * Canonicalise an origin-form path (no query, no fragment). Throws CapvaultError PATH_INVALID for paths that are
 * ambiguous or climb above the root.
 *
 * @example canonicalPath("/repos/acme/widgets/../%2e%2e/acme-evil") === "/repos/acme-evil"
 */
export function canonicalPath(raw: string): string {
  if (typeof raw !== "string" || !raw.startsWith("/")) throw pathInvalid("it must start with '/'");
  if (raw.includes("?") || raw.includes("#")) throw pathInvalid("query and fragment do not belong in the path");
  if (raw.length > 8192) throw pathInvalid("too long");
  const rawSegments = raw.slice(1).split("/");
  const out: string[] = [];
  let trailingSlash = false;
  for (let i = 0; i < rawSegments.length; i++) {
    const seg = normaliseSegment(rawSegments[i]);
    const last = i === rawSegments.length - 1;
    if (seg === "") {
      trailingSlash = last && out.length > 0;
      continue;
    }
    if (seg === ".") {
      trailingSlash = last;
      continue;
    }
    if (seg === "..") {
      if (out.length === 0) throw pathInvalid("it climbs above the root");
      out.pop();
      trailingSlash = last;
      continue;
    }
    out.push(seg);
    trailingSlash = false;
  }
  if (out.length === 0) return "/";
  return `/${out.join("/")}${trailingSlash ? "/" : ""}`;
}

/** Whether `path` is already canonical. */
export function isCanonicalPath(path: string): boolean {
  try {
    return canonicalPath(path) === path;
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
