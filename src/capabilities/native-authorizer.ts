import { CapvaultError } from "../errors/capvault-error.js";
import { outcomeOf } from "./binding/authorizer-outcome.js";
import { describeBindingError, isTimeout, mapBindingError } from "./binding/binding-errors.js";
import type { NativeBiscuit, NativePolicyTemplate, NativeRequestTemplate, NativeVerifiedToken } from "./binding/native-loader.js";
import { assertSafeParams, type DatalogParam } from "./datalog-values.js";
import type { AuthorizeJobResult, Job, PolicySetWire, ReplayResult, WireError } from "./protocol.js";
import type { RunLimits } from "./limits.js";
import { tokenFactsOf, type TokenFacts } from "./token-facts.js";
import { TokenFormatError } from "./token-format.js";

type AuthorizeJob = Extract<Job, { kind: "authorize" }>;

/** A token verified by the native runtime, with what capvault reads from its bytes. */
interface KnownToken {
  native: NativeVerifiedToken;
  revocationIds: string[];
  facts: TokenFacts & { identity: NonNullable<TokenFacts["identity"]> };
  /**
   * How long its authorizations take, in microseconds: the first measured run, then a moving average (Infinity before
   * the first, for a token that may run long). Averaged, each run counted for at most about twice the average
   * after its first run (nextRunAverage), so that one run slowed by the machine (a preempted thread, a cold cache)
   * does not send the token's next calls through a thread hop, while a token whose runs are long moves off the event
   * loop at its first run and one whose runs turn long within a few calls.
   */
  runMicros: number;
  /** Runs measured so far (the first is not capped: nextRunAverage). */
  runs: number;
}

/** A token kept by its digest: verified (or being verified) under this root key. */
interface TokenEntry {
  keyId: number;
  publicKeyHex: string;
  token: KnownToken | Promise<KnownToken>;
}

/**
 * Authorizations of a token whose runs take less than this run on the event loop: a hop to a libuv thread and back
 * costs ~30 us of latency and CPU, more than a short run, and under load the hop waits behind other thread-pool work
 * (milliseconds). Longer ones (a first use, a token with heavy checks, which an agent can append offline) run on
 * libuv's threads, so one token cannot stall the event loop for long; each run is bounded by the run limits anyway.
 */
const INLINE_BELOW_MICROS = 150;
/** Weight of the newest run in a token's moving average of run times. */
const RUN_AVERAGE_WEIGHT = 0.25;

/**
 * A token's average run time after one more run of `us` microseconds (`average` Infinity: nothing measured yet, the
 * run is taken as it is). A token's first run moves its average by a quarter of the difference, whatever it is, so
 * that a heavy token leaves the event loop at once. After that a run counts for at most twice the average plus a third
 * of the inline bound: one run stretched by the machine (a preempted thread: hundreds of microseconds on a busy host)
 * moves the average a little, while runs that are long every time still carry it past the bound within a few calls.
 */
export function nextRunAverage(average: number, us: number, firstRun: boolean): number {
  if (!Number.isFinite(average)) return us;
  const counted = firstRun ? us : Math.min(us, 2 * average + INLINE_BELOW_MICROS / 3);
  return average + RUN_AVERAGE_WEIGHT * (counted - average);
}

/** Options of the native authorizer. */
export interface NativeAuthorizerOptions {
  /** Verified tokens kept (default 4096; a verified token holds a few KB of native memory). */
  tokenCacheSize?: number;
  /** Authorizations in flight past which new ones are refused with CAPABILITY_RUNTIME_BUSY (default 10,000). */
  maxInFlight?: number;
  /** Told of each Rust panic caught by the runtime (the call fails; the process and other calls go on). */
  onPanic?: (detail: string) => void;
}

/**
 * The authorization path on the native runtime (native/src/lib.rs): biscuit-auth itself, run on libuv's threads, with
 * no worker hand-off, no copy of the token per call and no wasm heap. A token is parsed and signature-verified once
 * (shared by concurrent first uses), organisation policies and request snippets are compiled once; per request only
 * the parameters are bound and the authorizer runs. Decisions are those of the worker path: the same library, the
 * same outcome mapping (binding/authorizer-outcome.ts), the same limits. Mint, attenuate and inspect stay on the
 * worker pool.
 */
export class NativeAuthorizer {
  private readonly tokens = new Map<string, TokenEntry>();
  /** The digest last placed at the end of `tokens`. */
  private lastUsed: string | undefined;
  private readonly policyTemplates = new Map<string, NativePolicyTemplate>();
  private readonly requestTemplates = new Map<string, NativeRequestTemplate>();
  private readonly tokenCacheSize: number;
  private readonly maxInFlight: number;
  private inFlight = 0;
  /** Authorizations answered, and refused with an error (as the worker pool counts its jobs). */
  completed = 0;
  failed = 0;
  /** Verified-token cache hits and misses. */
  hits = 0;
  misses = 0;
  /** Authorizations run inline on the event loop, and on libuv's threads. */
  inline = 0;
  offloaded = 0;
  /** Rust panics caught (each failed its call only). */
  panics = 0;

  constructor(
    private readonly native: NativeBiscuit,
    options: NativeAuthorizerOptions = {},
  ) {
    this.tokenCacheSize = options.tokenCacheSize ?? 4096;
    this.maxInFlight = options.maxInFlight ?? 10_000;
    this.onPanic = options.onPanic;
  }

  private readonly onPanic: ((detail: string) => void) | undefined;

  /** Run an authorize job (the same job the worker pool runs); `digest` is the token's SHA-256 (token-input.ts). */
  async authorize(job: AuthorizeJob, digest: string): Promise<AuthorizeJobResult> {
    if (this.inFlight >= this.maxInFlight) {
      throw new CapvaultError("CAPABILITY_RUNTIME_BUSY", "the capability runtime is overloaded; retry");
    }
    this.inFlight++;
    try {
      assertSafeParams(job.request.params);
      const known = this.verified(job, digest);
      // A verified token is used as is; only a first use (or one still being verified) waits.
      const token = "native" in known ? known : await known;
      const policies = job.policies ? this.policies(job.policies) : null;
      const request = this.request(job.request.code);
      const params = paramsJson(job.request.params);
      const run = (): Promise<string> | string => {
        if (token.runMicros >= INLINE_BELOW_MICROS) {
          this.offloaded++;
          return this.native.authorize(token.native, policies, request, params, job.limits).catch(fail("datalog"));
        }
        this.inline++;
        try {
          return this.native.authorizeSync(token.native, policies, request, params, job.limits);
        } catch (err) {
          return fail("datalog")(err);
        }
      };
      let result = parseResult(await run());
      // A Timeout on a preempted thread says nothing about the token: retried, as the worker path does.
      for (let attempt = 1; attempt < 3 && "Err" in result && isTimeout(result.Err); attempt++) result = parseResult(await run());
      token.runMicros = nextRunAverage(token.runMicros, result.us, token.runs++ === 0);
      let outcome;
      if ("Ok" in result) outcome = { ok: true as const, policy: result.Ok };
      else {
        outcome = outcomeOf(result.Err, token.facts);
        if (!outcome) throw toError(mapBindingError(result.Err, "token"));
      }
      this.completed++;
      return { revocationIds: token.revocationIds, identity: token.facts.identity, outcome };
    } catch (err) {
      this.failed++;
      if (CapvaultError.is(err, "CAPABILITY_RUNTIME_FAILED")) {
        this.panics++;
        this.onPanic?.(err.cause instanceof Error ? err.cause.message : "panic");
      }
      throw err;
    } finally {
      this.inFlight--;
    }
  }

  /** Replay arbitrary authorizer code on a token (the Biscuit specification samples; never for requests). */
  async replay(token: Uint8Array, publicKeyHex: string, code: string, limits?: RunLimits): Promise<ReplayResult> {
    return JSON.parse(await this.native.replay(token, publicKeyHex, code, limits ?? null).catch(fail("token"))) as ReplayResult;
  }

  /** Number of verified tokens kept. */
  get size(): number {
    return this.tokens.size;
  }

  private verified(job: AuthorizeJob, digest: string): KnownToken | Promise<KnownToken> {
    // Keyed by the digest alone (its string is the one token-input.ts keeps per token, so its hash is computed once);
    // the entry says which root key verified it, and a token presented under another key is verified again.
    const hit = this.tokens.get(digest);
    if (hit && hit.keyId === job.key.id && hit.publicKeyHex === job.key.publicKeyHex) {
      this.hits++;
      // Most recently used last (the oldest is evicted first); a token used call after call is already last.
      if (digest !== this.lastUsed) {
        this.tokens.delete(digest);
        this.tokens.set(digest, hit);
        this.lastUsed = digest;
      }
      return hit.token;
    }
    this.misses++;
    const pending = this.verify(job);
    const entry: TokenEntry = { keyId: job.key.id, publicKeyHex: job.key.publicKeyHex, token: pending };
    this.tokens.delete(digest);
    this.tokens.set(digest, entry);
    this.lastUsed = digest;
    // Once verified, the entry holds the token itself, so that later calls need not wait on a promise.
    pending.then(
      (token) => {
        if (entry.token === pending) entry.token = token;
      },
      () => this.tokens.get(digest) === entry && this.tokens.delete(digest),
    );
    while (this.tokens.size > this.tokenCacheSize) this.tokens.delete(this.tokens.keys().next().value as string);
    return pending;
  }

  private async verify(job: AuthorizeJob): Promise<KnownToken> {
    const verifying = this.native.verifyToken(job.token, job.key.publicKeyHex).catch(fail("token"));
    // Decoded here while the signatures are checked on a libuv thread; a verification failure is reported first.
    let decoded: { facts: TokenFacts } | { error: unknown };
    try {
      decoded = { facts: tokenFactsOf(job.token) };
    } catch (error) {
      decoded = { error };
    }
    const native = await verifying;
    if (native.blockCount > job.maxBlocks) throw new CapvaultError("CAPABILITY_TOO_DEEP");
    if ("error" in decoded) {
      const err = decoded.error;
      if (err instanceof TokenFormatError) throw new CapvaultError("CAPABILITY_MALFORMED", undefined, { cause: err });
      throw err;
    }
    const facts = decoded.facts as KnownToken["facts"];
    return { native, revocationIds: native.revocationIds(), facts, runMicros: looksShort(facts) ? 0 : Number.POSITIVE_INFINITY, runs: 0 };
  }

  private policies(set: PolicySetWire): NativePolicyTemplate {
    let template = this.policyTemplates.get(set.id);
    if (!template) {
      try {
        template = this.native.compilePolicies(set.statements.map((s) => ({ kind: s.kind, source: s.source })));
      } catch (err) {
        const failure = parseFailure(err);
        const statement = set.statements[Number(failure?.index)];
        throw new CapvaultError("DATALOG_INVALID", statement ? `${statement.file}:${statement.line}: not a valid ${statement.kind === "check" ? "check" : "deny policy"}` : undefined, {
          ...(statement ? { metadata: { policy: statement.file, line: String(statement.line) } } : {}),
          cause: new Error(describeBindingError(failure ?? err)),
        });
      }
      if (this.policyTemplates.size >= 8) this.policyTemplates.delete(this.policyTemplates.keys().next().value as string);
      this.policyTemplates.set(set.id, template);
    }
    return template;
  }

  private request(code: string): NativeRequestTemplate {
    let template = this.requestTemplates.get(code);
    if (!template) {
      try {
        template = this.native.compileRequest(code);
      } catch (err) {
        throw toError(wireOf(err, "datalog"));
      }
      if (this.requestTemplates.size >= 64) this.requestTemplates.delete(this.requestTemplates.keys().next().value as string);
      this.requestTemplates.set(code, template);
    }
    return template;
  }
}

/**
 * Whether a token's first authorization may run inline, before any run was measured: what capvault's own vocabulary
 * writes (no rules, a handful of checks). Datalog rules generate facts, and a token an agent extended offline with
 * rules or piles of checks may run long: its first run goes to a libuv thread and is measured.
 */
function looksShort(facts: TokenFacts): boolean {
  let checks = 0;
  for (const block of facts.blocks) {
    if (block.rules.length > 0) return false;
    checks += block.checks.length;
  }
  return checks <= 32;
}

/** The native runtime's JSON error message, parsed (undefined for anything else). */
function parseFailure(err: unknown): Record<string, unknown> | undefined {
  if (!(err instanceof Error)) return undefined;
  try {
    const parsed = JSON.parse(err.message) as unknown;
    return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A native failure as a capvault reason: biscuit errors as on the worker path, panics as a runtime failure. */
function wireOf(err: unknown, context: "token" | "datalog"): WireError {
  const failure = parseFailure(err);
  if (failure?.kind === "binding") return mapBindingError(failure.error, context);
  if (failure?.kind === "panic") {
    return { reason: "CAPABILITY_RUNTIME_FAILED", message: "the capability runtime failed on this request", detail: describeBindingError(failure) };
  }
  return { reason: "INTERNAL", detail: describeBindingError(failure ?? err) };
}

function fail(context: "token" | "datalog"): (err: unknown) => never {
  return (err) => {
    throw toError(wireOf(err, context));
  };
}

function toError(wire: WireError): CapvaultError {
  return new CapvaultError(wire.reason, wire.message, {
    ...(wire.metadata ? { metadata: wire.metadata } : {}),
    ...(wire.detail ? { cause: new Error(wire.detail) } : {}),
  });
}

type Result = ({ Ok: number } | { Err: unknown }) & { us: number };

/** The runtime's result: `{"Ok":<policy>,"us":<n>}` exactly as lib.rs writes it (read without JSON.parse: this is
 * every allowed request), anything else as JSON. */
function parseResult(text: string): Result {
  const ok = /^\{"Ok":(\d{1,9}),"us":(\d{1,15})\}$/.exec(text);
  return ok ? { Ok: Number(ok[1]), us: Number(ok[2]) } : (JSON.parse(text) as Result);
}

/** Parameters as the native runtime reads them: JSON, with 64-bit integers (bigint) as `{"int": "<decimal>"}`. */
function paramsJson(params: Record<string, DatalogParam>): string {
  try {
    return JSON.stringify(params); // the same text as below when there is no bigint (which JSON.stringify refuses)
  } catch {
    return JSON.stringify(params, (_key, value: unknown) => (typeof value === "bigint" ? { int: value.toString() } : value));
  }
}
