import type { AuthorizeJobResult } from "./protocol.js";

/**
 * The authorizer's results for the current second, keyed by everything the authorizer reads: the token's bytes (by
 * hash), the verifying key, the policy set, the run limits, and the request's Datalog code and parameters.
 *
 * Why this is exact and not an approximation: Biscuit dates are whole seconds, so every request in the same second
 * gets the same `time` fact, and Datalog evaluation is deterministic. Two authorizations with the same key are the
 * same computation on the same input, and the cached result is the one the worker would return. The `time` value is
 * part of the key, so a result can never outlive its second; the map is dropped whenever the second changes, which
 * also bounds memory to one second of distinct requests (and `capacity`).
 *
 * Only outcomes the authorizer decided are kept (allowed, or refused with its failing checks or policy); run-limit
 * and execution errors depend on load, and failed jobs (a bad signature, a crashed worker) are never kept. Calls that
 * arrive while the same key is being computed wait for that one computation. Revocation is not part of the result:
 * it is checked against the live revocation set on every call, cached or not.
 */
export class DecisionCache {
  private second = -1;
  private entries = new Map<string, Promise<AuthorizeJobResult>>();
  hits = 0;
  misses = 0;

  constructor(private readonly capacity: number) {}

  /**
   * The result for `key` in second `second`: cached, already being computed by another call (which is joined rather
   * than repeated), or computed now by `run`.
   */
  through(second: number, key: string, run: () => Promise<AuthorizeJobResult>): Promise<AuthorizeJobResult> {
    if (this.capacity <= 0) {
      this.misses++;
      return run();
    }
    if (second !== this.second) {
      // A new second (or a clock that stepped back, or a caller's explicit `now`): start over.
      this.second = second;
      this.entries = new Map();
    }
    const known = this.entries.get(key);
    if (known) {
      this.hits++;
      return known;
    }
    this.misses++;
    const pending = run();
    if (this.entries.size >= this.capacity) return pending;
    const entries = this.entries;
    entries.set(key, pending);
    const forget = () => entries.get(key) === pending && entries.delete(key);
    pending.then((result) => !decided(result) && forget(), forget);
    return pending;
  }

  /** Number of results held (or being computed) for the current second. */
  get size(): number {
    return this.entries.size;
  }
}

/** Whether the authorizer decided (allowed, or refused with its failing checks or policy) rather than failed. */
function decided(result: AuthorizeJobResult): boolean {
  return result.outcome.ok || result.outcome.kind === "unauthorized";
}
