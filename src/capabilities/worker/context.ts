import type { WireError } from "../protocol.js";
import type { PolicyTemplates } from "./policy-templates.js";
import type { SnippetCache } from "./snippet-cache.js";
import type { TokenCache } from "./token-cache.js";
import type { BiscuitBinding } from "../binding/wasm-loader.js";

/** What every job gets inside a worker: the binding and the worker's caches. */
export interface WorkerContext {
  binding: BiscuitBinding;
  tokens: TokenCache;
  policies: PolicyTemplates;
  snippets: SnippetCache;
  diagnostics: boolean;
}

/** Thrown by jobs to fail with a specific reason; the worker entry posts `wire` back to the pool. */
export class JobFailure extends Error {
  override readonly name = "JobFailure";
  constructor(readonly wire: WireError) {
    super(wire.message ?? wire.reason);
  }
}
