import { callUpstream, type UpstreamCall, type UpstreamResponse } from "./upstream-call.js";
import { isInvalidTokenResponse } from "./invalid-token-response.js";

/** An authorized unary call, with where to get the token and how to refresh it. */
export interface ForwardWithRefresh extends Omit<UpstreamCall, "credential"> {
  /** The connection's current access token. */
  accessToken(): Promise<string>;
  /**
   * Refresh through the broker's single-flight and return the new access token. Receives the token the upstream
   * rejected, so a refresher that finds the connection already refreshed by someone else can just return the newer
   * token. Its errors (e.g. CONNECTION_NEEDS_REAUTH) propagate unchanged.
   */
  refresh(rejectedToken: string): Promise<string>;
  /** Wraps each upstream call (its span and timing: proxy-telemetry.ts). */
  observe?: (call: () => Promise<UpstreamResponse>) => Promise<UpstreamResponse>;
}

/** The upstream response and whether a refresh happened on the way. */
export interface ForwardedResponse extends UpstreamResponse {
  readonly refreshed: boolean;
}

/**
 * The transport-neutral "call upstream" step of Proxy for unary calls (checklist item 21): call with the current
 * token; when the upstream answers with an invalid-token 401 (see invalid-token-response.ts), refresh at most once
 * and retry at most once, returning whatever the retry gets (a second 401 goes back to the agent as is). A refresh
 * that yields the very token that was rejected is not retried.
 * Streaming calls are not retried: their request body cannot be replayed.
 */
export async function forwardWithRefresh(call: ForwardWithRefresh): Promise<ForwardedResponse> {
  const observe = call.observe ?? ((send) => send());
  const token = await call.accessToken();
  const first = await observe(() => callUpstream(withCredential(call, token)));
  if (!isInvalidTokenResponse(first.status, first.headers)) return forwarded(first, false);
  const fresh = await call.refresh(token);
  if (fresh === token) return forwarded(first, true);
  const second = await observe(() => callUpstream(withCredential(call, fresh)));
  return forwarded(second, true);
}

/** The upstream call of `call` with this credential (one object literal: this runs on every Proxy call). */
function withCredential(call: ForwardWithRefresh, credential: string): UpstreamCall {
  return {
    target: call.target,
    request: call.request,
    url: call.url,
    credential,
    dispatcher: call.dispatcher,
    signal: call.signal,
    signalCoversDeadline: call.signalCoversDeadline,
    deadline: call.deadline,
    limits: call.limits,
  };
}

function forwarded(response: UpstreamResponse, refreshed: boolean): ForwardedResponse {
  return { status: response.status, headers: response.headers, body: response.body, refreshed };
}
