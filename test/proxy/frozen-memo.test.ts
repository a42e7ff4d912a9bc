import { describe, expect, it } from "vitest";
import { memoizedForFrozen } from "../../src/proxy/frozen-memo.js";

describe("memoizedForFrozen", () => {
  it("works a frozen object out once, and any other object every time", () => {
    let computed = 0;
    const double = memoizedForFrozen((o: { n: number }) => (computed++, o.n * 2));
    const frozen = Object.freeze({ n: 2 });
    expect([double(frozen), double(frozen)]).toEqual([4, 4]);
    expect(computed).toBe(1);
    const open = { n: 3 };
    expect(double(open)).toBe(6);
    open.n = 4;
    expect(double(open)).toBe(8);
    expect(computed).toBe(3);
  });

  it("keeps nothing when the computation throws", () => {
    let calls = 0;
    const failing = memoizedForFrozen(() => {
      calls++;
      throw new Error("no");
    });
    const key = Object.freeze({});
    expect(() => failing(key)).toThrow("no");
    expect(() => failing(key)).toThrow("no");
    expect(calls).toBe(2);
  });
});
