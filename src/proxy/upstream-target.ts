import { CapvaultError } from "../errors/capvault-error.js";
import { DROPPED_AGENT_HEADERS } from "./agent-request-headers.js";
import { BODY_HEADERS } from "./body-headers.js";
import { isFieldValue, isHttpToken } from "./http-grammar.js";
import { isHopByHopHeader } from "./hop-by-hop-headers.js";

/** Where the broker puts the credential, e.g. `{ name: "authorization", scheme: "Bearer" }`. */
export interface CredentialHeader {
  /** Header name (any case; compared case-insensitively). */
  readonly name: string;
  /** Prefix written before the token with one space, e.g. "Bearer". Omit to send the bare token (X-Api-Key style). */
  readonly scheme?: string;
}

/**
 * Where a connection's requests may go, filled from the provider catalog. The agent never names any of this: it
 * sends a connection id and a path (checklist item 16).
 */
export interface UpstreamTarget {
  /** e.g. "https://api.github.com" or "https://www.googleapis.com/gmail/v1" (a path prefix is kept). */
  readonly baseUrl: string;
  /** Exact host names (no wildcards, no ports) the credential may be sent to; compared lower-case. */
  readonly allowedHosts: readonly string[];
  readonly credentialHeader: CredentialHeader;
  /** TESTS ONLY: let resolved addresses in private, loopback and other special ranges through the fence. */
  readonly allowPrivateAddresses?: boolean;
  /** TESTS ONLY (or a private deployment): the CA certificates to trust instead of Node's bundled roots. */
  readonly ca?: string | Buffer;
  /** Headers sent when the agent does not send a header of the same name, e.g. `{ "x-github-api-version": "2022-11-28" }`. */
  readonly defaultHeaders?: Readonly<Record<string, string>>;
  /** Extra response header names (lower-case) to return on top of the built-in allowlist. */
  readonly extraResponseHeaders?: readonly string[];
}

/**
 * Check a target from the catalog once, before it is used: baseUrl is https with a host in allowedHosts and no
 * userinfo, query or fragment; the credential header and default headers are valid and cannot smuggle a second
 * credential or a hop-by-hop header. Throws CONFIG_INVALID.
 */
export function assertUpstreamTarget(target: UpstreamTarget): void {
  let url: URL;
  try {
    url = new URL(target.baseUrl);
  } catch {
    throw configInvalid("baseUrl is not a URL");
  }
  if (url.protocol !== "https:") throw configInvalid("baseUrl must be https");
  if (url.username !== "" || url.password !== "") throw configInvalid("baseUrl must not carry userinfo");
  if (url.search !== "" || url.hash !== "" || target.baseUrl.includes("?") || target.baseUrl.includes("#")) {
    throw configInvalid("baseUrl must not carry a query or fragment");
  }
  if (target.allowedHosts.length === 0) throw configInvalid("allowedHosts is empty");
  for (const h of target.allowedHosts) {
    if (!/^[a-z0-9.-]+$/i.test(h)) throw configInvalid("allowedHosts holds something that is not a plain host name");
  }
  if (!target.allowedHosts.some((h) => h.toLowerCase() === url.hostname)) {
    throw configInvalid("baseUrl's host is not in allowedHosts");
  }
  const credName = target.credentialHeader.name.toLowerCase();
  if (
    !isHttpToken(credName) ||
    isHopByHopHeader(credName) ||
    BODY_HEADERS.has(credName) ||
    (DROPPED_AGENT_HEADERS.has(credName) && credName !== "authorization")
  ) {
    throw configInvalid("credentialHeader.name is not a usable header name");
  }
  if (target.credentialHeader.scheme !== undefined && !isHttpToken(target.credentialHeader.scheme)) {
    throw configInvalid("credentialHeader.scheme must be a token");
  }
  for (const [name, value] of Object.entries(target.defaultHeaders ?? {})) {
    const n = name.toLowerCase();
    if (!isHttpToken(n) || !isFieldValue(value)) throw configInvalid("defaultHeaders holds an invalid header");
    if (n === credName || isHopByHopHeader(n) || DROPPED_AGENT_HEADERS.has(n)) {
      throw configInvalid("defaultHeaders may not hold a credential, hop-by-hop or framing header");
    }
    // The body is authorized under the agent's own Content-Type (or none): a default would change how it is read.
    if (BODY_HEADERS.has(n)) throw configInvalid("a default header may not say how the body is read (Content-Type, Content-Encoding)");
  }
  for (const name of target.extraResponseHeaders ?? []) {
    const n = name.toLowerCase();
    if (!isHttpToken(n) || isHopByHopHeader(n) || n === "set-cookie" || n === "set-cookie2") {
      throw configInvalid("extraResponseHeaders may not hold Set-Cookie or hop-by-hop headers");
    }
  }
}

/** A copy of the target that is safe to log: default header values and the CA are replaced by placeholders. */
export function redactUpstreamTarget(target: UpstreamTarget): Record<string, unknown> {
  return {
    baseUrl: target.baseUrl,
    allowedHosts: [...target.allowedHosts],
    credentialHeader: { name: target.credentialHeader.name, scheme: target.credentialHeader.scheme },
    allowPrivateAddresses: target.allowPrivateAddresses === true,
    ca: target.ca === undefined ? undefined : "[custom CA]",
    defaultHeaders: Object.fromEntries(Object.keys(target.defaultHeaders ?? {}).map((k) => [k, "[redacted]"])),
    extraResponseHeaders: target.extraResponseHeaders ? [...target.extraResponseHeaders] : undefined,
  };
}

function configInvalid(detail: string): CapvaultError {
  return new CapvaultError("CONFIG_INVALID", `upstream target: ${detail}`);
}
