import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/**
 * A structured reader for the Biscuit wire format (biscuit schema.proto, blocks version 3 to 6).
 *
 * The binding can verify tokens but only prints their contents as Datalog, which does not escape quotes (never parse
 * it again). This reader gives capvault the token's structure directly from the signed bytes: the root key id and the
 * block count before any wasm work (so caps apply before parsing), and per-block facts, rules and checks for Inspect.
 * It never decides validity: signatures are verified by the binding, on the same bytes.
 */

/** A Datalog term as structured data. Facts never contain variables. */
export type TermValue =
  | { string: string }
  | { integer: number | bigint }
  | { boolean: boolean }
  | { date: Date }
  | { bytes: Uint8Array }
  | { set: TermValue[] }
  | { array: TermValue[] }
  | { map: Array<{ key: string | number | bigint; value: TermValue }> }
  | { null: true }
  | { variable: string };

/** A predicate: a name and its terms. */
export interface Predicate {
  name: string;
  terms: TermValue[];
}

/** One operation of an expression, in the wire format's reverse Polish order. */
export type ExpressionOp =
  | { value: TermValue }
  | { unary: UnaryKind; ffiName?: string }
  | { binary: BinaryKind; ffiName?: string }
  | { closure: { params: string[]; ops: ExpressionOp[] } };

export type UnaryKind = "negate" | "parens" | "length" | "typeof" | "ffi";
export type BinaryKind =
  | "<" | ">" | "<=" | ">=" | "===" | "contains" | "starts_with" | "ends_with" | "matches" | "+" | "-" | "*" | "/"
  | "&&" | "||" | "intersection" | "union" | "&" | "|" | "^" | "!==" | "==" | "!=" | "lazy&&" | "lazy||" | "all" | "any"
  | "get" | "ffi" | "try_or";

/** A rule scope annotation (`trusting ...`). */
export type Scope = { authority: true } | { previous: true } | { publicKey: string };

/** A rule body (also the shape of each query of a check). */
export interface RuleBody {
  head: Predicate;
  body: Predicate[];
  expressions: ExpressionOp[][];
  scopes: Scope[];
}

/** A check: `check if`, `check all` or `reject if`, with one or more queries joined by `or`. */
export interface CheckBody {
  kind: "check if" | "check all" | "reject if";
  queries: RuleBody[];
}

/** One decoded block. */
export interface DecodedBlock {
  /** Block format version (3 to 6). */
  version: number;
  context?: string;
  facts: Predicate[];
  rules: RuleBody[];
  checks: CheckBody[];
  scopes: Scope[];
  /** The external (third-party) signer's public key, as `ed25519/<hex>`, for third-party blocks. */
  externalKey?: string;
}

/** The outer layer of a token: enough to pick the root key and apply caps before parsing with wasm. */
export interface TokenEnvelope {
  rootKeyId?: number;
  /** Serialized blocks; index 0 is the authority block. */
  blocks: Array<{ bytes: Uint8Array; externalKey?: string }>;
}

/** Thrown when the bytes are not a Biscuit token; callers map it to CAPABILITY_MALFORMED. */
export class TokenFormatError extends Error {
  override readonly name = "TokenFormatError";
}

/** The Biscuit default symbol table (indexes 0..27); token symbols start at 1024. */
const DEFAULT_SYMBOLS = [
  "read", "write", "resource", "operation", "right", "time", "role", "owner", "tenant", "namespace", "user", "team",
  "service", "admin", "email", "group", "member", "ip_address", "client", "client_ip", "domain", "path", "version",
  "cluster", "node", "hostname", "nonce", "query",
];
const SYMBOL_OFFSET = 1024;

const UNARY: UnaryKind[] = ["negate", "parens", "length", "typeof", "ffi"];
const BINARY: BinaryKind[] = [
  "<", ">", "<=", ">=", "===", "contains", "starts_with", "ends_with", "matches", "+", "-", "*", "/", "&&", "||",
  "intersection", "union", "&", "|", "^", "!==", "==", "!=", "lazy&&", "lazy||", "all", "any", "get", "ffi", "try_or",
];
const MAX_DEPTH = 32;

/** Iterate over the fields of one protobuf message, handing each field's reader position to `onField`. */
export function readMessage(bytes: Uint8Array, onField: (field: number, wire: WireType, r: BinaryReader) => void): void {
  const r = new BinaryReader(bytes);
  try {
    while (r.pos < r.len) {
      const [field, wire] = r.tag();
      const before = r.pos;
      onField(field, wire, r);
      if (r.pos === before) r.skip(wire, field);
    }
  } catch (err) {
    if (err instanceof TokenFormatError) throw err;
    throw new TokenFormatError(`invalid protobuf: ${(err as Error).message}`);
  }
}

/** Refuse a field whose wire type is not the schema's. */
export function expectWire(actual: WireType, expected: WireType): void {
  if (actual !== expected) throw new TokenFormatError("unexpected wire type");
}

function readPublicKey(bytes: Uint8Array): string {
  let algorithm = 0;
  let key: Uint8Array | undefined;
  readMessage(bytes, (f, w, r) => {
    if (f === 1) (expectWire(w, WireType.Varint), (algorithm = r.int32()));
    else if (f === 2) (expectWire(w, WireType.LengthDelimited), (key = r.bytes()));
  });
  if (!key) throw new TokenFormatError("public key without key bytes");
  const prefix = algorithm === 0 ? "ed25519" : algorithm === 1 ? "secp256r1" : `algorithm${algorithm}`;
  return `${prefix}/${Buffer.from(key).toString("hex")}`;
}

/**
 * Read a token's outer layer: root key id and serialized blocks. Does not verify anything. Throws TokenFormatError.
 */
export function readEnvelope(token: Uint8Array): TokenEnvelope {
  const out: TokenEnvelope = { blocks: [] };
  let authority: TokenEnvelope["blocks"][number] | undefined;
  let hasProof = false;
  readMessage(token, (f, w, r) => {
    if (f === 1) (expectWire(w, WireType.Varint), (out.rootKeyId = r.uint32()));
    else if (f === 2) (expectWire(w, WireType.LengthDelimited), (authority = readSignedBlock(r.bytes())));
    else if (f === 3) (expectWire(w, WireType.LengthDelimited), out.blocks.push(readSignedBlock(r.bytes())));
    else if (f === 4) (expectWire(w, WireType.LengthDelimited), r.bytes(), (hasProof = true));
  });
  if (!authority || !hasProof) throw new TokenFormatError("not a biscuit token: missing authority block or proof");
  out.blocks.unshift(authority);
  return out;
}

function readSignedBlock(bytes: Uint8Array): TokenEnvelope["blocks"][number] {
  let block: Uint8Array | undefined;
  let externalKey: string | undefined;
  readMessage(bytes, (f, w, r) => {
    if (f === 1) (expectWire(w, WireType.LengthDelimited), (block = r.bytes()));
    else if (f === 4) {
      expectWire(w, WireType.LengthDelimited);
      readMessage(r.bytes(), (ef, ew, er) => {
        if (ef === 2) (expectWire(ew, WireType.LengthDelimited), (externalKey = readPublicKey(er.bytes())));
      });
    }
  });
  if (!block) throw new TokenFormatError("signed block without content");
  return { bytes: block, externalKey };
}

/** Symbol and public-key tables, following the token's interning rules. */
interface Tables {
  symbols: string[];
  publicKeys: string[];
}

class BlockReader {
  constructor(private readonly tables: Tables) {}

  symbol(index: bigint | string | number): string {
    const i = Number(index);
    if (i < SYMBOL_OFFSET) {
      const s = DEFAULT_SYMBOLS[i];
      if (s === undefined) throw new TokenFormatError(`unknown default symbol ${i}`);
      return s;
    }
    const s = this.tables.symbols[i - SYMBOL_OFFSET];
    if (s === undefined) throw new TokenFormatError(`unknown symbol ${i}`);
    return s;
  }

  term(bytes: Uint8Array, depth: number): TermValue {
    if (depth > MAX_DEPTH) throw new TokenFormatError("terms nested too deeply");
    let value: TermValue | undefined;
    readMessage(bytes, (f, w, r) => {
      switch (f) {
        case 1: expectWire(w, WireType.Varint); value = { variable: this.symbol(r.uint32()) }; break;
        case 2: {
          expectWire(w, WireType.Varint);
          const n = BigInt(r.int64());
          value = { integer: n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n };
          break;
        }
        case 3: expectWire(w, WireType.Varint); value = { string: this.symbol(r.uint64()) }; break;
        case 4: expectWire(w, WireType.Varint); value = { date: new Date(Number(BigInt(r.uint64())) * 1000) }; break;
        case 5: expectWire(w, WireType.LengthDelimited); value = { bytes: r.bytes() }; break;
        case 6: expectWire(w, WireType.Varint); value = { boolean: r.bool() }; break;
        case 7: case 9: {
          expectWire(w, WireType.LengthDelimited);
          const items: TermValue[] = [];
          readMessage(r.bytes(), (ff, ww, rr) => {
            if (ff === 1) (expectWire(ww, WireType.LengthDelimited), items.push(this.term(rr.bytes(), depth + 1)));
          });
          value = f === 7 ? { set: items } : { array: items };
          break;
        }
        case 8: expectWire(w, WireType.LengthDelimited); r.bytes(); value = { null: true }; break;
        case 10: {
          expectWire(w, WireType.LengthDelimited);
          const entries: Array<{ key: string | number | bigint; value: TermValue }> = [];
          readMessage(r.bytes(), (ff, ww, rr) => {
            if (ff !== 1) return;
            expectWire(ww, WireType.LengthDelimited);
            let key: string | number | bigint | undefined;
            let entryValue: TermValue | undefined;
            readMessage(rr.bytes(), (ef, ew, er) => {
              if (ef === 1) {
                expectWire(ew, WireType.LengthDelimited);
                readMessage(er.bytes(), (kf, kw, kr) => {
                  expectWire(kw, WireType.Varint);
                  if (kf === 1) {
                    const n = BigInt(kr.int64());
                    key = n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
                  } else if (kf === 2) key = this.symbol(kr.uint64());
                });
              } else if (ef === 2) (expectWire(ew, WireType.LengthDelimited), (entryValue = this.term(er.bytes(), depth + 1)));
            });
            if (key === undefined || !entryValue) throw new TokenFormatError("incomplete map entry");
            entries.push({ key, value: entryValue });
          });
          value = { map: entries };
          break;
        }
      }
    });
    if (!value) throw new TokenFormatError("empty term");
    return value;
  }

  predicate(bytes: Uint8Array): Predicate {
    let name: string | undefined;
    const terms: TermValue[] = [];
    readMessage(bytes, (f, w, r) => {
      if (f === 1) (expectWire(w, WireType.Varint), (name = this.symbol(r.uint64())));
      else if (f === 2) (expectWire(w, WireType.LengthDelimited), terms.push(this.term(r.bytes(), 0)));
    });
    if (name === undefined) throw new TokenFormatError("predicate without name");
    return { name, terms };
  }

  ops(bytes: Uint8Array[], depth: number): ExpressionOp[] {
    if (depth > MAX_DEPTH) throw new TokenFormatError("expression nested too deeply");
    return bytes.map((opBytes) => {
      let op: ExpressionOp | undefined;
      readMessage(opBytes, (f, w, r) => {
        expectWire(w, WireType.LengthDelimited);
        const inner = r.bytes();
        if (f === 1) op = { value: this.term(inner, 0) };
        else if (f === 2 || f === 3) {
          let kind = 0;
          let ffiName: string | undefined;
          readMessage(inner, (kf, kw, kr) => {
            expectWire(kw, WireType.Varint);
            if (kf === 1) kind = kr.int32();
            else if (kf === 2) ffiName = this.symbol(kr.uint64());
          });
          if (f === 2) {
            const unary = UNARY[kind];
            if (!unary) throw new TokenFormatError(`unknown unary operation ${kind}`);
            op = { unary, ...(ffiName === undefined ? {} : { ffiName }) };
          } else {
            const binary = BINARY[kind];
            if (!binary) throw new TokenFormatError(`unknown binary operation ${kind}`);
            op = { binary, ...(ffiName === undefined ? {} : { ffiName }) };
          }
        } else if (f === 4) {
          const params: string[] = [];
          const inner2: Uint8Array[] = [];
          readMessage(inner, (cf, cw, cr) => {
            if (cf === 1) {
              if (cw === WireType.LengthDelimited) {
                // packed repeated uint32
                const packed = new BinaryReader(cr.bytes());
                while (packed.pos < packed.len) params.push(this.symbol(packed.uint32()));
              } else params.push(this.symbol(cr.uint32()));
            } else if (cf === 2) (expectWire(cw, WireType.LengthDelimited), inner2.push(cr.bytes()));
          });
          op = { closure: { params, ops: this.ops(inner2, depth + 1) } };
        }
      });
      if (!op) throw new TokenFormatError("empty expression operation");
      return op;
    });
  }

  scope(bytes: Uint8Array): Scope {
    let scope: Scope | undefined;
    readMessage(bytes, (f, w, r) => {
      expectWire(w, WireType.Varint);
      if (f === 1) scope = r.int32() === 0 ? { authority: true } : { previous: true };
      else if (f === 2) {
        const i = Number(BigInt(r.int64()));
        scope = { publicKey: this.tables.publicKeys[i] ?? `<public key #${i}>` };
      }
    });
    if (!scope) throw new TokenFormatError("empty scope");
    return scope;
  }

  rule(bytes: Uint8Array): RuleBody {
    let head: Predicate | undefined;
    const body: Predicate[] = [];
    const expressions: ExpressionOp[][] = [];
    const scopes: Scope[] = [];
    readMessage(bytes, (f, w, r) => {
      expectWire(w, WireType.LengthDelimited);
      const inner = r.bytes();
      if (f === 1) head = this.predicate(inner);
      else if (f === 2) body.push(this.predicate(inner));
      else if (f === 3) {
        const opBytes: Uint8Array[] = [];
        readMessage(inner, (ef, ew, er) => {
          if (ef === 1) (expectWire(ew, WireType.LengthDelimited), opBytes.push(er.bytes()));
        });
        expressions.push(this.ops(opBytes, 0));
      } else if (f === 4) scopes.push(this.scope(inner));
    });
    if (!head) throw new TokenFormatError("rule without head");
    return { head, body, expressions, scopes };
  }

  check(bytes: Uint8Array): CheckBody {
    const queries: RuleBody[] = [];
    let kind = 0;
    readMessage(bytes, (f, w, r) => {
      if (f === 1) (expectWire(w, WireType.LengthDelimited), queries.push(this.rule(r.bytes())));
      else if (f === 2) (expectWire(w, WireType.Varint), (kind = r.int32()));
    });
    const kinds = ["check if", "check all", "reject if"] as const;
    const k = kinds[kind];
    if (!k) throw new TokenFormatError(`unknown check kind ${kind}`);
    return { kind: k, queries };
  }
}

/** Decode one serialized block, extending `tables` as the token format prescribes. */
function decodeBlock(bytes: Uint8Array, tables: Tables, externalKey: string | undefined): DecodedBlock {
  // First pass: the block's own symbols and public keys (they may appear after the facts that use them).
  const symbols: string[] = [];
  const publicKeys: string[] = [];
  let version = 3;
  let context: string | undefined;
  readMessage(bytes, (f, w, r) => {
    if (f === 1) (expectWire(w, WireType.LengthDelimited), symbols.push(r.string()));
    else if (f === 2) (expectWire(w, WireType.LengthDelimited), (context = r.string()));
    else if (f === 3) (expectWire(w, WireType.Varint), (version = r.uint32()));
    else if (f === 8) (expectWire(w, WireType.LengthDelimited), publicKeys.push(readPublicKey(r.bytes())));
  });
  // Third-party blocks use their own tables; the others extend the token's.
  const local: Tables = externalKey
    ? { symbols, publicKeys }
    : { symbols: (tables.symbols.push(...symbols), tables.symbols), publicKeys: (tables.publicKeys.push(...publicKeys), tables.publicKeys) };
  const reader = new BlockReader(local);
  const block: DecodedBlock = { version, facts: [], rules: [], checks: [], scopes: [] };
  if (context !== undefined) block.context = context;
  if (externalKey) block.externalKey = externalKey;
  readMessage(bytes, (f, w, r) => {
    if (f < 4 || f > 7) return;
    expectWire(w, WireType.LengthDelimited);
    const inner = r.bytes();
    if (f === 4) {
      readMessage(inner, (ff, fw, fr) => {
        if (ff === 1) (expectWire(fw, WireType.LengthDelimited), block.facts.push(reader.predicate(fr.bytes())));
      });
    } else if (f === 5) block.rules.push(reader.rule(inner));
    else if (f === 6) block.checks.push(reader.check(inner));
    else block.scopes.push(reader.scope(inner));
  });
  return block;
}

/** A decoded token: root key id and every block's contents. */
export interface DecodedToken {
  rootKeyId?: number;
  blocks: DecodedBlock[];
}

/** Decode a whole token (structure only; verify with the binding first). Throws TokenFormatError. */
export function decodeToken(token: Uint8Array): DecodedToken {
  const envelope = readEnvelope(token);
  const tables: Tables = { symbols: [], publicKeys: [] };
  return {
    ...(envelope.rootKeyId === undefined ? {} : { rootKeyId: envelope.rootKeyId }),
    blocks: envelope.blocks.map((b) => decodeBlock(b.bytes, tables, b.externalKey)),
  };
}

/**
 * The expiry a check imposes, if it is exactly an expiry check: `check if time($t), $t <= <date>` (or `<`), with one
 * query, one `time` predicate and one comparison. Recognised structurally, never from text.
 */
export function expiryOf(check: CheckBody): Date | undefined {
  if (check.kind !== "check if" || check.queries.length !== 1) return undefined;
  const q = check.queries[0];
  if (q.scopes.length !== 0 || q.body.length !== 1 || q.expressions.length !== 1) return undefined;
  const [pred] = q.body;
  if (pred.name !== "time" || pred.terms.length !== 1 || !("variable" in pred.terms[0])) return undefined;
  const variable = pred.terms[0].variable;
  const [a, b, op] = q.expressions[0];
  if (q.expressions[0].length !== 3 || !a || !b || !op) return undefined;
  if (!("value" in a) || !("value" in b) || !("binary" in op)) return undefined;
  if (!("variable" in a.value) || a.value.variable !== variable || !("date" in b.value)) return undefined;
  if (op.binary === "<=") return b.value.date;
  if (op.binary === "<") return new Date(b.value.date.getTime() - 1000);
  return undefined;
}
