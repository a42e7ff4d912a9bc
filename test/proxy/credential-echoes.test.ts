import { describe, expect, it } from "vitest";
import { redactCredentialEchoes, redactCredentialEchoesInStream, withoutCredentialEchoes } from "../../src/proxy/credential-echoes.js";

const TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a/x+y";

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return Buffer.concat(out);
}

async function* split(body: Buffer, at: number[]): AsyncGenerator<Buffer> {
  let from = 0;
  for (const cut of at) {
    yield body.subarray(from, cut);
    from = cut;
  }
  yield body.subarray(from);
}

describe("credential echoes", () => {
  const echoed = Buffer.from(`{"headers":{"Authorization":"Bearer ${TOKEN}"},"again":"${TOKEN}"}`);

  it("overwrites every occurrence in a buffered body, keeping its length", () => {
    const out = redactCredentialEchoes(echoed, [TOKEN]);
    expect(out.length).toBe(echoed.length);
    expect(out.includes(TOKEN)).toBe(false);
    expect(out.toString()).toContain("[redacted by capvault]");
    expect(echoed.includes(TOKEN)).toBe(true); // the input is not modified
  });

  it("catches the JSON-escaped and URL-encoded forms", () => {
    const escaped = Buffer.from(JSON.stringify({ a: TOKEN }).replace(/\//g, "\\/") + " q=" + encodeURIComponent(TOKEN));
    const out = redactCredentialEchoes(escaped, [TOKEN]).toString();
    expect(out).not.toContain(TOKEN.replace(/\//g, "\\/"));
    expect(out).not.toContain(encodeURIComponent(TOKEN));
  });

  it("leaves a body without the credential untouched (same buffer)", () => {
    const clean = Buffer.from('{"ok":true}');
    expect(redactCredentialEchoes(clean, [TOKEN])).toBe(clean);
  });

  it("finds a credential split across chunks, at every offset", async () => {
    for (let cut = 1; cut < echoed.length; cut++) {
      const out = await collect(redactCredentialEchoesInStream(split(echoed, [cut]), [TOKEN]));
      expect(out.length, `cut at ${cut}`).toBe(echoed.length);
      expect(out.includes(TOKEN), `cut at ${cut}`).toBe(false);
    }
    const bytewise = await collect(redactCredentialEchoesInStream(split(echoed, Array.from({ length: echoed.length - 1 }, (_, i) => i + 1)), [TOKEN]));
    expect(bytewise.includes(TOKEN)).toBe(false);
    expect(bytewise.equals(redactCredentialEchoes(echoed, [TOKEN]))).toBe(true);
  });

  it("holds back nothing but a possible start of a credential: a slow stream's chunks arrive as they come", async () => {
    const chunks = [Buffer.from("first chunk, "), Buffer.from(`then gho_`), Buffer.from("16C7 is not the token")];
    const out: Buffer[] = [];
    for await (const c of redactCredentialEchoesInStream(split(Buffer.concat(chunks), [13, 22]), [TOKEN])) out.push(c);
    expect(out[0].toString()).toBe("first chunk, ");
    expect(out[1].toString()).toBe("then ");
    expect(Buffer.concat(out).toString()).toBe(Buffer.concat(chunks).toString());
  });

  it("drops a header that contains a credential", () => {
    expect(withoutCredentialEchoes([{ name: "x-echo", value: `Bearer ${TOKEN}` }, { name: "x-ok", value: "1" }], [TOKEN])).toEqual([{ name: "x-ok", value: "1" }]);
  });
});
