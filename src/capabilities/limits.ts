/**
 * Caps that keep capability work bounded. Token size and block count are checked before any wasm parsing; run limits
 * bound each authorization; the request caps bound the number and size of ambient facts (the binding hard-caps fact
 * generation at 1000 facts whatever limits are passed, so ambient facts must stay few).
 */
export interface CapabilityLimits {
  /** Largest serialized token, in bytes (CAPABILITY_TOO_LARGE). */
  maxTokenBytes: number;
  /** Most blocks in a token, authority included (CAPABILITY_TOO_DEEP). */
  maxBlocks: number;
  /** Longest lifetime a minted token may have. */
  maxTtlSeconds: number;
  /** Most grants in one token. */
  maxGrants: number;
  /** Longest identifier (tenant, subject, connection, provider, query/body names), in UTF-8 bytes. */
  maxIdentifierBytes: number;
  /** Longest value (path, query/body values, restriction values), in UTF-8 bytes. */
  maxValueBytes: number;
  /** Most query parameters, and most top-level body fields, per request. */
  maxQueryParams: number;
  maxBodyFields: number;
  /** Most values in one restriction list (connections, methods, field constraint values). */
  maxListValues: number;
  /** Most raw checks in one restriction, and the longest one. */
  maxRawChecks: number;
  maxCheckBytes: number;
  /** Run limits for each authorization. */
  run: RunLimits;
}

/** Datalog run limits for one authorization. */
export interface RunLimits {
  maxFacts: number;
  maxIterations: number;
  maxTimeMicros: number;
}

/** The defaults. */
export const DEFAULT_LIMITS: Readonly<CapabilityLimits> = Object.freeze({
  maxTokenBytes: 16 * 1024,
  maxBlocks: 16,
  maxTtlSeconds: 90 * 24 * 3600,
  maxGrants: 64,
  maxIdentifierBytes: 256,
  maxValueBytes: 8 * 1024,
  maxQueryParams: 64,
  maxBodyFields: 64,
  maxListValues: 64,
  maxRawChecks: 16,
  maxCheckBytes: 4 * 1024,
  run: Object.freeze({ maxFacts: 1000, maxIterations: 100, maxTimeMicros: 20_000 }),
});

/** Fill in defaults. */
export function resolveLimits(partial: Partial<Omit<CapabilityLimits, "run">> & { run?: Partial<RunLimits> } = {}): CapabilityLimits {
  return { ...DEFAULT_LIMITS, ...partial, run: { ...DEFAULT_LIMITS.run, ...(partial.run ?? {}) } };
}
