import { describe, expect, it } from "vitest";
import {
  CredentialEchoRedactor,
  echoFormsOf,
  redactCredentialEchoes,
  redactCredentialEchoStream,
  REDACTION_MARKER,
  withoutCredentialEchoes,
} from "../../src/proxy/credential-echoes.js";

const TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a"; // GitHub-shaped
const SLASHY = "ya29.a0Af+b/Cd0123456789xyz=="; // base64 alphabet: differs once JSON- or percent-encoded
const MARKED = (n: number) => (REDACTION_MARKER + "*".repeat(Math.max(0, n - REDACTION_MARKER.length))).slice(0, n);

async function collect(chunks: Buffer[], sent: string[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of redactCredentialEchoStream(
    (async function* () {
      yield* chunks;
    })(),
    sent,
  ))
    out.push(c);
  return out;
}

describe("echoFormsOf", () => {
  it("is the token alone when no encoding changes it", () => {
    expect(echoFormsOf(TOKEN)).toEqual([TOKEN]);
    expect(echoFormsOf("")).toEqual([]);
  });
  it("adds the JSON escapings (standard, PHP \\/, Go \\u003c, .NET \\u002B) and the percent-encoding that differ", () => {
    expect(echoFormsOf(SLASHY).sort()).toEqual(
      ["ya29.a0Af+b/Cd0123456789xyz==", "ya29.a0Af+b\\/Cd0123456789xyz==", "ya29.a0Af\\u002Bb/Cd0123456789xyz==", "ya29.a0Af%2Bb%2FCd0123456789xyz%3D%3D"].sort(),
    );
    expect(echoFormsOf('a"b\\c<&')).toContain('a\\"b\\\\c\\u003c\\u0026');
  });
});

describe("redactCredentialEchoes (a whole body)", () => {
  it("overwrites every echo, keeping the length, and nothing else", () => {
    const body = Buffer.from(`{"headers":{"Authorization":"Bearer ${TOKEN}"},"again":"${TOKEN}${TOKEN}","x":1}`);
    const out = redactCredentialEchoes(body, [TOKEN]);
    expect(out.length).toBe(body.length);
    expect(out.toString()).toBe(`{"headers":{"Authorization":"Bearer ${MARKED(TOKEN.length)}"},"again":"${MARKED(2 * TOKEN.length)}","x":1}`);
    expect(out.toString()).not.toContain(TOKEN);
  });
  it("catches the JSON-escaped and percent-encoded forms", () => {
    for (const form of echoFormsOf(SLASHY)) {
      const out = redactCredentialEchoes(Buffer.from(`echo: ${JSON.stringify({ a: form })} ${form}.`), [SLASHY]).toString();
      expect(out, form).not.toContain(form);
      expect(out).toContain(REDACTION_MARKER);
    }
  });
  it("redacts every credential sent (the first token and the refreshed one), overlapping echoes included", () => {
    const a = "tok_AAAA1111BBBB2222";
    const b = "2222CCCC3333DDDD";
    const out = redactCredentialEchoes(Buffer.from(`x tok_AAAA1111BBBB2222CCCC3333DDDD y ${b}`), [a, b]).toString();
    expect(out).toBe(`x ${MARKED(a.length + b.length - 4)} y ${MARKED(b.length)}`);
  });
  it("a credential shorter than the marker becomes the marker's first bytes", () => {
    expect(redactCredentialEchoes(Buffer.from("<short-secret>"), ["short-secret"]).toString()).toBe(`<${REDACTION_MARKER.slice(0, 12)}>`);
  });
  it("returns the body untouched when nothing was sent or nothing is echoed", () => {
    const body = Buffer.from("plain");
    expect(redactCredentialEchoes(body, [])).toEqual(body);
    expect(redactCredentialEchoes(body, [TOKEN]).toString()).toBe("plain");
  });
});

describe("redactCredentialEchoStream: across chunk boundaries", () => {
  const body = Buffer.from(`{"auth":"Bearer ${TOKEN}","esc":"${JSON.stringify(SLASHY).slice(1, -1).replace("/", "\\/")}","tail":"${SLASHY}"}`);
  const whole = redactCredentialEchoes(body, [TOKEN, SLASHY]);

  it("a body split in two at every offset comes out exactly as the whole body would", async () => {
    expect(whole.toString()).not.toContain(TOKEN);
    for (let i = 0; i <= body.length; i++) {
      const out = Buffer.concat(await collect([body.subarray(0, i), body.subarray(i)], [TOKEN, SLASHY]));
      expect(out.toString(), `split at ${i}`).toBe(whole.toString());
    }
  });

  it("a body split in three at every pair of offsets, and byte by byte", async () => {
    for (let i = 0; i <= body.length; i += 3) {
      for (let j = i; j <= body.length; j += 2) {
        const out = Buffer.concat(await collect([body.subarray(0, i), body.subarray(i, j), body.subarray(j)], [TOKEN, SLASHY]));
        expect(out.toString(), `split at ${i}, ${j}`).toBe(whole.toString());
      }
    }
    const bytes = [...body].map((b) => Buffer.from([b]));
    expect(Buffer.concat(await collect(bytes, [TOKEN, SLASHY])).toString()).toBe(whole.toString());
  });

  it("a token whose end is also its beginning: an echo found before the held-back tail still covers that tail", async () => {
    const self = "gho_overlap_gho";
    const whole = redactCredentialEchoes(Buffer.from(`see ${self} end`), [self]).toString();
    expect(whole).toBe(`see ${MARKED(self.length)} end`);
    expect(Buffer.concat(await collect([Buffer.from(`see ${self}`), Buffer.from(" end")], [self])).toString()).toBe(whole);
    expect(Buffer.concat(await collect([Buffer.from(`see ${self}`), Buffer.from("_overlap_gho end")], [self])).toString()).toBe(
      `see ${MARKED(self.length + 12)} end`,
    );
  });

  it("holds back at most (longest echo − 1) bytes, and only bytes that could begin an echo", () => {
    const r = new CredentialEchoRedactor([TOKEN]);
    let inBytes = 0;
    let outBytes = 0;
    for (const b of body) {
      outBytes += r.push(Buffer.from([b])).length;
      inBytes++;
      expect(inBytes - outBytes).toBeLessThanOrEqual(TOKEN.length - 1);
    }
    // A chunk that ends in nothing an echo could begin with is passed on whole (events are not delayed).
    expect(new CredentialEchoRedactor([TOKEN]).push(Buffer.from("data: {}\n\n")).toString()).toBe("data: {}\n\n");
    expect(new CredentialEchoRedactor([TOKEN]).push(Buffer.from("data: gho_16")).toString()).toBe("data: ");
  });

  it("random bodies, random chunkings: the same as the whole body, no echo left", async () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const SELF = "gho_overlap_gho";
    const pieces = [TOKEN, TOKEN.slice(0, 10), SLASHY, echoFormsOf(SLASHY)[1], SELF, "_overlap", "gho_", "x", "\n", "ya29.", '"'];
    for (let round = 0; round < 200; round++) {
      const b = Buffer.from(Array.from({ length: 1 + rand(12) }, () => pieces[rand(pieces.length)]).join(""));
      const chunks: Buffer[] = [];
      for (let at = 0; at < b.length; ) {
        const n = 1 + rand(20);
        chunks.push(b.subarray(at, at + n));
        at += n;
      }
      const out = Buffer.concat(await collect(chunks, [TOKEN, SLASHY, SELF])).toString();
      expect(out).toBe(redactCredentialEchoes(b, [TOKEN, SLASHY, SELF]).toString());
      for (const f of [TOKEN, SLASHY, SELF].flatMap(echoFormsOf)) expect(out).not.toContain(f);
    }
  });
});

describe("withoutCredentialEchoes (headers)", () => {
  it("drops a header that carries a credential in any echo form, keeps the rest", () => {
    const headers = [
      { name: "www-authenticate", value: `Bearer error="invalid_token", token="${TOKEN}"` },
      { name: "location", value: `https://api.test/cb?t=${encodeURIComponent(SLASHY)}` },
      { name: "content-type", value: "application/json" },
    ];
    expect(withoutCredentialEchoes(headers, [TOKEN, SLASHY])).toEqual([{ name: "content-type", value: "application/json" }]);
  });
});
