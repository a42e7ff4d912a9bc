import type { AuthorizerBuilder, Check, Policy } from "@biscuit-auth/biscuit-wasm";
import type { PolicySetWire, PolicyStatement } from "../protocol.js";
import { isWasmPanic, mapBindingError } from "../binding/binding-errors.js";
import { JobFailure } from "./context.js";
import type { BiscuitBinding } from "../binding/wasm-loader.js";

/**
 * Compiled organisation policy sets, one AuthorizerBuilder template per set (keyed by the set's content hash). A
 * template is never consumed: each authorization merges it into a fresh builder (merging clones), because building an
 * authorizer consumes its builder.
 */
export class PolicyTemplates {
  private readonly templates = new Map<string, AuthorizerBuilder>();

  constructor(
    private readonly binding: BiscuitBinding,
    private readonly capacity = 8,
  ) {}

  /** The template for `set`, compiling it on first use. Throws JobFailure DATALOG_INVALID naming the file. */
  template(set: PolicySetWire): AuthorizerBuilder {
    const cached = this.templates.get(set.id);
    if (cached) return cached;
    const built = this.compile(set.statements);
    this.templates.set(set.id, built);
    while (this.templates.size > this.capacity) {
      const [oldest, evicted] = this.templates.entries().next().value as [string, AuthorizerBuilder];
      this.templates.delete(oldest);
      evicted.free();
    }
    return built;
  }

  private compile(statements: PolicyStatement[]): AuthorizerBuilder {
    const B = this.binding;
    const builder = new B.AuthorizerBuilder();
    try {
      for (const s of statements) {
        try {
          // Each statement must parse as exactly one check or one policy: facts and rules cannot slip through.
          const element = s.kind === "check" ? B.Check.fromString(s.source) : B.Policy.fromString(s.source);
          try {
            if (element.unboundParameters().length > 0) {
              throw new JobFailure({
                reason: "DATALOG_INVALID",
                message: `${s.file}:${s.line}: organisation policies cannot have parameters`,
                metadata: { policy: s.file, line: String(s.line) },
              });
            }
            if (s.kind === "check") builder.addCheck(element as Check);
            else builder.addPolicy(element as Policy);
          } finally {
            element.free();
          }
        } catch (err) {
          if (err instanceof JobFailure || isWasmPanic(err)) throw err;
          const mapped = mapBindingError(err, "datalog");
          throw new JobFailure({
            ...mapped,
            reason: "DATALOG_INVALID",
            message: `${s.file}:${s.line}: not a valid ${s.kind === "check" ? "check" : "deny policy"}`,
            metadata: { ...(mapped.metadata ?? {}), policy: s.file, line: String(s.line) },
          });
        }
      }
    } catch (err) {
      builder.free();
      throw err;
    }
    return builder;
  }
}

/** Validate a policy set (compile it once). */
export function validatePoliciesJob(templates: PolicyTemplates, set: PolicySetWire): { statements: number } {
  templates.template(set);
  return { statements: set.statements.length };
}
