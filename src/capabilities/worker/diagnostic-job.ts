import type { Job } from "../protocol.js";
import { JobFailure, type WorkerContext } from "./context.js";

/**
 * Fault injection for tests of the pool, refused unless the pool was created with `diagnostics: true`:
 * `spin` busy-waits (a stuck job), `exit` ends the worker thread mid-job, `panic` triggers a real Rust panic in wasm
 * (a float parameter, pitfall 4), `echo` does nothing.
 */
export function diagnosticJob(ctx: WorkerContext, job: Extract<Job, { kind: "diagnostic" }>): { ok: true } {
  if (!ctx.diagnostics) throw new JobFailure({ reason: "INVALID_REQUEST", message: "diagnostics are disabled" });
  switch (job.action) {
    case "spin": {
      const until = Date.now() + (job.ms ?? 1000);
      while (Date.now() < until) {
        // busy
      }
      return { ok: true };
    }
    case "exit":
      process.exit(70);
    // falls through (never reached)
    case "panic":
      new ctx.binding.AuthorizerBuilder().addCodeWithParameters("x({v});", { v: 1.5 }, {});
      return { ok: true };
    default:
      return { ok: true };
  }
}
