import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { CapvaultError } from "../errors/capvault-error.js";
import type { ProviderConfig } from "../oauth/provider-catalog.js";
import { assertUpstreamTarget, type UpstreamTarget } from "./upstream-target.js";

/**
 * Where a provider's tokens may be sent, from its catalog entry's `api` section. Checked for every provider at
 * start-up (ConnectionDirectory.checkProviders: CONFIG_INVALID naming the provider and the field), then reused for
 * every call.
 *
 * The error names the provider and the `api` field but never a file path: an error's message may reach an agent. The
 * unreadable file is named in the error's cause, which stays in the process (the start-up log prints it).
 */
export function providerUpstreamTarget(provider: ProviderConfig, catalogDir: string): UpstreamTarget {
  const api = provider.api;
  let ca: Buffer | undefined;
  if (api.caFile) {
    const file = isAbsolute(api.caFile) ? api.caFile : resolve(catalogDir, api.caFile);
    try {
      ca = readFileSync(file);
    } catch (err) {
      throw new CapvaultError("CONFIG_INVALID", `provider ${provider.id}: api.caFile cannot be read`, { cause: err });
    }
  }
  // Frozen all the way down (the CA bytes aside): the Proxy works out what a target implies once per target
  // (build-upstream-url.ts, upstream-request-headers.ts), which is exact only for a target that cannot change.
  const target: UpstreamTarget = {
    baseUrl: api.baseUrl,
    allowedHosts: Object.freeze(api.allowedHosts.map((h) => h.toLowerCase())),
    credentialHeader: Object.freeze({ name: api.credentialHeader.name, ...(api.credentialHeader.scheme ? { scheme: api.credentialHeader.scheme } : {}) }),
    ...(api.defaultHeaders ? { defaultHeaders: Object.freeze({ ...api.defaultHeaders }) } : {}),
    ...(api.allowPrivateAddresses ? { allowPrivateAddresses: true } : {}),
    ...(ca ? { ca } : {}),
  };
  try {
    assertUpstreamTarget(target);
  } catch (err) {
    if (!CapvaultError.is(err, "CONFIG_INVALID")) throw err;
    throw new CapvaultError("CONFIG_INVALID", `provider ${provider.id}: api.${err.message.replace(/^upstream target: /, "")}`);
  }
  return Object.freeze(target);
}
