import { randomBytes } from "node:crypto";
import { CapvaultError } from "../errors/capvault-error.js";
import { openAccessToken, openRefreshToken } from "./credential-store.js";
import type { OAuthContext } from "./oauth-context.js";
import { emitEvent, errorName } from "./oauth-events.js";
import { revokeAtProvider, type TokensToRevoke } from "./revocation.js";

/** The result of a disconnect: whether the provider confirmed revocation. The local deletion always happened. */
export interface DisconnectResult {
  revokedAtProvider: boolean;
}

/**
 * Disconnect a connection: revoke at the provider where it can, then ALWAYS delete locally (the connection, every
 * credential generation, and the record's data key via vault.destroyRecordKey). A revocation that failed (provider
 * down, error answer) is recorded as a disconnect failure and reported as `revokedAtProvider: false`; it never
 * blocks the user.
 */
export async function disconnect(ctx: OAuthContext, tenant: string, connectionId: string): Promise<DisconnectResult> {
  const connection = await ctx.store.connections.get(tenant, connectionId);
  if (!connection) throw new CapvaultError("CONNECTION_NOT_FOUND", undefined, { metadata: { connection: connectionId } });

  let revoked = false;
  let failure: string | undefined;
  const latest = await ctx.store.credentials.latest(tenant, connectionId);
  if (latest?.kind === "tokens") {
    try {
      const tokens: TokensToRevoke = { accessToken: await openAccessToken(ctx, latest), refreshToken: await openRefreshToken(ctx, latest) };
      const pc = await ctx.clients.get(connection.provider);
      const result = await revokeAtProvider(ctx, pc, tokens);
      revoked = result.revoked;
      if (!result.revoked) failure = result.failure;
    } catch (err) {
      failure = err instanceof CapvaultError ? err.reason : "revocation failed";
      ctx.logger.warn({ connection: connectionId, err: errorName(err) }, "revocation could not be attempted");
    }
  }

  await ctx.store.connections.delete(tenant, connectionId);
  await ctx.store.credentials.deleteAll(tenant, connectionId);
  await ctx.vault.destroyRecordKey(tenant, connectionId);

  if (failure) {
    await ctx.store.disconnectFailures
      .insert({
        id: `dcf_${randomBytes(12).toString("base64url")}`,
        tenant,
        connection: connectionId,
        provider: connection.provider,
        reason: failure,
        occurredAt: new Date(ctx.now()),
      })
      .catch((err) => ctx.logger.error({ connection: connectionId, err: errorName(err) }, "could not record a disconnect failure"));
    ctx.logger.warn({ tenant, connection: connectionId, provider: connection.provider, failure }, "revocation at the provider failed; deleted locally");
  }
  await emitEvent(ctx.onEvent, ctx.logger, {
    action: "disconnect",
    tenant,
    connection: connectionId,
    provider: connection.provider,
    decision: failure ? "error" : "allow",
    reason: failure ? `revocation_failed: ${failure}` : revoked ? "revoked" : "deleted_locally",
  });
  return { revokedAtProvider: revoked };
}
