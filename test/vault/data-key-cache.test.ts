import { describe, expect, it } from "vitest";
import { DataKeyCache } from "../../src/vault/data-key-cache.js";

const entry = (id: string, record = `rec-${id}`) => ({ id, tenant: "t", record, key: Buffer.alloc(32, id.length) });

describe("data key cache", () => {
  it("finds entries by id and by record, and expires them", () => {
    let now = 1000;
    const cache = new DataKeyCache({ ttlMs: 100, now: () => now });
    cache.put(entry("a"));
    expect(cache.byId("a")?.record).toBe("rec-a");
    expect(cache.byRecord("t", "rec-a")?.id).toBe("a");
    expect(cache.byRecord("t2", "rec-a")).toBeUndefined();
    now += 100;
    expect(cache.byId("a")).toBeUndefined();
    expect(cache.byRecord("t", "rec-a")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("is bounded, dropping the least recently used", () => {
    const cache = new DataKeyCache({ maxEntries: 2 });
    cache.put(entry("a"));
    cache.put(entry("b"));
    cache.byId("a");
    cache.put(entry("c"));
    expect(cache.size).toBe(2);
    expect(cache.byId("b")).toBeUndefined();
    expect(cache.byRecord("t", "rec-b")).toBeUndefined();
    expect(cache.byId("a")).toBeDefined();
    expect(cache.byId("c")).toBeDefined();
  });

  it("evicts a record, and never shows key material", () => {
    const cache = new DataKeyCache();
    cache.put(entry("a", "r"));
    cache.put(entry("b", "other"));
    cache.evictRecord("t", "r");
    expect(cache.byId("a")).toBeUndefined();
    expect(cache.byRecord("t", "r")).toBeUndefined();
    expect(cache.byId("b")).toBeDefined();
    expect(JSON.stringify(cache)).toBe('{"cachedDataKeys":1}');
  });
});
