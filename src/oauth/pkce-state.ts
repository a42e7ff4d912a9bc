import { createHash, randomBytes } from "node:crypto";
import * as oauth from "oauth4webapi";

/**
 * A fresh `state`: 32 random bytes (base64url), unguessable. Only its hash (`id`) is stored server-side, so a
 * database reader cannot forge a callback.
 */
export function newState(): { state: string; id: string } {
  const state = oauth.generateRandomState();
  return { state, id: stateId(state) };
}

/** The storage key of a state: base64url SHA-256. */
export function stateId(state: string): string {
  return createHash("sha256").update(state, "utf8").digest("base64url");
}

/** A fresh PKCE pair for every authorization request; always S256, never `plain` (RFC 7636, RFC 9700). */
export async function newPkce(): Promise<{ verifier: string; challenge: string; method: "S256" }> {
  const verifier = oauth.generateRandomCodeVerifier();
  return { verifier, challenge: await oauth.calculatePKCECodeChallenge(verifier), method: "S256" };
}

/** A new connection id: unguessable, URL-safe. */
export function newConnectionId(): string {
  return `conn_${randomBytes(16).toString("base64url")}`;
}
