import type { ProviderCatalog } from "./provider-catalog.js";

/** Whether a catalog provider can connect accounts now, and if not, what is missing. */
export interface ProviderReadiness {
  id: string;
  usable: boolean;
  /** The environment variables to set (names only: never a value). */
  missing: string[];
}

/**
 * Each provider's readiness: it needs its client id (`client.idEnv`) and, when it declares one, its client secret
 * (`client.secretEnv`) in the environment. Said at start-up, so that BeginConnect's PROVIDER_UNAVAILABLE is no surprise.
 */
export function providerReadiness(catalog: ProviderCatalog, env: NodeJS.ProcessEnv = process.env): ProviderReadiness[] {
  return catalog.list().map((p) => {
    const missing = [p.client.idEnv, ...(p.client.secretEnv ? [p.client.secretEnv] : [])].filter((name) => !env[name]);
    return { id: p.id, usable: missing.length === 0, missing };
  });
}

/** One line for a log or a banner: "sandbox, github usable; slack: set CAPVAULT_SLACK_CLIENT_ID". */
export function describeReadiness(readiness: readonly ProviderReadiness[]): string {
  const usable = readiness.filter((r) => r.usable).map((r) => r.id);
  const not = readiness.filter((r) => !r.usable).map((r) => `${r.id} (set ${r.missing.join(" and ")})`);
  return [usable.length ? `usable: ${usable.join(", ")}` : "none usable", ...(not.length ? [`not usable: ${not.join("; ")}`] : [])].join("; ");
}
