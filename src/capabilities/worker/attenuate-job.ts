import { assertSafeParams } from "../datalog-values.js";
import type { AttenuateResult, Job } from "../protocol.js";
import { isWasmPanic, mapBindingError } from "../binding/binding-errors.js";
import { JobFailure, type WorkerContext } from "./context.js";

/**
 * Verify the token, then append one block holding the compiled restriction checks and the raw checks. A raw check must
 * parse as exactly one check (`Check.fromString`), so facts, rules and policies are refused with DATALOG_INVALID.
 */
export function attenuateJob(ctx: WorkerContext, job: Extract<Job, { kind: "attenuate" }>): AttenuateResult {
  const B = ctx.binding;
  const verified = ctx.tokens.verify(job.token, job.key, job.maxBlocks);
  if (verified.blocks.length + 1 > job.maxBlocks) {
    throw new JobFailure({ reason: "CAPABILITY_TOO_DEEP", message: "the capability cannot take another block" });
  }
  const block = B.Biscuit.block_builder();
  try {
    if (job.block.code) {
      assertSafeParams(job.block.params);
      try {
        block.addCodeWithParameters(job.block.code, job.block.params, {});
      } catch (err) {
        if (isWasmPanic(err)) throw err;
        throw new JobFailure(mapBindingError(err, "datalog"));
      }
    }
    job.rawChecks.forEach((raw, index) => addRawCheck(ctx, block, raw, index));
    let derived;
    try {
      derived = verified.biscuit.appendBlock(block);
    } catch (err) {
      if (isWasmPanic(err)) throw err;
      throw new JobFailure(mapBindingError(err, "token"));
    }
    try {
      return {
        token: derived.toBytes(),
        revocationIds: derived.getRevocationIdentifiers() as string[],
        blocks: derived.countBlocks(),
      };
    } finally {
      derived.free();
    }
  } finally {
    block.free();
  }
}

function addRawCheck(
  ctx: WorkerContext,
  block: InstanceType<WorkerContext["binding"]["BlockBuilder"]>,
  raw: Extract<Job, { kind: "attenuate" }>["rawChecks"][number],
  index: number,
): void {
  const metadata = { check: String(index) };
  let check;
  try {
    check = ctx.binding.Check.fromString(raw.code);
  } catch (err) {
    if (isWasmPanic(err)) throw err;
    const mapped = mapBindingError(err, "datalog");
    throw new JobFailure({ ...mapped, reason: "DATALOG_INVALID", metadata: { ...metadata, ...(mapped.metadata ?? {}) } });
  }
  try {
    assertSafeParams(raw.params);
    const unbound = (check.unboundParameters() as string[]).sort();
    const given = Object.keys(raw.params).sort();
    if (unbound.join(",") !== given.join(",")) {
      throw new JobFailure({
        reason: "DATALOG_INVALID",
        message: `check ${index}: parameters must match its placeholders exactly`,
        metadata,
      });
    }
    for (const name of unbound) check.set(name, raw.params[name]);
  } catch (err) {
    check.free();
    if (isWasmPanic(err) || err instanceof JobFailure) throw err;
    throw new JobFailure({ ...mapBindingError(err, "datalog"), reason: "DATALOG_INVALID", metadata });
  }
  try {
    block.addCheck(check); // consumes the check (unlike AuthorizerBuilder.addCheck, which borrows it)
  } catch (err) {
    if (isWasmPanic(err)) throw err;
    throw new JobFailure({ ...mapBindingError(err, "datalog"), reason: "DATALOG_INVALID", metadata });
  }
}
