import { z } from "zod";

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be host:port, e.g. 127.0.0.1:50051")
  .refine((v) => Number(v.slice(v.lastIndexOf(":") + 1)) <= 65535, "port must be at most 65535");

const mongoUri = z
  .string()
  .regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://");

/** The broker's whole configuration. Every field has a safe default for dev mode. */
export const configSchema = z
  .object({
    /** Run with embedded dev defaults (in-memory store, generated key-encryption key). */
    dev: z.boolean().default(false),
    grpc: z
      .object({
        /** Where the gRPC server listens. Loopback by default. */
        addr: hostPort.default("127.0.0.1:50051"),
        /** Largest request or response message, in bytes. */
        maxMessageBytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(4 * 1024 * 1024),
        /** How long in-flight calls may take to finish on shutdown before they are cancelled. */
        shutdownGraceMs: z.number().int().min(0).max(300_000).default(10_000),
      })
      .strict()
      .default({ addr: "127.0.0.1:50051", maxMessageBytes: 4 * 1024 * 1024, shutdownGraceMs: 10_000 }),
    http: z
      .object({
        /** Where the OAuth callback listener listens. */
        addr: hostPort.default("127.0.0.1:8080"),
        /** The URL users' browsers reach the listener at (the OAuth redirect URI is derived from it). */
        publicUrl: z.string().url().optional(),
      })
      .strict()
      .default({ addr: "127.0.0.1:8080" }),
    mongodb: z
      .object({
        /** Connection string. May carry credentials: give it in the file or CAPVAULT_MONGODB_URI, not a flag. */
        uri: mongoUri.optional(),
        database: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,63}$/, "must be 1-63 letters, digits, '_' or '-'")
          .default("capvault"),
      })
      .strict()
      .default({ database: "capvault" }),
    kek: z
      .object({
        /** Keyring file (mode 0600) holding key-encryption keys. */
        keyringFile: z.string().min(1).optional(),
        /** A single key-encryption key, base64 of 32 bytes (CAPVAULT_KEK). */
        key: z.string().min(1).optional(),
        /** The id recorded for `key` (CAPVAULT_KEK_ID). */
        keyId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "must be 1-64 letters, digits, '.', '_' or '-'").optional(),
      })
      .strict()
      .default({}),
    oauth: z
      .object({
        /** Allow http:// OAuth endpoints on loopback addresses (local development, tests, the demo). Never in production. */
        allowInsecureLoopback: z.boolean().default(false),
        /** How long the Proxy reuses a resolved access token before asking the store again (bounds how stale a disconnect may be). */
        accessTokenCacheMs: z.number().int().min(0).max(300_000).default(5_000),
      })
      .strict()
      .default({ allowInsecureLoopback: false, accessTokenCacheMs: 5_000 }),
    proxy: z
      .object({
        /** Cap on a unary Proxy request body (also bounded by grpc.maxMessageBytes). */
        maxBodyBytes: z.number().int().min(0).max(1024 * 1024 * 1024).default(8 * 1024 * 1024),
        /** Cap on a ProxyStream request body (BODY_TOO_LARGE past it). */
        maxStreamBodyBytes: z.number().int().min(0).max(64 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
        /** Cap on an upstream response body, unary or streamed (RESPONSE_TOO_LARGE past it). */
        maxResponseBytes: z.number().int().min(0).max(64 * 1024 * 1024 * 1024).default(16 * 1024 * 1024),
        /** Time allowed for an upstream call when the caller sets no deadline. */
        upstreamTimeoutMs: z.number().int().min(1).max(3_600_000).default(30_000),
      })
      .strict()
      .default({ maxBodyBytes: 8 * 1024 * 1024, maxStreamBodyBytes: 64 * 1024 * 1024, maxResponseBytes: 16 * 1024 * 1024, upstreamTimeoutMs: 30_000 }),
    audit: z
      .object({
        /** Events reserved or waiting to be stored before new calls are refused (AUDIT_UNAVAILABLE, nothing sent). */
        maxQueued: z.number().int().min(1).max(1_000_000).default(10_000),
        /** How long a call waits for its event to be stored before it fails with AUDIT_WRITE_FAILED. */
        commitTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
        /** Dev mode's in-memory store keeps only this many recent events (a ring). */
        devMaxEvents: z.number().int().min(100).max(10_000_000).default(2_000),
      })
      .strict()
      .default({ maxQueued: 10_000, commitTimeoutMs: 10_000, devMaxEvents: 2_000 }),
    capabilities: z
      .object({
        /** Oldest revocation view a broker may decide with; older (database unreachable) refuses with REVOCATIONS_STALE. */
        maxRevocationStalenessMs: z.number().int().min(100).max(3_600_000).default(2_000),
        /**
         * Where authorizations run: "native" (biscuit-auth through Node-API, built by `node native/build.mjs`; start-up
         * fails when it is not built), "wasm" (@biscuit-auth/biscuit-wasm in worker threads), "auto" (native when built).
         */
        runtime: z.enum(["auto", "native", "wasm"]).default("auto"),
        /** Authorizer results kept for the current second, for identical repeated requests (0 turns the cache off). */
        decisionCacheSize: z.number().int().min(0).max(1_000_000).default(4096),
        /** How often the revocation log is read: revocations reach every broker within about this long. */
        revocationPollMs: z.number().int().min(10).max(60_000).default(500),
        /** A full root key reload this often, a safety net for key changes not announced in the revocation log. */
        rootKeyReloadMs: z.number().int().min(1_000).max(3_600_000).default(30_000),
      })
      .strict()
      .default({ maxRevocationStalenessMs: 2_000, runtime: "auto", decisionCacheSize: 4096, revocationPollMs: 500, rootKeyReloadMs: 30_000 }),
    /** Directory of provider catalog files. */
    providersDir: z.string().min(1).default("providers"),
    /** Directory of organisation policy files (Datalog). */
    policiesDir: z.string().min(1).optional(),
    /** The tenant whose operator token dev mode prints at start-up. */
    devTenant: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '.', '_' or '-'").default("dev"),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
        /** One JSON line per RPC (method, tenant, subject, connection, decision, reason, upstream status, latency, trace id). */
        access: z.boolean().default(false),
      })
      .strict()
      .default({ level: "info", access: false }),
    approvals: z
      .object({
        /** How long a held call waits for a decision, and then for its one use (default 15 minutes). */
        ttlSeconds: z.number().int().min(5).max(7 * 24 * 3600).default(900),
        /** Where each new approval is POSTed (signed JSON, with the one-time approval link): a Slack bot, a pager. */
        webhookUrl: z.string().url().optional(),
        /** The HMAC-SHA256 key of the webhook signature (docs/approvals.md); required with webhookUrl. */
        webhookSecret: z.string().min(16, "at least 16 characters").optional(),
      })
      .strict()
      .refine((a) => !a.webhookUrl || a.webhookSecret, { message: "approvals.webhookSecret is required with approvals.webhookUrl", path: ["webhookSecret"] })
      .default({ ttlSeconds: 900 }),
    metrics: z
      .object({
        /** Where the Prometheus metrics listener serves /metrics. Off unless set (`capvault dev`: 127.0.0.1:9464). */
        addr: hostPort.optional(),
      })
      .strict()
      .default({}),
    tracing: z
      .object({
        /** Export OpenTelemetry traces over OTLP; the exporter is configured by the standard OTEL_* variables. */
        enabled: z.boolean().default(false),
      })
      .strict()
      .default({ enabled: false }),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
