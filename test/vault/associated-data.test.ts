import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { gcmOpen, gcmSeal } from "../../src/vault/aes-gcm.js";
import { encodeAssociatedData, secretAssociatedData, wrapAssociatedData } from "../../src/vault/associated-data.js";

const ctx = { tenant: "acme", record: "conn_1", provider: "github", field: "access_token" };

describe("associated data", () => {
  it("is unambiguous: shifting bytes between parts changes the encoding", () => {
    const seen = new Set<string>();
    for (const parts of [["ab", "c"], ["a", "bc"], ["abc", ""], ["", "abc"], ["abc"], ["a", "b", "c"], ["a\u0000b", "c"]]) {
      seen.add(encodeAssociatedData(parts).toString("hex"));
    }
    expect(seen.size).toBe(7);
    expect(encodeAssociatedData(["é"]).toString("hex")).toBe("00000002c3a9");
  });

  it("refuses strings UTF-8 cannot encode faithfully (lone surrogates)", () => {
    expect(() => encodeAssociatedData(["\uD800"])).toThrow(/well-formed/);
    expect(() => encodeAssociatedData(["\uDC00x"])).toThrow(/well-formed/);
    expect(encodeAssociatedData(["🔑"])).toHaveLength(8);
  });

  it("binds version, data key, tenant, record, provider and field at the GCM level (same key)", () => {
    const key = randomBytes(32);
    const sealed = gcmSeal(key, Buffer.from("s3cret"), secretAssociatedData("dek_1", ctx));
    expect(gcmOpen(key, sealed, secretAssociatedData("dek_1", ctx))?.toString()).toBe("s3cret");
    for (const other of [
      secretAssociatedData("dek_2", ctx),
      secretAssociatedData("dek_1", { ...ctx, tenant: "globex" }),
      secretAssociatedData("dek_1", { ...ctx, record: "conn_2" }),
      secretAssociatedData("dek_1", { ...ctx, provider: "slack" }),
      secretAssociatedData("dek_1", { ...ctx, field: "refresh_token" }),
      // moving a boundary between two fields
      secretAssociatedData("dek_1", { ...ctx, tenant: "acm", record: "econn_1" }),
      wrapAssociatedData("dek_1", "acme", "conn_1", "github"),
    ]) {
      expect(gcmOpen(key, sealed, other)).toBeUndefined();
    }
    expect(gcmOpen(randomBytes(32), sealed, secretAssociatedData("dek_1", ctx))).toBeUndefined();
    expect(gcmOpen(key, { ...sealed, tag: sealed.tag.subarray(0, 8) }, secretAssociatedData("dek_1", ctx))).toBeUndefined();
  });
});
