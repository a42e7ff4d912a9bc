import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** A token parsed and signature-verified by the native runtime (immutable; freed by the garbage collector). */
export interface NativeVerifiedToken {
  readonly blockCount: number;
  revocationIds(): string[];
}

/** Compiled organisation policies. */
export type NativePolicyTemplate = object & { readonly __policies?: never };
/** A compiled request snippet. */
export type NativeRequestTemplate = object & { readonly __request?: never };

export interface NativeLimits {
  maxFacts: number;
  maxIterations: number;
  maxTimeMicros: number;
}

/**
 * The exports of native/capvault-biscuit.node (native/src/lib.rs). Failures are Errors whose message is JSON:
 * `{"kind":"binding","error":<biscuit-auth error as serde JSON>}`, `{"kind":"statement","index":n,...}`,
 * `{"kind":"params","message":...}` or `{"kind":"panic","message":...}`.
 */
export interface NativeBiscuit {
  verifyToken(token: Uint8Array, publicKeyHex: string): Promise<NativeVerifiedToken>;
  compilePolicies(statements: Array<{ kind: string; source: string }>): NativePolicyTemplate;
  compileRequest(code: string): NativeRequestTemplate;
  /** Resolves to `{"Ok": policy, "us": n}` or `{"Err": <biscuit-auth error>, "us": n}` as JSON (n: microseconds). */
  authorize(
    token: NativeVerifiedToken,
    policies: NativePolicyTemplate | null,
    request: NativeRequestTemplate,
    paramsJson: string,
    limits: NativeLimits,
  ): Promise<string>;
  /** The same on the calling thread. */
  authorizeSync(
    token: NativeVerifiedToken,
    policies: NativePolicyTemplate | null,
    request: NativeRequestTemplate,
    paramsJson: string,
    limits: NativeLimits,
  ): string;
  /** Resolves to `{"revocationIds": [...] | null, "result": {"Ok": n} | {"Err": ...}}` as JSON. */
  replay(token: Uint8Array, publicKeyHex: string, code: string, limits: NativeLimits | null): Promise<string>;
  diagnosticPanic(): Promise<string>;
}

const FILE = join("native", "capvault-biscuit.node");

/** native/capvault-biscuit.node of this package (from src/ or dist/), if it was built. */
export function nativeBinaryPath(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) {
      const candidate = join(dir, FILE);
      return existsSync(candidate) ? candidate : undefined;
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

let loaded: NativeBiscuit | null | undefined;

/** Load the native runtime once per process; undefined when it was not built (`node native/build.mjs`). */
export function loadNativeBiscuit(): NativeBiscuit | undefined {
  if (loaded === undefined) {
    const path = nativeBinaryPath();
    loaded = path ? (createRequire(import.meta.url)(path) as NativeBiscuit) : null;
  }
  return loaded ?? undefined;
}
