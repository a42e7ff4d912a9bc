import { CapvaultError } from "../errors/capvault-error.js";
import type { CanonicalHeader } from "./canonical-headers.js";
import { DROPPED_AGENT_HEADERS, forwardableAgentHeaders } from "./agent-request-headers.js";
import { BODY_HEADERS } from "./body-headers.js";
import { memoizedForFrozen } from "./frozen-memo.js";
import { isHopByHopHeader } from "./hop-by-hop-headers.js";
import { isFieldValue, isHttpToken } from "./http-grammar.js";
import type { UpstreamTarget } from "./upstream-target.js";

/**
 * The header list of the upstream request, as undici's flat `[name, value, name, value, …]` array:
 * 1. the canonical agent headers, filtered again (hop-by-hop, Authorization, Cookie, Host, …: see
 *    agent-request-headers.ts) and without any header named like the target's credential header;
 * 2. the target's default headers whose names the agent did not send (never a credential, hop-by-hop, framing or
 *    body header such as Content-Type, even from a target that skipped assertUpstreamTarget: the body was authorized
 *    under the agent's headers alone, see body-headers.ts);
 * 3. `accept-encoding: identity` (see credential-echoes.ts);
 * 4. EXACTLY ONE credential header, set by the broker (checklist item 20).
 *
 * The credential is validated as a header value without ever being echoed: a token with CR or LF throws INTERNAL
 * with no detail.
 */
export function buildUpstreamRequestHeaders(
  target: UpstreamTarget,
  agentHeaders: readonly CanonicalHeader[],
  credential: string,
): string[] {
  const { credentialName, defaults } = targetHeadersOf(target);
  const out: string[] = [];
  const sent = new Set<string>();
  for (const h of agentHeaders.length === 0 ? agentHeaders : forwardableAgentHeaders(agentHeaders)) {
    if (h.name === credentialName) continue;
    out.push(h.name, h.value);
    sent.add(h.name);
  }
  for (let i = 0; i < defaults.length; i += 2) {
    if (!sent.has(defaults[i])) out.push(defaults[i], defaults[i + 1]);
  }
  // An unencoded response body, so that echoed credentials can be found in it (credential-echoes.ts).
  if (credentialName !== "accept-encoding") out.push("accept-encoding", "identity");
  const scheme = target.credentialHeader.scheme;
  const value = scheme === undefined || scheme === "" ? credential : `${scheme} ${credential}`;
  if (credential.length === 0 || credential !== credential.trim() || !isFieldValue(value)) {
    throw new CapvaultError("INTERNAL", undefined, { cause: new Error("the stored credential is not a valid header value") });
  }
  out.push(credentialName, value);
  return out;
}

/** What a target adds to every request: its credential header's name and its usable default headers (flat pairs). */
interface TargetHeaders {
  readonly credentialName: string;
  readonly defaults: readonly string[];
}

/** Worked out once per frozen target (catalog targets are: provider-upstream-target.ts), every time for any other. */
const targetHeadersOf = memoizedForFrozen(
  targetHeaders,
  (target) => Object.isFrozen(target) && Object.isFrozen(target.credentialHeader) && (!target.defaultHeaders || Object.isFrozen(target.defaultHeaders)),
);

function targetHeaders(target: UpstreamTarget): TargetHeaders {
  const credentialName = target.credentialHeader.name.toLowerCase();
  const defaults: string[] = [];
  for (const [name, value] of Object.entries(target.defaultHeaders ?? {})) {
    const n = name.toLowerCase();
    // assertUpstreamTarget refuses such defaults at catalog load; skipping them here too keeps one credential.
    if (n === credentialName || isHopByHopHeader(n) || DROPPED_AGENT_HEADERS.has(n) || BODY_HEADERS.has(n)) continue;
    if (!isHttpToken(n) || !isFieldValue(value)) continue;
    defaults.push(n, value);
  }
  return { credentialName, defaults };
}
