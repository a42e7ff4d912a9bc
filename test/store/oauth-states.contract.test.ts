import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { OAuthStateRecord } from "../../src/store/oauth-state-repository.js";
import { STORE_BACKENDS, type StoreUnderTest } from "./store-backends.js";

const sealed = { v: 1 as const, dek: "dek_1", iv: "aXY=", ct: "Y3Q=", tag: "dGFn" };
const state = (id: string, expiresAt: Date): OAuthStateRecord => ({
  id,
  tenant: "acme",
  user: "u1",
  connection: `conn_${id}`,
  provider: "github",
  redirectUri: "https://capvault.example/oauth/callback",
  scopes: ["repo"],
  codeVerifier: sealed,
  createdAt: new Date("2026-01-01T00:00:00Z"),
  expiresAt,
});

describe.each(STORE_BACKENDS)("OAuthStateRepository contract ($name)", ({ open }) => {
  let t: StoreUnderTest;
  beforeEach(async () => {
    t = await open();
  });
  afterEach(async () => {
    await t.dispose();
  });

  it("stores a state once and reads it back exactly", async () => {
    const s = state("h1", new Date("2030-01-01T00:00:00Z"));
    expect(await t.store.oauthStates.insert(s)).toBe(true);
    expect(await t.store.oauthStates.insert({ ...s, user: "other" })).toBe(false);
    expect(await t.store.oauthStates.get("h1")).toEqual(s);
    expect(await t.store.oauthStates.get("nope")).toBeUndefined();
  });

  it("lets exactly one of many concurrent consumers consume a state", async () => {
    const exp = new Date("2030-01-01T00:00:00Z");
    const results = await Promise.all(Array.from({ length: 20 }, () => t.store.oauthStates.consume("h2", new Date(), exp)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await t.store.oauthStates.consume("h2", new Date(), exp)).toBe(false);
  });

  it("purges expired states and consumption markers only", async () => {
    const past = new Date("2020-01-01T00:00:00Z");
    const future = new Date("2030-01-01T00:00:00Z");
    await t.store.oauthStates.insert(state("old", past));
    await t.store.oauthStates.insert(state("new", future));
    await t.store.oauthStates.consume("old", past, past);
    await t.store.oauthStates.consume("new", past, future);
    expect(await t.store.oauthStates.deleteExpired(new Date("2025-01-01T00:00:00Z"))).toBe(2);
    expect(await t.store.oauthStates.get("old")).toBeUndefined();
    expect(await t.store.oauthStates.get("new")).toBeDefined();
    expect(await t.store.oauthStates.consume("new", past, future)).toBe(false);
    expect(await t.store.oauthStates.consume("old", past, past)).toBe(true);
  });
});
