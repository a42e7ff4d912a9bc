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
  "authorization",
  "password",
  "privateKey",
  "key",
  "code",
  "code_verifier",
  "verifier",
];

/** The broker's structured logger: JSON lines on stderr, secrets redacted by field name at any depth up to 2. */
export function createLogger(level: string, destination: number | DestinationStream = 2): Logger {
  const paths = [...REDACT, ...REDACT.map((k) => `*.${k}`), ...REDACT.map((k) => `*.*.${k}`)];
  return pino(
    {
      level,
      base: { service: "capvault" },
      redact: { paths, censor: "[redacted]" },
      serializers: { err: pino.stdSerializers.err },
    },
    typeof destination === "number" ? pino.destination({ fd: destination, sync: true }) : destination,
  );
}
