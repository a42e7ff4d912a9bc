import * as oauth from "oauth4webapi";
import { CapvaultError, type Reason } from "../errors/capvault-error.js";
import type { ConnectionRecord } from "../store/records.js";
import type { OAuthStateRecord } from "../store/oauth-state-repository.js";
import { lookupAccount } from "./account-lookup.js";
import { insertGeneration, tokenSetFrom } from "./credential-store.js";
import type { OAuthContext } from "./oauth-context.js";
import { emitEvent, errorName } from "./oauth-events.js";
import { stateId } from "./pkce-state.js";
import type { ProviderClient } from "./provider-client.js";

/** Why a callback was refused; each has its own plain-words explanation on the callback page. */
export type CallbackFailure =
  | "state_missing"
  | "state_unknown"
  | "state_expired"
  | "state_replayed"
  | "redirect_uri_mismatch"
  | "issuer_mismatch"
  | "verifier_missing"
  | "connection_gone"
  | "provider_denied"
  | "provider_error"
  | "token_exchange_failed"
  | "provider_unavailable"
  | "internal";

/** The outcome of one callback, for the page and for tests. Never holds a secret. */
export type CallbackOutcome =
  | {
      ok: true;
      tenant: string;
      tenantName: string;
      connection: ConnectionRecord;
      providerName: string;
    }
  | {
      ok: false;
      failure: CallbackFailure;
      reason: Reason;
      /** Provider display name, when the state was recognised. */
      providerName?: string;
      /** The provider's OAuth error code (e.g. access_denied), when it sent one and it looks like one. */
      providerError?: string;
    };

class CallbackRefused extends Error {
  constructor(
    readonly failure: CallbackFailure,
    readonly reason: Reason,
    readonly providerError?: string,
  ) {
    super(failure);
  }
}

/**
 * Complete an authorization response. In order, and before any token request: find the state by its hash (unknown,
 * expired), consume it once with an insert-once marker (replay fails across brokers), check the exact redirect URI,
 * let oauth4webapi validate the response for the provider the state belongs to (iss per RFC 9207, error responses),
 * check the connection is still pending and the PKCE verifier opens. Only then exchange the code, once, seal the
 * tokens as credential generation 1 and mark the connection active with the scopes actually granted.
 *
 * @param receivedAt the redirect URI this callback was served at (the broker's configured one).
 */
export async function completeCallback(ctx: OAuthContext, params: URLSearchParams, receivedAt: string): Promise<CallbackOutcome> {
  let state: OAuthStateRecord | undefined;
  let consumed = false;
  let providerName: string | undefined;
  try {
    const stateValue = readState(params);
    state = await findState(ctx, stateValue);
    providerName = ctx.catalog.has(state.provider) ? ctx.catalog.get(state.provider).displayName : state.provider;
    consumed = await consumeState(ctx, state);
    checkRedirectUri(state, receivedAt);
    const pc = await ctx.clients.get(state.provider);
    const validated = validateResponse(pc, params, stateValue);
    const connection = await pendingConnection(ctx, state);
    const verifier = await openVerifier(ctx, state);
    const tokens = await exchangeCode(ctx, pc, validated, state, verifier);
    const done = await storeConnection(ctx, pc, state, connection, tokens);
    await emitEvent(ctx.onEvent, ctx.logger, {
      action: "connect",
      tenant: state.tenant,
      connection: state.connection,
      provider: state.provider,
      decision: "allow",
      reason: "connected",
    });
    ctx.logger.info({ tenant: state.tenant, connection: state.connection, provider: state.provider }, "oauth connect completed");
    const tenantName = (await ctx.store.tenants.get(state.tenant).catch(() => undefined))?.name ?? state.tenant;
    return { ok: true, tenant: state.tenant, tenantName, connection: done, providerName: providerName! };
  } catch (err) {
    const refused =
      err instanceof CallbackRefused
        ? err
        : err instanceof CapvaultError && err.reason === "PROVIDER_UNAVAILABLE"
          ? new CallbackRefused("provider_unavailable", "PROVIDER_UNAVAILABLE")
          : new CallbackRefused("internal", "INTERNAL");
    ctx.logger.warn(
      { tenant: state?.tenant, connection: state?.connection, provider: state?.provider, failure: refused.failure, err: err instanceof CallbackRefused ? undefined : errorName(err) },
      "oauth callback refused",
    );
    if (state && consumed) {
      // This request used the state up: the pending connection can never complete now.
      await abandonPendingConnection(ctx, state);
    }
    if (state) {
      await emitEvent(ctx.onEvent, ctx.logger, {
        action: "connect",
        tenant: state.tenant,
        connection: state.connection,
        provider: state.provider,
        decision: "deny",
        reason: refused.providerError ?? refused.failure,
      });
    }
    return { ok: false, failure: refused.failure, reason: refused.reason, providerName, providerError: refused.providerError };
  }
}

function readState(params: URLSearchParams): string {
  const all = params.getAll("state");
  if (all.length !== 1 || !all[0]) throw new CallbackRefused("state_missing", "OAUTH_STATE_INVALID");
  return all[0];
}

async function findState(ctx: OAuthContext, value: string): Promise<OAuthStateRecord> {
  if (value.length > 512) throw new CallbackRefused("state_unknown", "OAUTH_STATE_INVALID");
  const state = await ctx.store.oauthStates.get(stateId(value));
  if (!state) throw new CallbackRefused("state_unknown", "OAUTH_STATE_INVALID");
  if (state.expiresAt.getTime() <= ctx.now()) throw new CallbackRefused("state_expired", "OAUTH_STATE_INVALID");
  return state;
}

async function consumeState(ctx: OAuthContext, state: OAuthStateRecord): Promise<boolean> {
  const first = await ctx.store.oauthStates.consume(state.id, new Date(ctx.now()), state.expiresAt);
  if (!first) throw new CallbackRefused("state_replayed", "OAUTH_STATE_INVALID");
  return true;
}

function checkRedirectUri(state: OAuthStateRecord, receivedAt: string): void {
  if (state.redirectUri !== receivedAt) throw new CallbackRefused("redirect_uri_mismatch", "OAUTH_STATE_INVALID");
}

function validateResponse(pc: ProviderClient, params: URLSearchParams, stateValue: string): URLSearchParams {
  try {
    return oauth.validateAuthResponse(pc.as, pc.client, params, stateValue);
  } catch (err) {
    if (err instanceof oauth.AuthorizationResponseError) {
      const code = /^[a-z_]{1,64}$/.test(err.error) ? err.error : undefined;
      throw new CallbackRefused(code === "access_denied" ? "provider_denied" : "provider_error", "OAUTH_PROVIDER_ERROR", code);
    }
    const iss = params.getAll("iss");
    if (iss.length > 1 || iss[0] !== pc.as.issuer) throw new CallbackRefused("issuer_mismatch", "OAUTH_ISSUER_MISMATCH");
    throw new CallbackRefused("state_unknown", "OAUTH_STATE_INVALID");
  }
}

async function pendingConnection(ctx: OAuthContext, state: OAuthStateRecord): Promise<ConnectionRecord> {
  const c = await ctx.store.connections.get(state.tenant, state.connection);
  if (!c || c.status !== "pending" || c.provider !== state.provider) throw new CallbackRefused("connection_gone", "CONNECTION_NOT_FOUND");
  return c;
}

async function openVerifier(ctx: OAuthContext, state: OAuthStateRecord): Promise<string> {
  if (!state.codeVerifier) throw new CallbackRefused("verifier_missing", "OAUTH_STATE_INVALID");
  try {
    const v = (
      await ctx.vault.open(state.codeVerifier, {
        tenant: state.tenant,
        record: state.connection,
        provider: state.provider,
        field: "pkce_verifier",
      })
    ).toString("utf8");
    if (!/^[A-Za-z0-9._~-]{43,128}$/.test(v)) throw new Error("malformed verifier");
    return v;
  } catch {
    throw new CallbackRefused("verifier_missing", "OAUTH_STATE_INVALID");
  }
}

async function exchangeCode(
  ctx: OAuthContext,
  pc: ProviderClient,
  validated: URLSearchParams,
  state: OAuthStateRecord,
  verifier: string,
): Promise<oauth.TokenEndpointResponse> {
  try {
    const http = pc.http(ctx.timings.tokenRequestTimeoutMs, true);
    const res = await oauth.authorizationCodeGrantRequest(pc.as, pc.client, pc.clientAuth, validated, state.redirectUri, verifier, http);
    return await oauth.processAuthorizationCodeResponse(pc.as, pc.client, res);
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) {
      const code = /^[a-z_]{1,64}$/.test(err.error) ? err.error : undefined;
      throw new CallbackRefused("token_exchange_failed", "OAUTH_TOKEN_EXCHANGE_FAILED", code);
    }
    if (err instanceof TypeError || (err as Error)?.name === "TimeoutError" || (err as Error)?.name === "AbortError") {
      throw new CallbackRefused("provider_unavailable", "PROVIDER_UNAVAILABLE");
    }
    throw new CallbackRefused("token_exchange_failed", "OAUTH_TOKEN_EXCHANGE_FAILED");
  }
}

async function storeConnection(
  ctx: OAuthContext,
  pc: ProviderClient,
  state: OAuthStateRecord,
  connection: ConnectionRecord,
  response: oauth.TokenEndpointResponse,
): Promise<ConnectionRecord> {
  const tokens = tokenSetFrom(response, ctx.now(), state.scopes);
  const owner = { tenant: state.tenant, connection: state.connection, provider: state.provider };
  if (!(await insertGeneration(ctx, owner, 1, tokens))) throw new CallbackRefused("internal", "INTERNAL");
  const account = await lookupAccount(ctx, pc, response);
  const updated = await ctx.store.connections.update(state.tenant, state.connection, {
    status: "active",
    scopes: tokens.scopes,
    expiresAt: tokens.expiresAt,
    account,
    updatedAt: new Date(ctx.now()),
  });
  return updated ?? { ...connection, status: "active", scopes: tokens.scopes };
}

async function abandonPendingConnection(ctx: OAuthContext, state: OAuthStateRecord): Promise<void> {
  try {
    const c = await ctx.store.connections.get(state.tenant, state.connection);
    if (c?.status !== "pending") return;
    if (await ctx.store.credentials.latest(state.tenant, state.connection)) return;
    await ctx.store.connections.delete(state.tenant, state.connection);
    await ctx.vault.destroyRecordKey(state.tenant, state.connection);
  } catch (err) {
    ctx.logger.warn({ connection: state.connection, err: errorName(err) }, "could not remove an abandoned pending connection");
  }
}
