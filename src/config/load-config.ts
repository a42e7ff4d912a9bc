import { readFileSync } from "node:fs";
import { z } from "zod";
import { configSchema, type Config } from "./schema.js";

/** A configuration problem, naming the field. Start-up prints it and exits with code 2. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Environment variables and the config path each one sets. Secrets are accepted here, never as flags. */
export const ENV_VARS: Record<string, { path: string; type: "string" | "number" | "boolean" }> = {
  CAPVAULT_DEV: { path: "dev", type: "boolean" },
  CAPVAULT_GRPC_ADDR: { path: "grpc.addr", type: "string" },
  CAPVAULT_GRPC_MAX_MESSAGE_BYTES: { path: "grpc.maxMessageBytes", type: "number" },
  CAPVAULT_SHUTDOWN_GRACE_MS: { path: "grpc.shutdownGraceMs", type: "number" },
  CAPVAULT_HTTP_ADDR: { path: "http.addr", type: "string" },
  CAPVAULT_PUBLIC_URL: { path: "http.publicUrl", type: "string" },
  CAPVAULT_MONGODB_URI: { path: "mongodb.uri", type: "string" },
  CAPVAULT_MONGODB_DATABASE: { path: "mongodb.database", type: "string" },
  CAPVAULT_KEYRING_FILE: { path: "kek.keyringFile", type: "string" },
  CAPVAULT_KEK: { path: "kek.key", type: "string" },
  CAPVAULT_KEK_ID: { path: "kek.keyId", type: "string" },
  CAPVAULT_OAUTH_ALLOW_INSECURE_LOOPBACK: { path: "oauth.allowInsecureLoopback", type: "boolean" },
  CAPVAULT_PROXY_MAX_BODY_BYTES: { path: "proxy.maxBodyBytes", type: "number" },
  CAPVAULT_PROXY_MAX_STREAM_BODY_BYTES: { path: "proxy.maxStreamBodyBytes", type: "number" },
  CAPVAULT_PROXY_MAX_RESPONSE_BYTES: { path: "proxy.maxResponseBytes", type: "number" },
  CAPVAULT_PROXY_UPSTREAM_TIMEOUT_MS: { path: "proxy.upstreamTimeoutMs", type: "number" },
  CAPVAULT_AUDIT_MAX_QUEUED: { path: "audit.maxQueued", type: "number" },
  CAPVAULT_AUDIT_COMMIT_TIMEOUT_MS: { path: "audit.commitTimeoutMs", type: "number" },
  CAPVAULT_AUDIT_DEV_MAX_EVENTS: { path: "audit.devMaxEvents", type: "number" },
  CAPVAULT_MAX_REVOCATION_STALENESS_MS: { path: "capabilities.maxRevocationStalenessMs", type: "number" },
  CAPVAULT_CAPABILITY_RUNTIME: { path: "capabilities.runtime", type: "string" },
  CAPVAULT_DECISION_CACHE_SIZE: { path: "capabilities.decisionCacheSize", type: "number" },
  CAPVAULT_REVOCATION_POLL_MS: { path: "capabilities.revocationPollMs", type: "number" },
  CAPVAULT_ROOT_KEY_RELOAD_MS: { path: "capabilities.rootKeyReloadMs", type: "number" },
  CAPVAULT_ACCESS_TOKEN_CACHE_MS: { path: "oauth.accessTokenCacheMs", type: "number" },
  CAPVAULT_METRICS_ADDR: { path: "metrics.addr", type: "string" },
  CAPVAULT_APPROVAL_TTL_SECONDS: { path: "approvals.ttlSeconds", type: "number" },
  CAPVAULT_APPROVAL_WEBHOOK_URL: { path: "approvals.webhookUrl", type: "string" },
  CAPVAULT_APPROVAL_WEBHOOK_SECRET: { path: "approvals.webhookSecret", type: "string" },
  CAPVAULT_TRACING: { path: "tracing.enabled", type: "boolean" },
  CAPVAULT_ACCESS_LOG: { path: "log.access", type: "boolean" },
  CAPVAULT_PROVIDERS_DIR: { path: "providersDir", type: "string" },
  CAPVAULT_POLICIES_DIR: { path: "policiesDir", type: "string" },
  CAPVAULT_LOG_LEVEL: { path: "log.level", type: "string" },
  CAPVAULT_DEV_TENANT: { path: "devTenant", type: "string" },
};

/** Command-line flags and the config path each one sets. No secret can be given as a flag. */
export const FLAGS: Record<string, { path: string; type: "string" | "number" | "boolean" }> = {
  "--grpc-addr": { path: "grpc.addr", type: "string" },
  "--http-addr": { path: "http.addr", type: "string" },
  "--public-url": { path: "http.publicUrl", type: "string" },
  "--mongodb-uri": { path: "mongodb.uri", type: "string" },
  "--mongodb-database": { path: "mongodb.database", type: "string" },
  "--keyring-file": { path: "kek.keyringFile", type: "string" },
  "--providers-dir": { path: "providersDir", type: "string" },
  "--policies-dir": { path: "policiesDir", type: "string" },
  "--log-level": { path: "log.level", type: "string" },
  "--metrics-addr": { path: "metrics.addr", type: "string" },
};

export interface ConfigSources {
  /** Flags already split into name → value (see parseFlags). */
  flags?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file (--config or CAPVAULT_CONFIG). */
  file?: string;
  /** Values forced by the command, e.g. { dev: true } for `capvault dev`. */
  overrides?: Record<string, unknown>;
}

/**
 * Build the one typed configuration: defaults < file < environment < flags < command overrides.
 * Throws ConfigError naming each bad field.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  const raw: Record<string, unknown> = {};

  const file = sources.file ?? env.CAPVAULT_CONFIG;
  if (file) {
    try {
      const parsed = JSON.parse(readFileSync(file, "utf8"));
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        problems.push(`config file ${file}: must be a JSON object`);
      } else Object.assign(raw, parsed);
    } catch (err) {
      problems.push(`config file ${file}: ${(err as Error).message}`);
    }
  }

  for (const [name, spec] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    setPath(raw, spec.path, coerce(value, spec.type, name, problems));
  }
  for (const [name, value] of Object.entries(sources.flags ?? {})) {
    const spec = FLAGS[name];
    if (!spec) {
      problems.push(`${name}: unknown flag`);
      continue;
    }
    if (name === "--mongodb-uri" && /\/\/[^/@]*:[^/@]*@/.test(value)) {
      problems.push("--mongodb-uri: holds a password; give it in CAPVAULT_MONGODB_URI or the config file instead");
      continue;
    }
    setPath(raw, spec.path, coerce(value, spec.type, name, problems));
  }
  for (const [path, value] of Object.entries(sources.overrides ?? {})) setPath(raw, path, value);

  const result = configSchema.safeParse(raw);
  if (!result.success) problems.push(...result.error.issues.map((i) => describeIssue(i, raw)));
  if (problems.length) throw new ConfigError(problems);
  const config = result.data!;
  if (!config.dev && !config.mongodb.uri) {
    throw new ConfigError([
      "mongodb.uri: required unless running in dev mode (set CAPVAULT_MONGODB_URI, --mongodb-uri or the config file, or run `capvault dev`)",
    ]);
  }
  if (config.kek.keyringFile && config.kek.key) {
    throw new ConfigError(["kek: set a keyring file (CAPVAULT_KEYRING_FILE) or a key (CAPVAULT_KEK), not both"]);
  }
  if (!config.dev && !config.kek.keyringFile && !config.kek.key) {
    throw new ConfigError([
      "kek: a key-encryption key is required unless running in dev mode (set CAPVAULT_KEYRING_FILE or CAPVAULT_KEK)",
    ]);
  }
  return config;
}

/** Split argv into known flags (`--name value` or `--name=value`) and the rest. */
export function parseFlags(argv: string[], known: Record<string, unknown> = FLAGS): {
  flags: Record<string, string>;
  config?: string;
  rest: string[];
  problems: string[];
} {
  const flags: Record<string, string> = {};
  const rest: string[] = [];
  const problems: string[] = [];
  let config: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (name !== "--config" && !(name in known)) {
      rest.push(arg);
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) {
      problems.push(`${name}: needs a value`);
      continue;
    }
    if (name === "--config") config = value;
    else flags[name] = value;
  }
  return { flags, config, rest, problems };
}

function coerce(value: string, type: "string" | "number" | "boolean", name: string, problems: string[]): unknown {
  if (type === "string") return value;
  if (type === "number") {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
      problems.push(`${name}: must be a whole number, got "${value.slice(0, 40)}"`);
      return undefined;
    }
    return n;
  }
  if (["1", "true", "yes", "on"].includes(value.toLowerCase())) return true;
  if (["0", "false", "no", "off"].includes(value.toLowerCase())) return false;
  problems.push(`${name}: must be true or false`);
  return undefined;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  if (value === undefined) return;
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

const SECRET_PATHS = new Set(["mongodb.uri", "kek.key"]);

function describeIssue(issue: z.core.$ZodIssue, raw: Record<string, unknown>): string {
  const path = issue.path.join(".") || "(root)";
  const envName = Object.entries(ENV_VARS).find(([, s]) => s.path === path)?.[0];
  const where = envName ? ` (${envName})` : "";
  // Never echo a value that may be secret.
  const shown = SECRET_PATHS.has(path) ? "" : valueHint(raw, issue.path as (string | number)[]);
  return `${path}${where}: ${issue.message}${shown}`;
}

function valueHint(raw: Record<string, unknown>, path: (string | number)[]): string {
  let node: unknown = raw;
  for (const key of path) node = (node as Record<string | number, unknown> | undefined)?.[key];
  if (node === undefined || typeof node === "object") return "";
  return `, got ${JSON.stringify(node).slice(0, 60)}`;
}

/** A copy of the configuration that is safe to log: secrets replaced by a marker. */
export function redactConfig(config: Config): Record<string, unknown> {
  const copy = structuredClone(config) as Record<string, any>;
  if (copy.mongodb.uri) copy.mongodb.uri = String(copy.mongodb.uri).replace(/\/\/([^:@/]*):([^@/]*)@/, "//$1:***@");
  if (copy.kek.key) copy.kek.key = "***";
  if (copy.approvals?.webhookSecret) copy.approvals.webhookSecret = "***";
  return copy;
}
