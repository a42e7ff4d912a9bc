import { describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { assertSafeParams, dateParam } from "../../src/capabilities/datalog-values.js";

const unsafe = (params: Record<string, unknown>) => {
  try {
    assertSafeParams(params);
  } catch (err) {
    return CapvaultError.is(err, "INTERNAL");
  }
  return false;
};

describe("assertSafeParams", () => {
  it("accepts what the request compiler writes, again and again", () => {
    const params = { now: dateParam(new Date("2026-12-04T13:00:00Z"), "now"), path: "/repos/a", q0n: "state", b0v: 3, approved: true };
    for (let i = 0; i < 3; i++) expect(() => assertSafeParams(params)).not.toThrow();
  });

  it("refuses bad names and values, whatever it accepted before", () => {
    const now = dateParam(new Date("2026-12-04T13:00:00Z"), "now");
    assertSafeParams({ now, path: "/a" }); // a valid date and names, seen first
    expect(unsafe({ "bad name": "x" })).toBe(true);
    expect(unsafe({ "0path": "x" })).toBe(true);
    expect(unsafe({ now: { date: "" } })).toBe(true);
    expect(unsafe({ now: { date: "not a date" } })).toBe(true);
    expect(unsafe({ now: { date: undefined } })).toBe(true);
    expect(unsafe({ now: { date: 1 } })).toBe(true);
    expect(unsafe({ path: "\u0000" })).toBe(true);
    expect(unsafe({ path: "\ud800" })).toBe(true);
    expect(unsafe({ n: 2 ** 53 })).toBe(true);
    expect(unsafe({ n: { bytes: "abc" } })).toBe(true);
    expect(unsafe({ now, path: "/a" })).toBe(false);
  });
});
