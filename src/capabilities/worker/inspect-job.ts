import type { InspectJobResult, Job } from "../protocol.js";
import type { WorkerContext } from "./context.js";

/** Verify the token and return its structure, revocation ids and identity. */
export function inspectJob(ctx: WorkerContext, job: Extract<Job, { kind: "inspect" }>): InspectJobResult {
  const verified = ctx.tokens.verify(job.token, job.key, job.maxBlocks);
  return { revocationIds: verified.revocationIds, identity: ctx.tokens.identity(verified), blocks: verified.blocks };
}
