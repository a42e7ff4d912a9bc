import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CredentialRecord } from "../../src/store/credential-repository.js";
import { STORE_BACKENDS, type StoreUnderTest } from "./store-backends.js";

const sealed = (ct: string) => ({ v: 1 as const, dek: "dek_1", iv: "aXY=", ct, tag: "dGFn" });
const gen = (connection: string, generation: number, extra: Partial<CredentialRecord> = {}): CredentialRecord => ({
  tenant: "acme",
  connection,
  provider: "github",
  generation,
  kind: "tokens",
  accessToken: sealed(`a${generation}`),
  refreshToken: sealed(`r${generation}`),
  expiresAt: new Date(Date.UTC(2026, 0, 1, generation)),
  scopes: ["repo"],
  createdAt: new Date(Date.UTC(2026, 0, 1)),
  ...extra,
});

describe.each(STORE_BACKENDS)("CredentialRepository contract ($name)", ({ open }) => {
  let t: StoreUnderTest;
  beforeEach(async () => {
    t = await open();
  });
  afterEach(async () => {
    await t.dispose();
  });

  it("inserts each generation once; the newest generation wins", async () => {
    expect(await t.store.credentials.insert(gen("c1", 1))).toBe(true);
    expect(await t.store.credentials.insert(gen("c1", 2))).toBe(true);
    expect(await t.store.credentials.insert(gen("c1", 2, { accessToken: sealed("other") }))).toBe(false);
    expect(await t.store.credentials.latest("acme", "c1")).toEqual(gen("c1", 2));
    expect(await t.store.credentials.latest("other", "c1")).toBeUndefined();
    expect(await t.store.credentials.latest("acme", "c2")).toBeUndefined();
  });

  it("lets exactly one of many concurrent writers write a generation", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => t.store.credentials.insert(gen("c3", 5, { accessToken: sealed(`w${i}`) }))));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it("round-trips a secret-free needs_reauth generation", async () => {
    const dead: CredentialRecord = { tenant: "acme", connection: "c4", provider: "github", generation: 3, kind: "needs_reauth", scopes: [], createdAt: new Date(Date.UTC(2026, 0, 2)) };
    await t.store.credentials.insert(gen("c4", 2));
    await t.store.credentials.insert(dead);
    expect(await t.store.credentials.latest("acme", "c4")).toEqual(dead);
  });

  it("lists token generations expiring before a time, soonest first", async () => {
    await t.store.credentials.insert(gen("c5", 1));
    await t.store.credentials.insert(gen("c6", 9));
    await t.store.credentials.insert({ ...gen("c7", 1), expiresAt: undefined });
    const due = await t.store.credentials.listExpiringBefore(new Date(Date.UTC(2026, 0, 1, 5)), 10);
    expect(due.map((c) => c.connection)).toEqual(["c5"]);
  });

  it("deletes superseded generations, and all of a connection's", async () => {
    for (const g of [1, 2, 3]) await t.store.credentials.insert(gen("c8", g));
    await t.store.credentials.insert(gen("c9", 1));
    expect(await t.store.credentials.deleteBelow("acme", "c8", 3)).toBe(2);
    expect((await t.store.credentials.latest("acme", "c8"))?.generation).toBe(3);
    expect(await t.store.credentials.deleteAll("acme", "c8")).toBe(1);
    expect(await t.store.credentials.latest("acme", "c8")).toBeUndefined();
    expect(await t.store.credentials.latest("acme", "c9")).toBeDefined();
  });
});
