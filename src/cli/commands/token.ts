import type { Store } from "../../store/store.js";
import { AuditLog } from "../../audit/audit-log.js";
import { Capabilities } from "../../capabilities/capabilities.js";
import { CapvaultError } from "../../errors/capvault-error.js";
import {
  InspectResponse,
  type AuthorizeResponse,
  type AttenuateResponse,
  type FieldConstraint,
  type Grant,
  type MintResponse,
  type RevokeResponse,
  type Term,
} from "../../gen/capvault/v1/capability.js";
import type { Header, HttpRequest, QueryParam } from "../../gen/capvault/v1/common.js";
import {
  BROKER_OPTIONS,
  BROKER_OPTIONS_HELP,
  CliUsageError,
  bearerMetadata,
  brokerAddress,
  callerToken,
  capabilityClient,
  describeBrokerError,
  parseDuration,
  parseOptions,
  subjectToken,
  timeoutMs,
  unaryCall,
  type OptionKind,
  type ParsedOptions,
  type TokenSources,
} from "../broker-client.js";
import { EXIT, type CliCommand } from "../cli-command.js";
import { withLocalRootKeys } from "./local-root-keys.js";

/** Where a token subcommand reads and writes (the process by default; tests inject their own). */
export interface TokenIo extends TokenSources {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

interface Subcommand {
  summary: string;
  usage: string;
  help: string;
  options: Record<string, OptionKind>;
  /** Runs with the parsed options... */
  run?(options: ParsedOptions, io: TokenIo): Promise<number>;
  /** ...or with argv as given (bootstrap-operator shares the broker's configuration flags). */
  runArgv?(argv: string[], io: TokenIo): Promise<number>;
}

const withBroker = (options: Record<string, OptionKind>) => ({ ...BROKER_OPTIONS, ...options });

// ---------------------------------------------------------------------------------------------------------------
// mint

const mint: Subcommand = {
  summary: "Mint a capability (operators only)",
  usage: "capvault token mint --tenant T --subject S --grant CONN:METHOD:/PREFIX/ [--grant ...] --ttl 1h [--operator] [--allow-unknown-connection] [--json]",
  help: `Mints a capability through CapabilityService/Mint. The caller must hold an operator capability for the tenant
(CAPVAULT_TOKEN or --token-file). Prints the token on stdout and what it is on stderr.

  --tenant T         tenant the capability acts in
  --subject S        the agent or principal it is for
  --grant G          CONNECTION:METHOD:PATH_PREFIX, e.g. conn_1:GET:/repos/acme/ (repeatable)
  --ttl D            lifetime: 90, 30s, 5m, 1h, 7d, 1h30m
  --operator         mint an operator capability (may mint, revoke and manage connections)
  --allow-unknown-connection
                     grant connections that do not exist in the tenant yet (by default each must exist)
  --json             print {token, expiresAt, revocationIds, rootKeyId} on stdout instead
${BROKER_OPTIONS_HELP}
  (--token-file and CAPVAULT_TOKEN give the caller's operator capability)`,
  options: withBroker({ "--tenant": "value", "--subject": "value", "--grant": "list", "--ttl": "value", "--operator": "switch", "--allow-unknown-connection": "switch", "--json": "switch" }),
  async run(o, io) {
    const tenant = required(o, "--tenant");
    const subject = required(o, "--subject");
    const ttl = parseDuration(required(o, "--ttl"), "--ttl");
    const grants = (o.lists["--grant"] ?? []).map(parseGrant);
    const operator = o.switches.has("--operator");
    if (!grants.length && !operator) throw new CliUsageError("give at least one --grant (or --operator)");
    noPositionals(o);
    const auth = await callerToken(o, io);
    const client = capabilityClient(brokerAddress(o, io.env));
    try {
      const res = await unaryCall<MintResponse>(timeoutMs(o), (opts, cb) =>
        client.mint({ tenant, subject, grants, ttl: { seconds: ttl, nanos: 0 }, operator, allowUnknownConnections: o.switches.has("--allow-unknown-connection") }, bearerMetadata(auth), opts, cb),
      );
      if (o.switches.has("--json")) {
        io.stdout.write(`${JSON.stringify({ token: res.token, expiresAt: res.expiresAt?.toISOString(), revocationIds: res.revocationIds, rootKeyId: res.rootKeyId })}\n`);
      } else io.stdout.write(`${res.token}\n`);
      io.stderr.write(
        `minted ${operator ? "an operator" : "a"} capability for ${subject} in tenant ${tenant}: ${grants.length} grant(s), ` +
          `expires ${res.expiresAt?.toISOString() ?? "?"}, root key ${res.rootKeyId}\n` +
          `revocation id (authority block): ${res.revocationIds[0] ?? "?"}\n`,
      );
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// attenuate

const attenuate: Subcommand = {
  summary: "Narrow a capability by appending a block of checks",
  usage: "capvault token attenuate [--path-prefix P] [--ttl D | --expires-at T] [--method M] [--connection C] [--query name=v1,v2] [--body field=v] [--check 'check if ...'] [--approval-method M]",
  help: `Appends one block of checks through CapabilityService/Attenuate; the result can only do less. The token to narrow
is read from --token-file FILE ('-' for stdin), else from stdin when it is piped, else from CAPVAULT_TOKEN.
Prints the narrower token on stdout and the new block's revocation id on stderr.

  --path-prefix P     only paths under P (segment-aligned: /repos/acme/widgets/)
  --ttl D             expire D from now (90, 30s, 5m, 1h); never later than the token already expires
  --expires-at T      expire at T (RFC 3339, e.g. 2030-01-15T12:00:00Z)
  --method M          only these methods (repeatable, or comma-separated: GET,HEAD)
  --connection C      only these connections (repeatable, or comma-separated)
  --query NAME=V1,V2  the query parameter NAME must be present, every value one of V1, V2 (repeatable)
  --body NAME=V1,V2   the top-level JSON body field NAME must be present and one of V1, V2 (repeatable)
  --check CODE        an extra Datalog check ('check if ...', 'check all ...' or 'reject if ...'; repeatable)
  --approval-method M requests with these methods are held until a person approves each one (repeatable, or
                      comma-separated: POST,DELETE); see capvault approvals
${BROKER_OPTIONS_HELP}

Nothing is widened by any of these: every field adds a check. The same can be done offline with any Biscuit library.`,
  options: withBroker({
    "--path-prefix": "value",
    "--ttl": "value",
    "--expires-at": "value",
    "--method": "list",
    "--connection": "list",
    "--query": "list",
    "--body": "list",
    "--check": "list",
    "--approval-method": "list",
  }),
  async run(o, io) {
    noPositionals(o);
    const restriction = {
      connections: splitList(o.lists["--connection"]),
      methods: splitList(o.lists["--method"]).map((m) => m.toUpperCase()),
      pathPrefix: o.values["--path-prefix"] ?? "",
      ttl: o.values["--ttl"] !== undefined ? { seconds: parseDuration(o.values["--ttl"], "--ttl"), nanos: 0 } : undefined,
      expiresAt: o.values["--expires-at"] !== undefined ? parseTime(o.values["--expires-at"], "--expires-at") : undefined,
      query: (o.lists["--query"] ?? []).map((q) => fieldConstraint(q, "--query")),
      body: (o.lists["--body"] ?? []).map((b) => fieldConstraint(b, "--body")),
      checks: o.lists["--check"] ?? [],
      approvalMethods: splitList(o.lists["--approval-method"]).map((m) => m.toUpperCase()),
    };
    const set =
      restriction.connections.length + restriction.methods.length + restriction.query.length + restriction.body.length + restriction.checks.length +
      restriction.approvalMethods.length;
    if (!set && !restriction.pathPrefix && !restriction.ttl && !restriction.expiresAt) {
      throw new CliUsageError("say how to narrow the token (e.g. --path-prefix, --ttl, --method)");
    }
    const token = await subjectToken(o, io);
    const client = capabilityClient(brokerAddress(o, io.env));
    try {
      const res = await unaryCall<AttenuateResponse>(timeoutMs(o), (opts, cb) =>
        client.attenuate({ token, restriction }, bearerMetadata(undefined), opts, cb),
      );
      io.stdout.write(`${res.token}\n`);
      io.stderr.write(`appended block ${res.revocationIds.length - 1}; its revocation id: ${res.revocationIds.at(-1) ?? "?"}\n`);
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// inspect

const inspect: Subcommand = {
  summary: "Show a capability's blocks (verified by the broker)",
  usage: "capvault token inspect [--json]",
  help: `Verifies a token with the broker's root keys (CapabilityService/Inspect) and prints its blocks: facts, checks,
expiry and revocation ids. The token is read from --token-file FILE ('-' for stdin), else from stdin when it is piped,
else from CAPVAULT_TOKEN.

  --json   print the InspectResponse as JSON
${BROKER_OPTIONS_HELP}`,
  options: withBroker({ "--json": "switch" }),
  async run(o, io) {
    noPositionals(o);
    const token = await subjectToken(o, io);
    const client = capabilityClient(brokerAddress(o, io.env));
    try {
      const res = await unaryCall<InspectResponse>(timeoutMs(o), (opts, cb) => client.inspect({ token }, bearerMetadata(undefined), opts, cb));
      io.stdout.write(o.switches.has("--json") ? `${JSON.stringify(InspectResponse.toJSON(res), null, 2)}\n` : formatInspect(res));
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};

/** Inspect's answer as readable text. */
export function formatInspect(res: InspectResponse): string {
  const lines = [
    `tenant ${JSON.stringify(res.tenant)}, subject ${JSON.stringify(res.subject)}, root key ${res.rootKeyId}, ` +
      `expires ${res.expiresAt?.toISOString() ?? "never"}${res.revoked ? ", REVOKED" : ""}`,
  ];
  for (const b of res.blocks) {
    lines.push("", `block ${b.index}${b.index === 0 ? " (authority)" : ""}  revocation id ${b.revocationId}${b.expiresAt ? `  expires ${b.expiresAt.toISOString()}` : ""}`);
    for (const f of b.facts) lines.push(`  ${f.name}(${f.terms.map(formatTerm).join(", ")});`);
    for (const c of b.checks) lines.push(`  ${c};`);
    if (!b.facts.length && !b.checks.length) lines.push("  (empty)");
  }
  return `${lines.join("\n")}\n`;
}

function formatTerm(t: Term): string {
  if (t.string !== undefined) return JSON.stringify(t.string);
  if (t.integer !== undefined) return String(t.integer);
  if (t.boolean !== undefined) return String(t.boolean);
  if (t.date !== undefined) return t.date.toISOString().replace(".000Z", "Z");
  if (t.bytes !== undefined) return `hex:${Buffer.from(t.bytes).toString("hex")}`;
  return "?";
}

// ---------------------------------------------------------------------------------------------------------------
// authorize

const authorize: Subcommand = {
  summary: "Dry-run a request: allowed or denied, and which check refused it",
  usage: "capvault token authorize --connection C --method GET --path /x [--query name=value] [--header NAME:VALUE] [--body JSON]",
  help: `Asks the broker whether the token would let this request through the Proxy (CapabilityService/Authorize), with
the same canonicalization, routing and organisation policies as a real call, without calling upstream.
Prints "allowed" or "denied" with every failing check or policy. Exit code 0 when allowed, 1 when denied or on error.
The token is read from --token-file FILE ('-' for stdin), else from stdin when it is piped, else from CAPVAULT_TOKEN.

  --connection C        connection id
  --method M            HTTP method (default GET)
  --path P              origin-form path, e.g. /repos/acme/widgets/issues
  --query NAME=VALUE    a query parameter (repeatable, in order)
  --header NAME:VALUE   a request header (repeatable; the same syntax as capvault call)
  --body TEXT           the request body (sent as application/json unless --header content-type:... says otherwise)
  --json                print the AuthorizeResponse as JSON
${BROKER_OPTIONS_HELP}`,
  options: withBroker({
    "--connection": "value",
    "--method": "value",
    "--path": "value",
    "--query": "list",
    "--header": "list",
    "--body": "value",
    "--json": "switch",
  }),
  async run(o, io) {
    noPositionals(o);
    const headers: Header[] = (o.lists["--header"] ?? []).map((h) => {
      const colon = h.indexOf(":");
      if (colon <= 0) throw new CliUsageError(`--header: expected NAME:VALUE, got ${JSON.stringify(h)}`);
      return { name: h.slice(0, colon).trim(), value: h.slice(colon + 1).trim() };
    });
    const body = o.values["--body"];
    if (body !== undefined && !headers.some((h) => h.name.toLowerCase() === "content-type")) headers.push({ name: "content-type", value: "application/json" });
    const request: HttpRequest = {
      connection: required(o, "--connection"),
      method: o.values["--method"] ?? "GET",
      path: required(o, "--path"),
      query: (o.lists["--query"] ?? []).map((q): QueryParam => {
        const [name, value] = nameValue(q, "--query");
        return { name, value };
      }),
      headers,
      body: Buffer.from(body ?? ""),
    };
    const token = await subjectToken(o, io);
    const client = capabilityClient(brokerAddress(o, io.env));
    try {
      const res = await unaryCall<AuthorizeResponse>(timeoutMs(o), (opts, cb) => client.authorize({ token, request }, bearerMetadata(token), opts, cb));
      if (o.switches.has("--json")) io.stdout.write(`${JSON.stringify(res)}\n`);
      else {
        const what = `${res.canonicalMethod} ${res.canonicalPath}`;
        const lines = [res.allowed ? `allowed: ${what}` : `denied: ${what}`];
        for (const d of res.denials) {
          const where = d.policy ? `policy ${d.policy}` : d.blockIndex >= 0 ? `block ${d.blockIndex} check ${d.checkIndex}` : d.checkIndex >= 0 ? `authorizer check ${d.checkIndex}` : "policy";
          lines.push(`  ${d.reason} (${where}): ${d.rule}`);
        }
        io.stdout.write(`${lines.join("\n")}\n`);
      }
      return res.allowed ? EXIT.ok : EXIT.failure;
    } finally {
      client.close();
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// revoke

const revoke: Subcommand = {
  summary: "Revoke blocks by revocation id, and every token derived from them (operators only)",
  usage: "capvault token revoke ID... [--reason TEXT]",
  help: `Revokes capability blocks through CapabilityService/Revoke. Revoking a block revokes every token attenuated from it;
every broker sharing the database refuses them within about a second. The caller must hold an operator capability
(CAPVAULT_TOKEN or --token-file). Revocation ids are shown by mint, attenuate and inspect.

  --reason TEXT   why (recorded with the revocation and in the audit trail)
${BROKER_OPTIONS_HELP}`,
  options: withBroker({ "--reason": "value" }),
  async run(o, io) {
    if (!o.positionals.length) throw new CliUsageError("give at least one revocation id");
    const auth = await callerToken(o, io);
    const client = capabilityClient(brokerAddress(o, io.env));
    try {
      const res = await unaryCall<RevokeResponse>(timeoutMs(o), (opts, cb) =>
        client.revoke({ revocationIds: o.positionals, reason: o.values["--reason"] ?? "" }, bearerMetadata(auth), opts, cb),
      );
      io.stdout.write(`revoked ${res.revoked} of ${o.positionals.length} id(s)${res.revoked < o.positionals.length ? " (the others were already revoked)" : ""}\n`);
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// bootstrap-operator

const bootstrapOperator: Subcommand = {
  summary: "Mint the first operator capability locally, with the broker's database and key-encryption key",
  usage: "capvault token bootstrap-operator --tenant T --subject S --ttl 1h [--json] [config flags]",
  help: `Mints an operator capability without calling a broker: it opens the broker's MongoDB and key-encryption key (the
same configuration as 'capvault serve': CAPVAULT_MONGODB_URI, CAPVAULT_KEYRING_FILE or CAPVAULT_KEK, --config FILE),
unseals the current root signing key (creating the first one if no broker has started yet), mints, and records a
"mint" event in the tenant's audit trail. This is how the first operator of a deployment gets a token; whoever can
run it already holds the keys to everything. Prints the token on stdout.

  --tenant T     tenant the operator acts in
  --subject S    who the operator is (recorded in the token and the audit trail)
  --ttl D        lifetime: 90, 30s, 5m, 1h, 7d (keep it short; mint longer-lived operators with it if needed)
  --json         print {token, expiresAt, revocationIds, rootKeyId} on stdout instead
  --mongodb-uri, --mongodb-database, --keyring-file, --config FILE   as for 'capvault serve'`,
  options: { "--tenant": "value", "--subject": "value", "--ttl": "value", "--json": "switch" },
  runArgv: (argv, io) => runBootstrapOperator(argv, io),
};

/** bootstrap-operator: configuration flags are the broker's, so argv is split between parseFlags and our options. */
async function runBootstrapOperator(argv: string[], io: TokenIo): Promise<number> {
  const parse = (rest: string[]) => {
    const o = parseOptions(rest, bootstrapOperator.options);
    const args = { tenant: required(o, "--tenant"), subject: required(o, "--subject"), ttl: parseDuration(required(o, "--ttl"), "--ttl"), json: o.switches.has("--json") };
    noPositionals(o);
    return args;
  };
  return withLocalRootKeys(argv, io.env, parse, async ({ tenant, subject, ttl, json }, { store, keys }) => {
    const caps = new Capabilities({ workers: 1 });
    try {
      await caps.ready();
      const minted = await caps.mint({ rootKey: keys.signingKey(), tenant, subject, grants: [], ttlSeconds: ttl, operator: true });
      await new AuditLog(store.audit).recordAndWait({
        tenant,
        action: "mint",
        subject: "capvault token bootstrap-operator (local)",
        decision: "ok",
        detail: `minted for ${subject} (operator, bootstrap): authority ${minted.revocationIds[0]}`,
      });
      if (json) {
        io.stdout.write(`${JSON.stringify({ token: minted.token, expiresAt: minted.expiresAt.toISOString(), revocationIds: minted.revocationIds, rootKeyId: minted.rootKeyId })}\n`);
      } else io.stdout.write(`${minted.token}\n`);
      io.stderr.write(
        `minted an operator capability for ${subject} in tenant ${tenant}, expires ${minted.expiresAt.toISOString()}, root key ${minted.rootKeyId}\n` +
          `revocation id: ${minted.revocationIds[0]} (revoke it with 'capvault token revoke' when done). Treat the token like a password.\n`,
      );
      return EXIT.ok;
    } finally {
      await caps.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// rotate-root-key, retire-root-key

const rotateRootKey: Subcommand = {
  summary: "Add a new root key that signs from now on (locally, with the broker's database and key)",
  usage: "capvault token rotate-root-key [--json] [config flags]",
  help: `Creates the next capability root key in the broker's database, its private half sealed by the key-encryption
key, as 'capvault serve' would find it (CAPVAULT_MONGODB_URI, CAPVAULT_KEYRING_FILE or CAPVAULT_KEK, --config FILE).
Every running broker signs new tokens with it after its next revocation poll (about 0.5 s); tokens signed by older keys keep
working until those keys are retired with 'capvault token retire-root-key'. Prints the new key id and public key.

  --json         print {keyId, publicKey} on stdout instead
  --mongodb-uri, --mongodb-database, --keyring-file, --config FILE   as for 'capvault serve'`,
  options: { "--json": "switch" },
  runArgv: (argv, io) =>
    withLocalRootKeys(
      argv,
      io.env,
      (rest) => {
        const o = parseOptions(rest, rotateRootKey.options);
        noPositionals(o);
        return { json: o.switches.has("--json") };
      },
      async ({ json }, { store, keys }) => {
        const key = await auditedKeyOperation(store, "rotate-root-key", "a new root key", () => keys.rotate(), (k) => `root key ${k.id} added`);
        io.stdout.write(json ? `${JSON.stringify({ keyId: key.id, publicKey: key.publicKeyHex })}\n` : `${key.id} ed25519/${key.publicKeyHex}\n`);
        io.stderr.write(`root key ${key.id} added; brokers sign new tokens with it after their next revocation poll. Retire older keys once their tokens have expired.\n`);
        return EXIT.ok;
      },
    ),
};

const retireRootKey: Subcommand = {
  summary: "Retire a root key: tokens it signed stop verifying (locally, with the broker's database and key)",
  usage: "capvault token retire-root-key --id N [config flags]",
  help: `Marks root key N retired in the broker's database and announces it in the revocation log: every running broker
refuses tokens signed by it after its next revocation poll (CAPABILITY_UNKNOWN_ROOT_KEY); a broker that cannot read
the log refuses every capability (REVOCATIONS_STALE). The key that signs new tokens cannot be retired: rotate first.

  --id N         the root key id (see 'capvault token rotate-root-key' or CapabilityService/ListPublicKeys)
  --mongodb-uri, --mongodb-database, --keyring-file, --config FILE   as for 'capvault serve'`,
  options: { "--id": "value" },
  runArgv: (argv, io) =>
    withLocalRootKeys(
      argv,
      io.env,
      (rest) => {
        const o = parseOptions(rest, retireRootKey.options);
        noPositionals(o);
        const id = Number(required(o, "--id"));
        if (!Number.isSafeInteger(id) || id < 1) throw new CliUsageError("--id must be a root key id (a positive integer)");
        return { id };
      },
      async ({ id }, { store, keys }) => {
        const known = keys.keys().find((k) => k.id === id);
        if (!known) throw new CapvaultError("INVALID_REQUEST", `there is no root key ${id}`);
        if (known.retired) throw new CapvaultError("INVALID_REQUEST", `root key ${id} is already retired`);
        if (keys.signingKey().id === id) {
          throw new CapvaultError("INVALID_REQUEST", `root key ${id} signs new tokens: run 'capvault token rotate-root-key' first`);
        }
        await auditedKeyOperation(store, "retire-root-key", `root key ${id}`, () => keys.retire(id), () => `root key ${id} retired`);
        io.stderr.write(`root key ${id} retired; running brokers refuse the tokens it signed within their next revocation poll.\n`);
        return EXIT.ok;
      },
    ),
};

/**
 * Root keys belong to no tenant: their operations are audited in the `_system` trail, before they take effect
 * (decision "intent") and after (the outcome), so an operation that answers an error has either not been attempted
 * or is recorded as failed.
 */
async function auditedKeyOperation<T>(
  store: Store,
  action: string,
  target: string,
  operation: () => Promise<T>,
  outcome: (result: T) => string,
): Promise<T> {
  const audit = new AuditLog(store.audit);
  const event = { tenant: "_system", action, subject: "capvault token (local)" };
  await audit.recordAndWait({ ...event, decision: "intent", detail: target });
  let result: T;
  try {
    result = await operation();
  } catch (err) {
    await audit.recordAndWait({ ...event, decision: "error", reason: CapvaultError.from(err).reason, detail: target }).catch(() => undefined);
    throw err;
  }
  await audit.recordAndWait({ ...event, decision: "ok", detail: outcome(result) });
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// the command

const SUBCOMMANDS: Record<string, Subcommand> = {
  mint,
  attenuate,
  inspect,
  authorize,
  revoke,
  "bootstrap-operator": bootstrapOperator,
  "rotate-root-key": rotateRootKey,
  "retire-root-key": retireRootKey,
};

const TOKEN_HELP = `Usage: capvault token <command> [options]

Capabilities are Biscuit tokens: who may call which connection, with which method, under which path, until when.
These commands call a running broker's CapabilityService (except bootstrap-operator, rotate-root-key and
retire-root-key, which run locally with the broker's database and key-encryption key).
Secrets are never taken as flags: the caller's capability comes from CAPVAULT_TOKEN or --token-file FILE.

Commands:
${Object.entries(SUBCOMMANDS)
  .map(([name, s]) => `  ${name.padEnd(19)} ${s.summary}`)
  .join("\n")}

Run 'capvault token <command> --help' for its options. Exit codes: 0 ok (authorize: allowed); 1 failed or denied;
2 usage error.
`;

/** `capvault token <command>` with injectable I/O. Returns the exit code. */
export async function runTokenCommand(argv: string[], io: TokenIo): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(TOKEN_HELP);
    return name ? EXIT.ok : EXIT.usage;
  }
  const sub = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined;
  if (!sub) {
    io.stderr.write(`capvault token: unknown command ${JSON.stringify(name)}\n\n${TOKEN_HELP}`);
    return EXIT.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(`Usage: ${sub.usage}\n\n${sub.help}\n`);
    return EXIT.ok;
  }
  try {
    if (sub.runArgv) return await sub.runArgv(rest, io);
    return await sub.run!(parseOptions(rest, sub.options), io);
  } catch (err) {
    if (err instanceof CliUsageError) {
      io.stderr.write(`capvault token ${name}: ${err.message} (see 'capvault token ${name} --help')\n`);
      return EXIT.usage;
    }
    if (err instanceof CapvaultError) {
      io.stderr.write(`capvault token ${name}: ${err.reason}: ${err.message}\n`);
      return EXIT.failure;
    }
    io.stderr.write(`capvault token ${name}: ${describeBrokerError(err)}\n`);
    return EXIT.failure;
  }
}

export const tokenCommand: CliCommand = {
  name: "token",
  summary: "Mint, attenuate, inspect, authorize and revoke capabilities; bootstrap the first operator",
  help: TOKEN_HELP,
  run(argv) {
    return runTokenCommand(argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  },
};

// ---------------------------------------------------------------------------------------------------------------
// argument helpers

function required(o: ParsedOptions, name: string): string {
  const v = o.values[name];
  if (v === undefined || v === "") throw new CliUsageError(`${name} is required`);
  return v;
}

function noPositionals(o: ParsedOptions): void {
  if (o.positionals.length) throw new CliUsageError(`unexpected argument ${JSON.stringify(o.positionals[0])}`);
}

/** CONNECTION:METHOD:/PREFIX — the connection and method never contain ':', the prefix may. */
export function parseGrant(text: string): Grant {
  const m = /^([^:\s]+):([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*):(\/.*)$/.exec(text);
  if (!m) throw new CliUsageError(`--grant: expected CONNECTION:METHOD:/PATH_PREFIX, got ${JSON.stringify(text)}`);
  return { connection: m[1], method: m[2].toUpperCase(), pathPrefix: m[3] };
}

function splitList(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

function nameValue(text: string, flag: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new CliUsageError(`${flag}: expected NAME=VALUE, got ${JSON.stringify(text)}`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** NAME=V1,V2 (a value may not contain ','; use the RPC or an explicit --check for such values). */
function fieldConstraint(text: string, flag: string): FieldConstraint {
  const [name, values] = nameValue(text, flag);
  return { name, values: values.split(",") };
}

function parseTime(text: string, flag: string): Date {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(text) || Number.isNaN(Date.parse(text))) {
    throw new CliUsageError(`${flag}: expected an RFC 3339 time such as 2030-01-15T12:00:00Z`);
  }
  return new Date(text);
}
