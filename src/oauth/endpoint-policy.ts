import { CapvaultError } from "../errors/capvault-error.js";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** Whether a URL points at this machine's loopback interface (the only place plain http is ever allowed). */
export function isLoopbackUrl(value: string | URL): boolean {
  const u = typeof value === "string" ? new URL(value) : value;
  return LOOPBACK_HOSTS.has(u.hostname);
}

/**
 * Refuse any endpoint that is not https, or plain http on loopback when `allowInsecureLoopback` is set. URLs with
 * userinfo or a fragment are refused too. Throws CONFIG_INVALID with `what` in the message.
 */
export function checkEndpointUrl(value: string, allowInsecureLoopback: boolean, what: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new CapvaultError("CONFIG_INVALID", `${what} is not a URL`);
  }
  if (u.username || u.password) throw new CapvaultError("CONFIG_INVALID", `${what} must not contain userinfo`);
  if (u.hash) throw new CapvaultError("CONFIG_INVALID", `${what} must not contain a fragment`);
  if (u.protocol === "https:") return u;
  if (u.protocol === "http:" && allowInsecureLoopback && isLoopbackUrl(u)) return u;
  throw new CapvaultError(
    "CONFIG_INVALID",
    `${what} must use https${allowInsecureLoopback ? " (or http on a loopback address)" : ""}`,
  );
}
