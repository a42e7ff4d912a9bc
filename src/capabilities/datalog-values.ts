import { CapvaultError } from "../errors/capvault-error.js";
import type { Reason } from "../errors/reasons.js";

/**
 * Values that may be passed to the binding as Datalog parameters. Everything user-controlled enters Datalog this way,
 * never by string interpolation. The binding panics (`RuntimeError: unreachable`, fatal for the wasm instance) on a
 * float, null, undefined or an integer above 2^53 given as a number, so values are checked here, in JS, first.
 */
export type DatalogParam =
  | string
  | boolean
  | number
  | bigint
  | { date: string }
  | { bytes: string }
  | { set: DatalogParam[] };

/** Source text with `{name}` placeholders plus the values for them. The code is always capvault's own. */
export interface DatalogSnippet {
  code: string;
  params: Record<string, DatalogParam>;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
/** Latest date Biscuit can hold that JS Date can also represent (year 9999). */
const MAX_DATE_MS = Date.UTC(9999, 11, 31, 23, 59, 59);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether a string is well-formed UTF-16 (no lone surrogates). */
export function isWellFormedUnicode(s: string): boolean {
  return hasIsWellFormed ? (s as WellFormedCheck).isWellFormed() : !LONE_SURROGATE.test(s);
}

// String.prototype.isWellFormed (ES2024; in Node 20) answers the same question without a regular expression.
type WellFormedCheck = string & { isWellFormed(): boolean };
const hasIsWellFormed = typeof (String.prototype as Partial<WellFormedCheck>).isWellFormed === "function";

function invalid(reason: Reason, what: string, why: string): CapvaultError {
  return new CapvaultError(reason, `${what} ${why}`, { metadata: { field: what } });
}

/**
 * A string parameter: well-formed Unicode (a lone surrogate would silently become U+FFFD inside wasm, so what is
 * checked would differ from what is used), no NUL, at most `maxBytes` UTF-8 bytes, and non-empty unless allowed.
 */
export function stringParam(
  value: unknown,
  what: string,
  opts: { maxBytes: number; allowEmpty?: boolean; reason?: Reason },
): string {
  const reason = opts.reason ?? "INVALID_REQUEST";
  if (typeof value !== "string") throw invalid(reason, what, "must be a string");
  if (!opts.allowEmpty && value.length === 0) throw invalid(reason, what, "must not be empty");
  if (!isWellFormedUnicode(value)) throw invalid(reason, what, "is not well-formed Unicode");
  if (value.includes("\u0000")) throw invalid(reason, what, "must not contain NUL");
  // UTF-8 takes at most three bytes per UTF-16 code unit: only a string that could be too long is measured.
  if (value.length * 3 > opts.maxBytes && Buffer.byteLength(value, "utf8") > opts.maxBytes) throw invalid(reason, what, `is longer than ${opts.maxBytes} bytes`);
  return value;
}

/** An integer parameter: a safe integer as a number, or a bigint within the signed 64-bit range. */
export function integerParam(value: unknown, what: string): number | bigint {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "bigint" && value >= I64_MIN && value <= I64_MAX) return value;
  throw invalid("INVALID_REQUEST", what, "must be an integer within 64 bits");
}

/** The last date written (requests arrive many per second, all with the same `time`). */
let lastDate = { second: NaN, iso: "" };

/** A date parameter, truncated to whole seconds (Biscuit dates are seconds since the epoch). */
export function dateParam(value: Date, what: string): { date: string } {
  const ms = value instanceof Date ? value.getTime() : NaN;
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_DATE_MS) throw invalid("INVALID_REQUEST", what, "must be a valid date");
  const second = Math.floor(ms / 1000);
  if (second !== lastDate.second) lastDate = { second, iso: new Date(second * 1000).toISOString() };
  return { date: lastDate.iso };
}

/**
 * Re-check, inside the worker, that every parameter has a shape the binding accepts without panicking. The main thread
 * already built them with the helpers above; this is the last line of defence for the wasm instance.
 */
export function assertSafeParams(params: Record<string, unknown>): asserts params is Record<string, DatalogParam> {
  for (const name of Object.keys(params)) {
    if (!isSafeName(name) || !isSafeParam(params[name], 0)) {
      throw new CapvaultError("INTERNAL", undefined, { cause: new Error(`unsafe Datalog parameter ${name}`) });
    }
  }
}

/** Parameter names seen to be safe: a request's are a few dozen fixed names (now, path, q0n, b3v…). Bounded. */
const safeNames = new Set<string>();

function isSafeName(name: string): boolean {
  if (safeNames.has(name)) return true;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return false;
  if (safeNames.size < 1024) safeNames.add(name);
  return true;
}

/** The last date text found valid (every request of a second carries the same one: see dateParam). */
let lastSafeDate: string | null = null;

function isSafeDate(v: unknown): boolean {
  if (typeof v !== "string") return false;
  if (v === lastSafeDate) return true;
  if (!Number.isFinite(Date.parse(v))) return false;
  lastSafeDate = v;
  return true;
}

function isSafeParam(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
      return isWellFormedUnicode(value) && !value.includes("\u0000");
    case "boolean":
      return true;
    case "number":
      return Number.isSafeInteger(value);
    case "bigint":
      return value >= I64_MIN && value <= I64_MAX;
    case "object": {
      if (value === null || depth > 2) return false;
      const keys = Object.keys(value);
      if (keys.length !== 1) return false;
      const v = (value as Record<string, unknown>)[keys[0]];
      if (keys[0] === "date") return isSafeDate(v);
      if (keys[0] === "bytes") return typeof v === "string" && /^(?:[0-9a-f]{2})*$/.test(v);
      if (keys[0] === "set") return Array.isArray(v) && v.every((x) => isSafeParam(x, depth + 1));
      return false;
    }
    default:
      return false;
  }
}
