import type { CheckBody, ExpressionOp, Predicate, RuleBody, Scope, TermValue } from "./token-format.js";

/**
 * Print decoded Datalog for display (Inspect). Unlike the binding's printer, strings are escaped (JSON rules), so a
 * value can never masquerade as more Datalog. Output is for people; nothing in capvault parses it back.
 */

/** Print one term. */
export function printTerm(t: TermValue): string {
  if ("string" in t) return JSON.stringify(t.string);
  if ("integer" in t) return String(t.integer);
  if ("boolean" in t) return String(t.boolean);
  if ("date" in t) return t.date.toISOString().replace(/\.\d{3}Z$/, "Z");
  if ("bytes" in t) return `hex:${Buffer.from(t.bytes).toString("hex")}`;
  if ("set" in t) return t.set.length === 0 ? "{,}" : `{${t.set.map(printTerm).join(", ")}}`;
  if ("array" in t) return `[${t.array.map(printTerm).join(", ")}]`;
  if ("map" in t) {
    const key = (k: string | number | bigint) => (typeof k === "string" ? JSON.stringify(k) : String(k));
    return `{${t.map.map((e) => `${key(e.key)}: ${printTerm(e.value)}`).join(", ")}}`;
  }
  if ("null" in t) return "null";
  return `$${t.variable}`;
}

/** Print a predicate, e.g. `right("github", "GET", "/repos/acme/")`. */
export function printPredicate(p: Predicate): string {
  return `${p.name}(${p.terms.map(printTerm).join(", ")})`;
}

const INFIX: Record<string, string> = {
  "<": "<", ">": ">", "<=": "<=", ">=": ">=", "===": "===", "!==": "!==", "==": "==", "!=": "!=", "+": "+", "-": "-",
  "*": "*", "/": "/", "&&": "&&", "||": "||", "&": "&", "|": "|", "^": "^", "lazy&&": "&&", "lazy||": "||",
};

/** Print an expression given in reverse Polish order. */
export function printExpression(ops: ExpressionOp[]): string {
  const stack: string[] = [];
  const pop = () => stack.pop() ?? "?";
  for (const op of ops) {
    if ("value" in op) stack.push(printTerm(op.value));
    else if ("closure" in op) {
      const body = printExpression(op.closure.ops);
      stack.push(op.closure.params.length ? `${op.closure.params.map((p) => `$${p}`).join(", ")} -> ${body}` : body);
    } else if ("unary" in op) {
      const a = pop();
      const u = op.unary;
      stack.push(
        u === "negate" ? `!${a}` : u === "parens" ? `(${a})` : u === "length" ? `${a}.length()`
          : u === "typeof" ? `${a}.type()` : `${a}.extern::${op.ffiName ?? "?"}()`,
      );
    } else {
      const right = pop();
      const left = pop();
      const infix = INFIX[op.binary];
      if (infix) stack.push(`${left} ${infix} ${right}`);
      else if (op.binary === "ffi") stack.push(`${left}.extern::${op.ffiName ?? "?"}(${right})`);
      else stack.push(`${left}.${op.binary}(${right})`);
    }
  }
  return stack.join(", ");
}

function printScope(s: Scope): string {
  return "authority" in s ? "authority" : "previous" in s ? "previous" : s.publicKey;
}

function printBody(r: RuleBody): string {
  const parts = [...r.body.map(printPredicate), ...r.expressions.map(printExpression)];
  const trusting = r.scopes.length ? ` trusting ${r.scopes.map(printScope).join(", ")}` : "";
  return parts.join(", ") + trusting;
}

/** Print a rule, e.g. `a($x) <- b($x)`. */
export function printRule(r: RuleBody): string {
  return `${printPredicate(r.head)} <- ${printBody(r)}`;
}

/** Print a check, e.g. `check if time($t), $t <= 2030-01-01T00:00:00Z`. */
export function printCheck(c: CheckBody): string {
  return `${c.kind} ${c.queries.map(printBody).join(" or ")}`;
}
