import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { printCheck, printPredicate, printRule, printTerm } from "../../src/capabilities/datalog-printer.js";
import { decodeToken, expiryOf, readEnvelope, TokenFormatError } from "../../src/capabilities/token-format.js";

const SAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "shared", "conformance", "biscuit-samples");
const samples = JSON.parse(readFileSync(resolve(SAMPLES, "samples.json"), "utf8")) as {
  testcases: Array<{ filename: string; token: Array<{ code: string }> }>;
};

/** Blocks where the reference printing cannot match: tampered tokens, and one unescaped tab (capvault escapes). */
const EXPECTED_DIFFERENT = new Set(["test004_random_block.bc", "test006_reordered_blocks.bc", "test021_parsing.bc"]);

describe("token format reader", () => {
  it("decodes every specification sample to the same Datalog as the reference printer", () => {
    let compared = 0;
    for (const tc of samples.testcases) {
      if (EXPECTED_DIFFERENT.has(tc.filename)) continue;
      const decoded = decodeToken(new Uint8Array(readFileSync(resolve(SAMPLES, tc.filename))));
      expect(decoded.blocks).toHaveLength(tc.token.length);
      tc.token.forEach((block, i) => {
        const b = decoded.blocks[i];
        const lines = [...b.facts.map(printPredicate), ...b.rules.map(printRule), ...b.checks.map(printCheck)].map((l) => `${l};\n`);
        expect(lines.join(""), `${tc.filename} block ${i}`).toBe(block.code);
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(55);
  });

  it("escapes strings where the reference printer does not", () => {
    const decoded = decodeToken(new Uint8Array(readFileSync(resolve(SAMPLES, "test021_parsing.bc"))));
    expect(printPredicate(decoded.blocks[0].facts[0])).toBe('ns::fact_123("hello é\\t😁")');
    expect(printTerm({ string: 'a"); right("x' })).toBe('"a\\"); right(\\"x"');
  });

  it("reads the root key id and counts blocks without verifying", () => {
    const t = new Uint8Array(readFileSync(resolve(SAMPLES, "test001_basic.bc")));
    const env = readEnvelope(t);
    expect(env.rootKeyId).toBeUndefined();
    expect(env.blocks).toHaveLength(2);
  });

  it("recognises expiry checks structurally", () => {
    const decoded = decodeToken(new Uint8Array(readFileSync(resolve(SAMPLES, "test009_expired_token.bc"))));
    const checks = decoded.blocks[1].checks;
    expect(checks.map(expiryOf)).toEqual([undefined, new Date("2018-12-20T00:00:00Z")]);
  });

  it("refuses what is not a token", () => {
    for (const bytes of [new Uint8Array([]), new Uint8Array([1, 2, 3]), new Uint8Array(Buffer.from("hello world")), new Uint8Array([0x0a, 0xff])]) {
      expect(() => readEnvelope(bytes)).toThrow(TokenFormatError);
    }
  });
});
