import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { CapvaultError } from "../errors/capvault-error.js";
import type { ProviderConfig } from "../oauth/provider-catalog.js";
import { assertUpstreamTarget, type UpstreamTarget } from "./upstream-target.js";

/**
 * Where a provider's tokens may be sent, from its catalog entry's `api` section. Checked once per provider
 * (assertUpstreamTarget), then reused for every call.
 */
export function providerUpstreamTarget(provider: ProviderConfig, catalogDir: string): UpstreamTarget {
  const api = provider.api;
  let ca: Buffer | undefined;
  if (api.caFile) {
    const file = isAbsolute(api.caFile) ? api.caFile : resolve(catalogDir, api.caFile);
    try {
      ca = readFileSync(file);
    } catch {
      throw new CapvaultError("CONFIG_INVALID", `provider ${provider.id}: api.caFile ${file} cannot be read`);
    }
  }
  const target: UpstreamTarget = {
    baseUrl: api.baseUrl,
    allowedHosts: api.allowedHosts.map((h) => h.toLowerCase()),
    credentialHeader: { name: api.credentialHeader.name, ...(api.credentialHeader.scheme ? { scheme: api.credentialHeader.scheme } : {}) },
    ...(api.defaultHeaders ? { defaultHeaders: api.defaultHeaders } : {}),
    ...(api.allowPrivateAddresses ? { allowPrivateAddresses: true } : {}),
    ...(ca ? { ca } : {}),
  };
  assertUpstreamTarget(target);
  return target;
}
