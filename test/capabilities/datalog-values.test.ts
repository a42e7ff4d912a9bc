import { describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { assertSafeParams, dateParam, isWellFormedUnicode, stringParam } from "../../src/capabilities/datalog-values.js";

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

describe("stringParam", () => {
  it("refuses lone surrogates anywhere and accepts paired ones", () => {
    for (const bad of ["\uD800", "a\uD800", "\uDC00a", "a\uDC00\uD800b", "\uD83D"]) expect(isWellFormedUnicode(bad), JSON.stringify(bad)).toBe(false);
    for (const good of ["", "abc", "\uD83D\uDE00", "é", "a\uD83D\uDE00b"]) expect(isWellFormedUnicode(good), JSON.stringify(good)).toBe(true);
  });
  it("counts UTF-8 bytes, not UTF-16 code units, against maxBytes", () => {
    expect(stringParam("aaaa", "v", { maxBytes: 4 })).toBe("aaaa");
    expect(() => stringParam("aaaaa", "v", { maxBytes: 4 })).toThrow(CapvaultError);
    expect(stringParam("éé", "v", { maxBytes: 4 })).toBe("éé");
    expect(() => stringParam("ééé", "v", { maxBytes: 4 })).toThrow(CapvaultError); // 6 bytes in 3 code units
    expect(() => stringParam("\u20ac\u20ac", "v", { maxBytes: 5 })).toThrow(CapvaultError); // 6 bytes in 2 code units
    expect(stringParam("\u20ac\u20ac", "v", { maxBytes: 6 })).toBe("\u20ac\u20ac");
  });
});
