import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { CapvaultError } from "../errors/capvault-error.js";
import type { PolicySetWire, PolicyStatement } from "./protocol.js";
import { APPROVAL_CHECK_PREFIX } from "./vocabulary.js";
import type { WorkerPool } from "./worker-pool.js";

export type { PolicyStatement } from "./protocol.js";

/**
 * Organisation policies: a directory of `*.datalog` files, loaded in name order. A file may hold checks (`check if`,
 * `check all`, `reject if`) and deny policies (`deny if`); they go into every authorization of a grant operation
 * (proxy requests and their dry runs) before capvault's single allow policy and the final `deny if true`, and the
 * file's name is reported when one of them refuses a request.
 *
 * A file may also hold step-up approval rules, `approval_required("reason") <- body`: a request they match is held
 * until a person approves it (src/approvals), instead of being sent; each compiles to the check
 * `reject if unapproved(true), body` (vocabulary.ts).
 *
 * Organisation policies can only restrict. Other facts and rules are refused (they could add a second `method` fact or a
 * `right`), and so is `allow if` (an organisation allow placed before the grant policy would let a request through
 * without any grant in the token): write a `check if` instead.
 */
export interface PolicySet extends PolicySetWire {
  /** The files, in load order. */
  files: string[];
}

/** Split Datalog source into statements at `;`, skipping strings and comments. Returns trimmed statements + line. */
export function splitStatements(source: string): Array<{ text: string; line: number }> {
  const out: Array<{ text: string; line: number }> = [];
  let current = "";
  let line = 1;
  let startLine = 1;
  let i = 0;
  const flush = () => {
    const text = current.trim();
    if (text) out.push({ text, line: startLine });
    current = "";
  };
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (!current.trim()) startLine = line;
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      line += (source.slice(i, stop).match(/\n/g) ?? []).length;
      current += " ";
      i = stop;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < source.length && source[j] !== '"') j += source[j] === "\\" ? 2 : 1;
      const literal = source.slice(i, j + 1);
      line += (literal.match(/\n/g) ?? []).length;
      current += literal;
      i = j + 1;
      continue;
    }
    if (c === ";") {
      flush();
      i++;
      continue;
    }
    if (c === "\n") line++;
    current += c;
    i++;
  }
  flush();
  return out;
}

/** Parse one file's source into statements; facts, rules and allow policies are refused with DATALOG_INVALID. */
export function parsePolicyFile(file: string, source: string): PolicyStatement[] {
  return splitStatements(source).map(({ text, line }) => {
    const normalised = text.replace(/\s+/g, " ");
    const approval = APPROVAL_RULE.exec(normalised);
    if (approval) {
      const invalid = (why: string) => new CapvaultError("DATALOG_INVALID", `${file}:${line}: ${why}`, { metadata: { policy: file, line: String(line) } });
      let reason: string;
      try {
        reason = JSON.parse(`"${approval[1]}"`) as string;
      } catch {
        throw invalid("the approval reason must be a plain string literal");
      }
      if (!reason.trim() || reason.length > 200) throw invalid("an approval reason must be 1-200 characters");
      // `a or b` would compile to `reject if unapproved(true), a or b`: the `b` alternative would not be lifted by an
      // approval. Write one rule per alternative.
      if (/\bor\b/.test(approval[3].replace(/"(?:[^"\\]|\\.)*"/g, '""'))) throw invalid("an approval rule's body cannot use `or`: write one rule per alternative");
      return {
        file,
        kind: "check",
        source: `${APPROVAL_CHECK_PREFIX}, ${approval[3]}`,
        line,
        approval: { reason, rule: normalised, ...(approval[2] ? { showBody: true } : {}) },
      };
    }
    let kind: PolicyStatement["kind"];
    if (/^(check if|check all|reject if) /.test(normalised)) kind = "check";
    else if (/^deny if /.test(normalised)) kind = "deny";
    else {
      const why = /^allow if /.test(normalised)
        ? "allow policies are not allowed in organisation policies (they would bypass grants): use `check if`"
        : /^approval_required\(/.test(normalised)
          ? 'an approval rule is `approval_required("reason") <- body` with the reason a string literal'
          : "only checks, deny policies and approval rules are allowed (no other facts or rules)";
      throw new CapvaultError("DATALOG_INVALID", `${file}:${line}: ${why}`, { metadata: { policy: file, line: String(line) } });
    }
    return { file, kind, source: text, line };
  });
}

/**
 * A step-up approval rule: `approval_required("reason") <- body`. The reason is a string literal (shown to the
 * approver); the body is any rule body over the request's facts. Only this head is allowed: it derives nothing else.
 * `approval_required("reason", "show body") <- ...` also shows the approver the request body (stored, size-capped).
 */
const APPROVAL_RULE = /^approval_required\(\s*"((?:[^"\\]|\\.)*)"\s*(?:,\s*"(show body)"\s*)?\)\s*<-\s*(\S.*)$/;

/** Build a policy set from in-memory files (name → source), in name order. */
export function policySetFromSources(files: Record<string, string>): PolicySet {
  const names = Object.keys(files).sort();
  const statements = names.flatMap((name) => parsePolicyFile(name, files[name]));
  const id = createHash("sha256").update(JSON.stringify(statements)).digest("hex");
  return { id, files: names, statements };
}

/** Read every `*.datalog` file of `dir` (not recursive). Does not compile: see {@link validatePolicySet}. */
export async function readPolicyDirectory(dir: string): Promise<PolicySet> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isFile() && e.name.endsWith(".datalog"))
      .map((e) => e.name);
  } catch (err) {
    throw new CapvaultError("CONFIG_INVALID", `cannot read policy directory ${basename(dir)}`, { cause: err });
  }
  const sources: Record<string, string> = {};
  for (const name of names) sources[name] = await readFile(join(dir, name), "utf8");
  return policySetFromSources(sources);
}

/** Compile a policy set once in a worker, so errors surface at load time (DATALOG_INVALID naming the file). */
export async function validatePolicySet(pool: WorkerPool, set: PolicySet): Promise<PolicySet> {
  await pool.run({ kind: "validate-policies", policies: { id: set.id, statements: set.statements } });
  return set;
}

/** Read and validate a policy directory. */
export async function loadPolicyDirectory(pool: WorkerPool, dir: string): Promise<PolicySet> {
  return validatePolicySet(pool, await readPolicyDirectory(dir));
}
