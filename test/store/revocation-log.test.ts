import { describe, expect, it } from "vitest";
import { appendToLog, findLogHead } from "../../src/store/revocation-log.js";

/** A log of `length` entries, counting the lookups made. */
function log(length: number) {
  const taken = new Set(Array.from({ length }, (_, i) => i));
  const calls = { exists: 0, insert: 0 };
  return {
    taken,
    calls,
    exists: async (seq: number) => (calls.exists++, taken.has(seq)),
    insertAt: async (seq: number) => (calls.insert++, taken.has(seq) ? false : (taken.add(seq), true)),
  };
}

describe("revocation log positions", () => {
  it("finds the head of a gap-free log in O(log n) lookups, from 0 or from a known position", async () => {
    for (const n of [0, 1, 2, 3, 5, 64, 1000, 123_457]) {
      const l = log(n);
      expect(await findLogHead(l.exists)).toBe(n);
      expect(l.calls.exists).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n + 2)) + 2);
      expect(await findLogHead(l.exists, Math.floor(n / 2))).toBe(n);
    }
  });

  it("appends at the first free position: from a hint, past collisions, or after a head search when the hint is far behind", async () => {
    const l = log(10);
    expect(await appendToLog(l.insertAt, l.exists, 10)).toBe(10);
    expect(await appendToLog(l.insertAt, l.exists, 8)).toBe(11);
    expect(await appendToLog(l.insertAt, l.exists, undefined)).toBe(12);
    const far = log(100_000);
    expect(await appendToLog(far.insertAt, far.exists, 3)).toBe(100_000);
    expect(far.calls.insert + far.calls.exists).toBeLessThan(60);
  });
});
