import type { SealedSecret } from "../vault/vault.js";

/**
 * One generation of a connection's OAuth credentials. Generations are insert-once (`<connection>:<generation>`), the
 * newest generation wins, and a generation is never updated: a rotated refresh token is never lost to a racing write.
 * A generation of kind "needs_reauth" records that the grant is dead (e.g. invalid_grant) and carries no secrets.
 */
export interface CredentialRecord {
  tenant: string;
  connection: string;
  provider: string;
  generation: number;
  kind: "tokens" | "needs_reauth";
  accessToken?: SealedSecret;
  refreshToken?: SealedSecret;
  /** Access-token expiry, when the provider sets one. */
  expiresAt?: Date;
  /** Scopes actually granted. */
  scopes: string[];
  createdAt: Date;
}

export interface CredentialRepository {
  /** Insert a generation; false if that (connection, generation) exists (someone else wrote it first). */
  insert(credential: CredentialRecord): Promise<boolean>;
  /** The newest generation of a connection. */
  latest(tenant: string, connection: string): Promise<CredentialRecord | undefined>;
  /** Generations of kind "tokens" expiring before `before` (superseded ones too: callers check `latest`). */
  listExpiringBefore(before: Date, limit: number): Promise<CredentialRecord[]>;
  /** Delete generations below `generation` (the purge of superseded credentials). */
  deleteBelow(tenant: string, connection: string, generation: number): Promise<number>;
  /** Delete every generation of a connection (disconnect). */
  deleteAll(tenant: string, connection: string): Promise<number>;
}
