import { parentPort, workerData } from "node:worker_threads";
import type { Job, JobResults, WorkerInit, WorkerReply, WorkerRequest } from "../protocol.js";
import { attenuateJob } from "./attenuate-job.js";
import { authorizeJob } from "./authorize-job.js";
import { describeBindingError, isWasmPanic } from "../binding/binding-errors.js";
import { JobFailure, type WorkerContext } from "./context.js";
import { diagnosticJob } from "./diagnostic-job.js";
import { inspectJob } from "./inspect-job.js";
import { mintJob } from "./mint-job.js";
import { PolicyTemplates, validatePoliciesJob } from "./policy-templates.js";
import { replayJob } from "./replay-job.js";
import { SnippetCache } from "./snippet-cache.js";
import { TokenCache } from "./token-cache.js";
import { loadBiscuit } from "../binding/wasm-loader.js";

/**
 * Worker thread entry: loads its own wasm instance, then runs one job at a time and replies with the result and the
 * instance's memory size (the pool recycles workers whose memory grows past a bound). A wasm panic is reported as
 * fatal: the pool terminates this worker, since the instance may be corrupt.
 */

function run(ctx: WorkerContext, job: Job): JobResults[Job["kind"]] {
  switch (job.kind) {
    case "mint":
      return mintJob(ctx, job);
    case "attenuate":
      return attenuateJob(ctx, job);
    case "inspect":
      return inspectJob(ctx, job);
    case "authorize":
      return authorizeJob(ctx, job);
    case "validate-policies":
      return validatePoliciesJob(ctx.policies, job.policies);
    case "replay":
      return replayJob(ctx, job);
    case "diagnostic":
      return diagnosticJob(ctx, job);
  }
}

/** Mint, parse and authorize a throwaway token once, so the first real request does not pay for first use. */
function warmUp(ctx: WorkerContext): void {
  const B = ctx.binding;
  const keys = new B.KeyPair(B.SignatureAlgorithm.Ed25519);
  const builder = B.Biscuit.builder();
  builder.addCode('tenant("warm-up"); check if time($t), $t <= 2100-01-01T00:00:00Z;');
  const token = builder.build(keys.getPrivateKey());
  const authorizer = new B.AuthorizerBuilder();
  authorizer.addCode("time(2000-01-01T00:00:00Z); allow if true; deny if true;");
  const built = authorizer.buildAuthenticated(token);
  try {
    built.authorizeWithLimits({ max_time_micro: 1_000_000 });
  } catch {
    // only warming up
  }
  for (const o of [built, token, keys]) o.free();
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error("capability worker entry must run in a worker thread");
  const init = workerData as WorkerInit;
  const loaded = await loadBiscuit(init.module);
  const ctx: WorkerContext = {
    binding: loaded.binding,
    tokens: new TokenCache(loaded.binding, init.tokenCacheSize),
    policies: new PolicyTemplates(loaded.binding),
    snippets: new SnippetCache(loaded.binding),
    diagnostics: init.diagnostics,
  };
  warmUp(ctx);
  const memoryBytes = () => loaded.memory.buffer.byteLength;
  const post = (reply: WorkerReply) => port.postMessage(reply);

  port.on("message", ({ id, job }: WorkerRequest) => {
    try {
      const value = run(ctx, job);
      post({ type: "result", id, ok: true, value, memoryBytes: memoryBytes() });
    } catch (err) {
      if (err instanceof JobFailure) {
        post({ type: "result", id, ok: false, error: err.wire, memoryBytes: memoryBytes(), fatal: false });
      } else {
        const fatal = isWasmPanic(err);
        post({
          type: "result",
          id,
          ok: false,
          error: { reason: fatal ? "CAPABILITY_RUNTIME_FAILED" : "INTERNAL", detail: describeBindingError(err) },
          memoryBytes: memoryBytes(),
          fatal,
        });
      }
    }
  });
  post({ type: "ready", ...(init.module ? {} : { module: loaded.module }), memoryBytes: memoryBytes() });
}

await main();
