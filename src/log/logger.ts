import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger } from "pino";

/** Field names whose values are secrets wherever they appear in a log record. */
const REDACT = [
  "token",
  "accessToken",
  "refreshToken",
  "access_token",
  "refresh_token",
  "id_token",
  "clientSecret",
  "client_secret",
  "secret",
  "webhookSecret",
  "authorization",
  "password",
  "privateKey",
  "key",
  "code",
  "code_verifier",
  "verifier",
];

/**
 * pino's error serializer, with the error's `code` (EADDRINUSE, ECONNREFUSED, a capvault reason) kept as `errorCode`:
 * a field named `code` is redacted everywhere, because OAuth authorization codes are secrets.
 */
function errorWithCode(err: Error): Record<string, unknown> {
  const serialized = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  if (serialized && (typeof serialized.code === "string" || typeof serialized.code === "number")) {
    serialized.errorCode = serialized.code;
    delete serialized.code;
  }
  return serialized;
}

/** The broker's structured logger: JSON lines on stderr, secrets redacted by field name at any depth up to 2. */
export function createLogger(level: string, destination: number | DestinationStream = 2): Logger {
  const paths = [...REDACT, ...REDACT.map((k) => `*.${k}`), ...REDACT.map((k) => `*.*.${k}`)];
  return pino(
    {
      level,
      base: { service: "capvault" },
      redact: { paths, censor: "[redacted]" },
      serializers: { err: errorWithCode },
    },
    typeof destination === "number" ? pino.destination({ fd: destination, sync: true }) : destination,
  );
}
