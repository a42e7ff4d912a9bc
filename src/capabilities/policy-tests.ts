import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CapvaultError } from "../errors/capvault-error.js";
import { Capabilities } from "./capabilities.js";
import type { Denial } from "./denials.js";
import { generateRootKey, toPublicKey } from "./root-keys.js";
import type { AccessRequest, BodyValue, Grant, QueryParam, Restriction } from "./vocabulary.js";

/**
 * `opa test` for organisation policies: run a policy directory against a table of sample requests with expected
 * decisions. The table is `tests.json` in the directory: a list of cases (or `{ "cases": [...] }`). Each case mints a
 * token with a throwaway root key, optionally attenuates it, and authorizes the request with the directory's policies.
 */
export interface PolicyTestCase {
  name: string;
  token: {
    tenant?: string;
    subject?: string;
    grants?: Grant[];
    operator?: boolean;
    ttlSeconds?: number;
    /** ISO time the token was minted (default: the request time). */
    mintedAt?: string;
    /** Attenuation blocks appended in order. */
    restrictions?: Array<Omit<Restriction, "expiresAt"> & { expiresAt?: string }>;
  };
  request: Omit<AccessRequest, "tenant" | "query" | "body"> & {
    tenant?: string;
    query?: Record<string, string> | QueryParam[];
    body?: Record<string, BodyValue>;
    /** ISO time of the request (default: a fixed instant). */
    time?: string;
  };
  /** "approval": held for a person's approval (allowed otherwise); see `approval` for the expected reason text. */
  expect: "allow" | "deny" | "approval";
  /** Expected main reason when denied, e.g. "POLICY_DENIED". */
  reason?: string;
  /** With expect "approval": the approval reason (an approval rule's text) that must be among those given. */
  approval?: string;
  /** Expected organisation policy file named in a denial. */
  policy?: string;
}

/** The outcome of one case. */
export interface PolicyTestResult {
  name: string;
  passed: boolean;
  expected: "allow" | "deny" | "approval";
  actual: "allow" | "deny" | "approval";
  reason?: string;
  denials: Denial[];
  /** Why the case failed. */
  message?: string;
}

/** The outcome of a policy test run. */
export interface PolicyTestReport {
  directory: string;
  files: string[];
  results: PolicyTestResult[];
  passed: number;
  failed: number;
}

const DEFAULT_TENANT = "example-tenant";
const DEFAULT_TIME = "2030-01-15T12:00:00Z";

/** Read `tests.json` of a policy directory. */
export async function readPolicyTests(dir: string): Promise<PolicyTestCase[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(dir, "tests.json"), "utf8"));
  } catch (err) {
    throw new CapvaultError("CONFIG_INVALID", "cannot read tests.json in the policy directory", { cause: err });
  }
  const cases = Array.isArray(parsed) ? parsed : (parsed as { cases?: unknown })?.cases;
  if (!Array.isArray(cases) || cases.some((c) => !c || typeof c.name !== "string" || !["allow", "deny", "approval"].includes(c.expect as string))) {
    throw new CapvaultError("CONFIG_INVALID", "tests.json must list cases with a name and expect: allow|deny|approval");
  }
  return cases as PolicyTestCase[];
}

/** Run the policy tests of `dir`. Uses `capabilities` if given (else a private runtime, closed afterwards). */
export async function runPolicyTests(dir: string, options: { capabilities?: Capabilities } = {}): Promise<PolicyTestReport> {
  const caps = options.capabilities ?? new Capabilities({ workers: 1 });
  try {
    const policies = await caps.loadPolicies(dir);
    const cases = await readPolicyTests(dir);
    const rootKey = generateRootKey(1);
    const publicKeys = [toPublicKey(rootKey)];
    const results: PolicyTestResult[] = [];
    for (const c of cases) {
      let actual: "allow" | "deny" | "approval";
      let reason: string | undefined;
      let denials: Denial[] = [];
      try {
        const now = new Date(c.request?.time ?? DEFAULT_TIME);
        const mintedAt = c.token?.mintedAt ? new Date(c.token.mintedAt) : now;
        const tenant = c.request?.tenant ?? c.token?.tenant ?? DEFAULT_TENANT;
        let { token } = await caps.mint({
          rootKey,
          tenant: c.token?.tenant ?? tenant,
          subject: c.token?.subject ?? "policy-test",
          grants: c.token?.grants ?? [],
          operator: c.token?.operator ?? false,
          ttlSeconds: c.token?.ttlSeconds ?? 3600,
          now: mintedAt,
        });
        for (const r of c.token?.restrictions ?? []) {
          const restriction: Restriction = { ...r, ...(r.expiresAt ? { expiresAt: new Date(r.expiresAt) } : {}) } as Restriction;
          token = (await caps.attenuate(token, restriction, publicKeys, mintedAt)).token;
        }
        const { time: _time, query, body, ...rest } = c.request ?? {};
        const request: AccessRequest = {
          ...rest,
          tenant,
          ...(query ? { query: Array.isArray(query) ? query : Object.entries(query).map(([name, value]) => ({ name, value })) } : {}),
          ...(body ? { body } : {}),
        };
        const decision = await caps.authorize(token, request, { publicKeys, policies, now });
        actual = decision.allowed ? "allow" : decision.reason === "APPROVAL_REQUIRED" ? "approval" : "deny";
        reason = decision.reason;
        denials = decision.denials;
      } catch (err) {
        // A refused token or request is a deny, with its reason.
        actual = "deny";
        reason = CapvaultError.from(err).reason;
      }
      const problems: string[] = [];
      if (actual !== c.expect) problems.push(`expected ${c.expect}, got ${actual}${reason ? ` (${reason})` : ""}`);
      if (c.reason && actual === "deny" && reason !== c.reason) problems.push(`expected reason ${c.reason}, got ${reason}`);
      if (c.policy && !denials.some((d) => d.policy === c.policy)) problems.push(`expected a denial by ${c.policy}`);
      if (c.approval && !denials.some((d) => d.reason === "APPROVAL_REQUIRED" && d.approval === c.approval)) {
        problems.push(`expected approval reason ${JSON.stringify(c.approval)}`);
      }
      results.push({
        name: c.name,
        passed: problems.length === 0,
        expected: c.expect,
        actual,
        ...(reason ? { reason } : {}),
        denials,
        ...(problems.length ? { message: problems.join("; ") } : {}),
      });
    }
    const passed = results.filter((r) => r.passed).length;
    return { directory: dir, files: policies.files, results, passed, failed: results.length - passed };
  } finally {
    if (!options.capabilities) await caps.close();
  }
}
