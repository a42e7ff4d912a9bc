import { assertSafeParams } from "../datalog-values.js";
import type { Job, MintResult } from "../protocol.js";
import { isWasmPanic, mapBindingError } from "../binding/binding-errors.js";
import { JobFailure, type WorkerContext } from "./context.js";

/** Build and sign a token whose authority block is `job.authority`, tagged with the root key id. */
export function mintJob(ctx: WorkerContext, job: Extract<Job, { kind: "mint" }>): MintResult {
  const B = ctx.binding;
  let key;
  try {
    key = B.PrivateKey.fromBytes(Buffer.from(job.privateKeyHex, "hex"), B.SignatureAlgorithm.Ed25519);
  } catch (err) {
    if (isWasmPanic(err)) throw err;
    throw new JobFailure({ reason: "CONFIG_INVALID", message: "the root private key is invalid" });
  }
  try {
    const builder = B.Biscuit.builder();
    let token;
    try {
      assertSafeParams(job.authority.params);
      builder.addCodeWithParameters(job.authority.code, job.authority.params, {});
      builder.setRootKeyId(job.rootKeyId);
    } catch (err) {
      builder.free();
      if (isWasmPanic(err) || err instanceof JobFailure) throw err;
      throw new JobFailure(mapBindingError(err, "datalog"));
    }
    try {
      token = builder.build(key); // consumes the builder
    } catch (err) {
      if (isWasmPanic(err)) throw err;
      throw new JobFailure(mapBindingError(err, "datalog"));
    }
    try {
      return { token: token.toBytes(), revocationIds: token.getRevocationIdentifiers() as string[] };
    } finally {
      token.free();
    }
  } finally {
    key.free();
  }
}
