import { expect } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import type { Reason } from "../../src/errors/reasons.js";
import { Capabilities, type CapabilitiesOptions } from "../../src/capabilities/capabilities.js";
import { generateRootKey, toPublicKey, type RootKey, type RootPublicKey } from "../../src/capabilities/root-keys.js";
import type { AccessRequest } from "../../src/capabilities/vocabulary.js";

/** A capability runtime plus one root key, for tests. */
export interface Harness {
  caps: Capabilities;
  rootKey: RootKey;
  publicKeys: RootPublicKey[];
}

/** One worker by default: test files run in parallel on a 2-core machine. */
export function harness(options: CapabilitiesOptions = {}): Harness {
  const rootKey = generateRootKey(1);
  return { caps: new Capabilities({ workers: 1, ...options }), rootKey, publicKeys: [toPublicKey(rootKey)] };
}

/** The token most tests start from: agent-7 of acme may GET under /repos/acme/ on conn-github-1 for an hour. */
export async function mintAcmeToken(h: Harness, now: Date): Promise<string> {
  const minted = await h.caps.mint({
    rootKey: h.rootKey,
    tenant: "acme",
    subject: "agent-7",
    grants: [{ connection: "conn-github-1", method: "GET", pathPrefix: "/repos/acme/" }],
    ttlSeconds: 3600,
    now,
  });
  return minted.token;
}

/** A GitHub proxy request for the acme tenant. */
export function githubRequest(overrides: Partial<AccessRequest> = {}): AccessRequest {
  return {
    tenant: "acme",
    connection: "conn-github-1",
    provider: "github",
    host: "api.github.com",
    method: "GET",
    path: "/repos/acme/widgets/issues",
    ...overrides,
  };
}

/** Assert that `promise` rejects with a CapvaultError of `reason`. */
export async function expectReason(promise: Promise<unknown>, reason: Reason): Promise<CapvaultError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(CapvaultError);
    expect((err as CapvaultError).reason).toBe(reason);
    return err as CapvaultError;
  }
  throw new Error(`expected rejection with ${reason}`);
}

/** Assert that `f` throws a CapvaultError of `reason` synchronously. */
export function expectThrowsReason(f: () => unknown, reason: Reason): void {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(CapvaultError);
    expect((err as CapvaultError).reason).toBe(reason);
    return;
  }
  throw new Error(`expected a throw with ${reason}`);
}
