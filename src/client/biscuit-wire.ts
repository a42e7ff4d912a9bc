import { createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { expectWire as expect, readMessage as fields, TokenFormatError } from "../capabilities/token-format.js";

/**
 * The outer layer of a Biscuit token (biscuit schema.proto) as raw parts, and the one operation offline attenuation
 * needs on it without the root public key: append an already-serialized block, signed with the token's proof key.
 *
 *   Biscuit     { 1 rootKeyId: uint32; 2 authority: SignedBlock; 3 blocks: SignedBlock*; 4 proof: Proof }
 *   SignedBlock { 1 block: bytes; 2 nextKey: PublicKey; 3 signature: bytes; 4 externalSignature; 5 version: uint32 }
 *   PublicKey   { 1 algorithm: enum (0 Ed25519); 2 key: bytes }
 *   Proof       { 1 nextSecret: bytes | 2 finalSignature: bytes }
 *   Block       { 1 symbols: string*; …; 8 publicKeys: PublicKey* }
 *
 * Appending never needs the root key: block n+1 is signed by the secret key whose public half block n names
 * (`nextKey`), and that secret travels in the token's proof. This is what makes Biscuit attenuation offline.
 */

/** One signed block, as raw fields. */
export interface SignedBlockParts {
  block: Uint8Array;
  nextKeyAlgorithm: number;
  nextKey: Uint8Array;
  signature: Uint8Array;
  /** Signature format version (absent: 0). */
  version?: number;
  /** A third-party block's external signature (its raw bytes), if any. */
  externalSignature?: Uint8Array;
}

/** A token as raw parts. */
export interface TokenParts {
  rootKeyId?: number;
  blocks: SignedBlockParts[];
  /** The secret key that signs the next block; absent for a sealed token. */
  nextSecret?: Uint8Array;
  sealed: boolean;
}

const ED25519 = 0;
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

function readSignedBlock(bytes: Uint8Array): SignedBlockParts {
  const out: Partial<SignedBlockParts> = {};
  fields(bytes, (f, w, r) => {
    if (f === 1) (expect(w, WireType.LengthDelimited), (out.block = r.bytes()));
    else if (f === 2) {
      expect(w, WireType.LengthDelimited);
      fields(r.bytes(), (kf, kw, kr) => {
        if (kf === 1) (expect(kw, WireType.Varint), (out.nextKeyAlgorithm = kr.int32()));
        else if (kf === 2) (expect(kw, WireType.LengthDelimited), (out.nextKey = kr.bytes()));
      });
    } else if (f === 3) (expect(w, WireType.LengthDelimited), (out.signature = r.bytes()));
    else if (f === 4) (expect(w, WireType.LengthDelimited), (out.externalSignature = r.bytes()));
    else if (f === 5) (expect(w, WireType.Varint), (out.version = r.uint32()));
  });
  if (!out.block || !out.nextKey || !out.signature) throw new TokenFormatError("incomplete signed block");
  return { nextKeyAlgorithm: ED25519, ...out } as SignedBlockParts;
}

/** Split a serialized token into its raw parts. Verifies nothing. Throws TokenFormatError. */
export function readTokenParts(token: Uint8Array): TokenParts {
  const out: TokenParts = { blocks: [], sealed: false };
  let authority: SignedBlockParts | undefined;
  let proof = false;
  fields(token, (f, w, r) => {
    if (f === 1) (expect(w, WireType.Varint), (out.rootKeyId = r.uint32()));
    else if (f === 2) (expect(w, WireType.LengthDelimited), (authority = readSignedBlock(r.bytes())));
    else if (f === 3) (expect(w, WireType.LengthDelimited), out.blocks.push(readSignedBlock(r.bytes())));
    else if (f === 4) {
      expect(w, WireType.LengthDelimited);
      proof = true;
      fields(r.bytes(), (pf, pw, pr) => {
        if (pf === 1) (expect(pw, WireType.LengthDelimited), (out.nextSecret = pr.bytes()));
        else if (pf === 2) (expect(pw, WireType.LengthDelimited), pr.bytes(), (out.sealed = true));
      });
    }
  });
  if (!authority || !proof) throw new TokenFormatError("not a biscuit token: missing authority block or proof");
  out.blocks.unshift(authority);
  return out;
}

/** Serialize raw parts back into a token. */
export function writeTokenParts(parts: TokenParts): Uint8Array {
  const w = new BinaryWriter();
  if (parts.rootKeyId !== undefined) w.uint32((1 << 3) | WireType.Varint).uint32(parts.rootKeyId);
  parts.blocks.forEach((b, i) => w.uint32(((i === 0 ? 2 : 3) << 3) | WireType.LengthDelimited).bytes(writeSignedBlock(b)));
  const proof = new BinaryWriter();
  if (parts.nextSecret) proof.uint32((1 << 3) | WireType.LengthDelimited).bytes(parts.nextSecret);
  w.uint32((4 << 3) | WireType.LengthDelimited).bytes(proof.finish());
  return w.finish();
}

function writeSignedBlock(b: SignedBlockParts): Uint8Array {
  const w = new BinaryWriter();
  w.uint32((1 << 3) | WireType.LengthDelimited).bytes(b.block);
  const key = new BinaryWriter();
  key.uint32((1 << 3) | WireType.Varint).int32(b.nextKeyAlgorithm);
  key.uint32((2 << 3) | WireType.LengthDelimited).bytes(b.nextKey);
  w.uint32((2 << 3) | WireType.LengthDelimited).bytes(key.finish());
  w.uint32((3 << 3) | WireType.LengthDelimited).bytes(b.signature);
  if (b.externalSignature) w.uint32((4 << 3) | WireType.LengthDelimited).bytes(b.externalSignature);
  if (b.version !== undefined) w.uint32((5 << 3) | WireType.Varint).uint32(b.version);
  return w.finish();
}

/** The symbols and public keys a serialized Block adds to the token's tables (fields 1 and 8). */
export function blockTables(block: Uint8Array): { symbols: string[]; publicKeys: number } {
  const symbols: string[] = [];
  let publicKeys = 0;
  fields(block, (f, w, r) => {
    if (f === 1) (expect(w, WireType.LengthDelimited), symbols.push(r.string()));
    else if (f === 8) (expect(w, WireType.LengthDelimited), r.bytes(), publicKeys++);
  });
  return { symbols, publicKeys };
}

/**
 * What a block signature covers (biscuit-auth 6, the format its `version` names): version 0 is
 * `block ‖ algorithm(i32 LE) ‖ nextKey`; version 1 frames each part and adds the previous block's signature.
 * capvault checks this against the Biscuit library on every offline attenuation (see attenuate-offline.ts).
 */
function signedPayload(version: number, block: Uint8Array, nextKey: Uint8Array, previousSignature: Uint8Array): Buffer {
  const algorithm = Buffer.alloc(4);
  algorithm.writeInt32LE(ED25519);
  if (version === 0) return Buffer.concat([block, algorithm, nextKey]);
  const versionBytes = Buffer.alloc(4);
  versionBytes.writeUInt32LE(version);
  return Buffer.concat([
    Buffer.from("\0BLOCK\0\0VERSION\0", "latin1"),
    versionBytes,
    Buffer.from("\0PAYLOAD\0", "latin1"),
    block,
    Buffer.from("\0ALGORITHM\0", "latin1"),
    algorithm,
    Buffer.from("\0NEXTKEY\0", "latin1"),
    nextKey,
    Buffer.from("\0PREVSIG\0", "latin1"),
    previousSignature,
  ]);
}

/**
 * Append a serialized (first-party) block to a token: sign it with the token's proof secret, give it a fresh next key,
 * and move the proof to that key's secret. Needs no root key and verifies nothing.
 */
export function appendSignedBlock(parts: TokenParts, block: Uint8Array, signatureVersion: number): TokenParts {
  if (parts.sealed || !parts.nextSecret) throw new TokenFormatError("the token is sealed");
  if (parts.nextSecret.length !== 32) throw new TokenFormatError("the token's proof is not an Ed25519 secret key");
  const last = parts.blocks[parts.blocks.length - 1];
  const secret = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, parts.nextSecret]), format: "der", type: "pkcs8" });
  const next = generateKeyPairSync("ed25519");
  const nextPublic = Buffer.from(next.publicKey.export({ format: "jwk" }).x!, "base64url");
  const nextSecret = Buffer.from(next.privateKey.export({ format: "jwk" }).d!, "base64url");
  const signature = sign(null, signedPayload(signatureVersion, block, nextPublic, last.signature), secret);
  return {
    ...parts,
    blocks: [
      ...parts.blocks,
      {
        block,
        nextKeyAlgorithm: ED25519,
        nextKey: nextPublic,
        signature,
        ...(signatureVersion === 0 ? {} : { version: signatureVersion }),
      },
    ],
    nextSecret,
  };
}
