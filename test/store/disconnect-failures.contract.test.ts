import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { STORE_BACKENDS, type StoreUnderTest } from "./store-backends.js";

describe.each(STORE_BACKENDS)("DisconnectFailureRepository contract ($name)", ({ open }) => {
  let t: StoreUnderTest;
  beforeEach(async () => {
    t = await open();
  });
  afterEach(async () => {
    await t.dispose();
  });

  it("records failures once and lists a tenant's, oldest first", async () => {
    const f = (id: string, tenant: string, at: number) => ({ id, tenant, connection: `c_${id}`, provider: "github", reason: "HTTP 503", occurredAt: new Date(at) });
    expect(await t.store.disconnectFailures.insert(f("b", "acme", 2000))).toBe(true);
    expect(await t.store.disconnectFailures.insert(f("a", "acme", 1000))).toBe(true);
    expect(await t.store.disconnectFailures.insert(f("x", "other", 500))).toBe(true);
    expect(await t.store.disconnectFailures.insert(f("a", "acme", 3000))).toBe(false);
    expect(await t.store.disconnectFailures.list("acme")).toEqual([f("a", "acme", 1000), f("b", "acme", 2000)]);
    expect(await t.store.disconnectFailures.list("none")).toEqual([]);
  });
});
