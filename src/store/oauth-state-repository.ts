import type { SealedSecret } from "../vault/vault.js";

/**
 * One pending authorization request, keyed by the SHA-256 of its `state` (the state itself is never stored).
 * Bound to the tenant, the pending connection, the provider and the exact redirect URI; the PKCE verifier is sealed.
 */
export interface OAuthStateRecord {
  /** base64url SHA-256 of the state value sent to the provider. */
  id: string;
  tenant: string;
  user: string;
  connection: string;
  provider: string;
  /** The exact redirect URI sent in the authorization request (and again in the code exchange). */
  redirectUri: string;
  /** Scopes requested. */
  scopes: string[];
  /** The PKCE code verifier, sealed with the vault (field "pkce_verifier"). */
  codeVerifier?: SealedSecret;
  createdAt: Date;
  expiresAt: Date;
}

/**
 * One-time OAuth states. Consumption is an insert-once document, so exactly one caller across all broker processes
 * consumes a state, on MongoDB and FerretDB alike (FerretDB updates are not atomic; `_id` inserts are).
 */
export interface OAuthStateRepository {
  /** Store a new state; false if the id exists. */
  insert(state: OAuthStateRecord): Promise<boolean>;
  get(id: string): Promise<OAuthStateRecord | undefined>;
  /** Mark the state used: true for exactly one caller, false for every later one. */
  consume(id: string, consumedAt: Date, expiresAt: Date): Promise<boolean>;
  /** The purge job: delete states and consumption markers that expired before `before`. */
  deleteExpired(before: Date): Promise<number>;
}
