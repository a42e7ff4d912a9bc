import { createHash } from "node:crypto";
import { CapvaultError } from "../errors/capvault-error.js";
import type { Reason } from "../errors/reasons.js";
import type { ConnectionRecord } from "../store/records.js";
import { insertGeneration, openAccessToken, type TokenSet } from "./credential-store.js";
import type { OAuthContext } from "./oauth-context.js";

/** One record to import (ConnectionService.ImportConnections). Its tokens are plaintext only in memory, here. */
export interface ImportRecord {
  line: number;
  user: string;
  provider: string;
  account: string;
  accessToken: string;
  refreshToken?: string;
  expiresAt?: Date;
  scopes: string[];
}

export interface ImportSummary {
  imported: number;
  updated: number;
  unchanged: number;
  refused: Array<{ line: number; reason: Reason; message: string }>;
  /** Connections whose tokens changed (a broker forgets what it cached of them). */
  changed: string[];
}

const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/; // RFC 6749 scope-token characters
const IDENTIFIER = /^[^\u0000-\u001f\u007f]{1,256}$/;
const MAX_TOKEN_BYTES = 16 * 1024;
/** Records stored concurrently (each is a few database round trips). */
const CONCURRENCY = 16;

/**
 * The connection id of an imported account: derived from (tenant, provider, account), so importing the same account
 * again finds the same connection (the import's idempotency), with no lookup by account needed.
 */
export function importedConnectionId(tenant: string, provider: string, account: string): string {
  return `conn_${createHash("sha256").update(`import\u0000${tenant}\u0000${provider}\u0000${account}`).digest().subarray(0, 16).toString("base64url")}`;
}

/**
 * Import already-issued tokens: each record is validated whole first (a bad one is refused with a reason, never
 * half-written), then its tokens are sealed by the vault exactly as the connect flow seals them and stored as a new
 * credential generation of an ACTIVE connection. A record whose account was imported before updates that connection
 * (a new generation) or, with the same tokens, leaves it unchanged.
 */
export async function importConnections(ctx: OAuthContext, tenant: string, batches: AsyncIterable<ImportRecord[]>): Promise<ImportSummary> {
  const summary: ImportSummary = { imported: 0, updated: 0, unchanged: 0, refused: [], changed: [] };
  for await (const batch of batches) {
    let next = 0;
    const lane = async () => {
      while (next < batch.length) {
        const record = batch[next++];
        try {
          const outcome = await importOne(ctx, tenant, record);
          summary[outcome]++;
          if (outcome === "updated") summary.changed.push(importedConnectionId(tenant, record.provider, record.account));
        } catch (err) {
          const e = CapvaultError.from(err);
          summary.refused.push({ line: record.line, reason: e.reason, message: e.message });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  }
  summary.refused.sort((a, b) => a.line - b.line);
  return summary;
}

async function importOne(ctx: OAuthContext, tenant: string, r: ImportRecord): Promise<"imported" | "updated" | "unchanged"> {
  const provider = ctx.catalog.get(r.provider); // PROVIDER_UNKNOWN
  if (!IDENTIFIER.test(r.user)) throw invalid("user is required (at most 256 characters, no control characters)");
  if (!IDENTIFIER.test(r.account)) throw invalid("account is required (the provider account: login, team or email)");
  if (!r.accessToken || Buffer.byteLength(r.accessToken) > MAX_TOKEN_BYTES) throw invalid(`access_token is required (at most ${MAX_TOKEN_BYTES} bytes)`);
  if (r.refreshToken !== undefined && Buffer.byteLength(r.refreshToken) > MAX_TOKEN_BYTES) throw invalid(`refresh_token is longer than ${MAX_TOKEN_BYTES} bytes`);
  if (r.expiresAt && !Number.isFinite(r.expiresAt.getTime())) throw invalid("expires_at is not a valid time");
  for (const s of r.scopes) if (!SCOPE.test(s) || s.includes(provider.scopeSeparator)) throw invalid("a scope is not a valid scope token");

  const id = importedConnectionId(tenant, provider.id, r.account);
  const owner = { tenant, connection: id, provider: provider.id };
  const tokens: TokenSet = { accessToken: r.accessToken, scopes: [...new Set(r.scopes)], ...(r.refreshToken ? { refreshToken: r.refreshToken } : {}), ...(r.expiresAt ? { expiresAt: r.expiresAt } : {}) };
  const now = new Date(ctx.now());
  const connection: ConnectionRecord = {
    id,
    tenant,
    user: r.user,
    provider: provider.id,
    account: r.account,
    scopes: tokens.scopes,
    status: "active",
    ...(tokens.expiresAt ? { expiresAt: tokens.expiresAt } : {}),
    createdAt: now,
    updatedAt: now,
  };
  // The credential first, then the connection: a connection is never visible without its tokens.
  const latest = await ctx.store.credentials.latest(tenant, id);
  if (latest?.kind === "tokens" && (await sameTokens(ctx, latest, tokens))) {
    await ctx.store.connections.insert(connection); // completes an import interrupted between the two writes
    return "unchanged";
  }
  const generation = (latest?.generation ?? 0) + 1;
  if (!(await insertGeneration(ctx, owner, generation, tokens))) {
    throw new CapvaultError("IMPORT_CONFLICT");
  }
  if (await ctx.store.connections.insert(connection)) return "imported";
  await ctx.store.connections.update(tenant, id, {
    user: r.user,
    scopes: tokens.scopes,
    status: "active",
    ...(tokens.expiresAt ? { expiresAt: tokens.expiresAt } : {}),
    updatedAt: now,
  });
  return latest ? "updated" : "imported";
}

async function sameTokens(ctx: OAuthContext, latest: NonNullable<Awaited<ReturnType<OAuthContext["store"]["credentials"]["latest"]>>>, tokens: TokenSet): Promise<boolean> {
  if ((latest.expiresAt?.getTime() ?? 0) !== (tokens.expiresAt?.getTime() ?? 0)) return false;
  if (latest.scopes.join(" ") !== tokens.scopes.join(" ")) return false;
  if (Boolean(latest.refreshToken) !== Boolean(tokens.refreshToken)) return false;
  if ((await openAccessToken(ctx, latest)) !== tokens.accessToken) return false;
  if (!tokens.refreshToken) return true;
  const refresh = await ctx.vault.open(latest.refreshToken!, { tenant: latest.tenant, record: latest.connection, provider: latest.provider, field: "refresh_token" });
  return refresh.toString("utf8") === tokens.refreshToken;
}

function invalid(message: string): CapvaultError {
  return new CapvaultError("INVALID_REQUEST", message);
}
