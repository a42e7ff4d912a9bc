import type { Reason } from "../errors/reasons.js";
import type { DatalogParam, DatalogSnippet } from "./datalog-values.js";
import type { RunLimits } from "./limits.js";
import type { DecodedBlock } from "./token-format.js";

/**
 * Messages between the worker pool (main thread) and its workers. Everything here is structured-clone data: the
 * main thread validates and compiles input into snippets; workers only run them through the binding.
 */

/** A root public key chosen by id on the main thread. */
export interface VerifyKey {
  id: number;
  publicKeyHex: string;
}

/** An organisation policy statement: a check, or a deny policy, from one file. */
export interface PolicyStatement {
  file: string;
  kind: "check" | "deny";
  source: string;
  line: number;
  /**
   * Set on a step-up approval rule (`approval_required("why") <- body`): its reason, and the rule as written. Its
   * `source` is the check it compiles to, `reject if unapproved(true), body`, which holds a request until approved.
   */
  approval?: { reason: string; rule: string; showBody?: boolean };
}

/** A policy set as sent to workers; `id` is a content hash, used to cache the compiled template. */
export interface PolicySetWire {
  id: string;
  statements: PolicyStatement[];
}

export type Job =
  | { kind: "mint"; privateKeyHex: string; rootKeyId: number; authority: DatalogSnippet }
  | {
      kind: "attenuate";
      token: Uint8Array;
      key: VerifyKey;
      block: DatalogSnippet;
      rawChecks: Array<{ code: string; params: Record<string, DatalogParam> }>;
      maxBlocks: number;
    }
  | { kind: "inspect"; token: Uint8Array; key: VerifyKey; maxBlocks: number }
  | {
      kind: "authorize";
      token: Uint8Array;
      key: VerifyKey;
      maxBlocks: number;
      policies?: PolicySetWire;
      request: DatalogSnippet;
      limits: RunLimits;
    }
  | { kind: "validate-policies"; policies: PolicySetWire }
  | { kind: "replay"; token: Uint8Array; publicKeyHex: string; code: string; limits?: RunLimits }
  | { kind: "diagnostic"; action: "spin" | "exit" | "panic" | "echo"; ms?: number };

/** The token's identity, from authorizer queries over the authority block. */
export interface TokenIdentity {
  tenant: string;
  subject: string;
  operator: boolean;
  grants: Array<{ connection: string; method: string; pathPrefix: string }>;
}

/** A failing check as reported by the binding, with capvault's own display text for block checks. */
export interface FailedCheck {
  /** Block index, or -1 for an authorizer check. */
  block: number;
  check: number;
  rule: string;
  /** Whether the check is structurally an expiry check (`check if time($t), $t <= <date>`). */
  expiry: boolean;
}

/** The result of running an authorizer, before capvault maps it to denials. */
export type AuthorizerOutcome =
  | { ok: true; policy: number }
  | { ok: false; kind: "unauthorized"; policy?: { allow: boolean; index: number }; checks: FailedCheck[] }
  | { ok: false; kind: "run-limit"; limit: string }
  | { ok: false; kind: "execution"; error: string };

export interface MintResult {
  token: Uint8Array;
  revocationIds: string[];
}

export interface AttenuateResult {
  token: Uint8Array;
  revocationIds: string[];
  blocks: number;
}

export interface InspectJobResult {
  revocationIds: string[];
  identity: TokenIdentity;
  blocks: DecodedBlock[];
}

export interface AuthorizeJobResult {
  revocationIds: string[];
  identity: TokenIdentity;
  outcome: AuthorizerOutcome;
}

export interface ReplayResult {
  revocationIds: string[] | null;
  result: { Ok: number } | { Err: unknown };
}

/** The value each job kind resolves to. */
export interface JobResults {
  mint: MintResult;
  attenuate: AttenuateResult;
  inspect: InspectJobResult;
  authorize: AuthorizeJobResult;
  "validate-policies": { statements: number };
  replay: ReplayResult;
  diagnostic: { ok: true };
}

/** A CapvaultError flattened for postMessage. */
export interface WireError {
  reason: Reason;
  message?: string;
  metadata?: Record<string, string>;
  /** Internal detail (kept in the error's cause, never sent to clients). */
  detail?: string;
}

export type WorkerRequest = { id: number; job: Job };

export type WorkerReply =
  | { type: "ready"; module?: WebAssembly.Module; memoryBytes: number }
  | { type: "result"; id: number; ok: true; value: unknown; memoryBytes: number }
  | { type: "result"; id: number; ok: false; error: WireError; memoryBytes: number; fatal: boolean };

/** workerData given to each worker. */
export interface WorkerInit {
  module?: WebAssembly.Module;
  tokenCacheSize: number;
  diagnostics: boolean;
}
