import { inspect } from "node:util";
import * as oauth from "oauth4webapi";
import { CapvaultError } from "../errors/capvault-error.js";
import type { SealedSecret, Vault } from "../vault/vault.js";
import { checkEndpointUrl } from "./endpoint-policy.js";
import type { ProviderCatalog, ProviderConfig } from "./provider-catalog.js";
import { tokenResponseNormalizer, type TokenResponseNormalizer } from "./token-normalizer.js";

/**
 * A provider's OAuth client credentials, from configuration. The secret is either given directly (e.g. read from an
 * environment variable or a secret manager by the caller) or sealed with the vault (checklist item 11: provider
 * client secrets are vault secrets; a sealed one is opened with the context
 * `{tenant: "_capvault", record: "provider:<id>", provider: <id>, field: "client_secret"}`).
 */
export interface ClientCredentials {
  clientId: string;
  clientSecret?: string | { sealed: SealedSecret };
}

/** The vault context a provider's client secret is sealed under. */
export const clientSecretContext = (provider: string) => ({
  tenant: "_capvault",
  record: `provider:${provider}`,
  provider,
  field: "client_secret",
});

/** A secret string that prints as `[redacted]` in logs, JSON and util.inspect. */
export class RedactedSecret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  /** The secret itself; only for building the one request that needs it. */
  reveal(): string {
    return this.#value;
  }
  toString() {
    return "[redacted]";
  }
  toJSON() {
    return "[redacted]";
  }
  [inspect.custom]() {
    return "[redacted]";
  }
}

/** Transport options accepted by every oauth4webapi request function. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type HttpOptions = oauth.HttpRequestOptions<any, any>;

/** Everything needed to talk to one provider: oauth4webapi's server and client objects plus transport options. */
export interface ProviderClient {
  readonly provider: ProviderConfig;
  readonly as: oauth.AuthorizationServer;
  readonly client: oauth.Client;
  readonly clientAuth: oauth.ClientAuth;
  /** `Basic base64(client_id:client_secret)`, for provider-specific endpoints such as GitHub's token revocation. */
  basicAuthorization(): string;
  /** oauth4webapi request options: timeout, loopback http when allowed, and (for token calls) the normalizer. */
  http(timeoutMs: number, normalize?: boolean): HttpOptions;
  /** The provider's token-response normalizer. */
  readonly normalize: TokenResponseNormalizer;
}

export interface ProviderClientsOptions {
  catalog: ProviderCatalog;
  vault: Vault;
  /** Client credentials by provider id; when absent, read from the env variables the catalog entry names. */
  clients?: Record<string, ClientCredentials>;
  env?: Record<string, string | undefined>;
  /** How long discovered metadata is reused (default 1 h). */
  discoveryTtlMs?: number;
  /** Timeout of discovery requests (default 10 s). */
  timeoutMs?: number;
}

/** Resolves providers to ready-to-use oauth4webapi objects, caching discovery. */
export class ProviderClients {
  private readonly cache = new Map<string, { at: number; value: Promise<ProviderClient> }>();

  constructor(private readonly options: ProviderClientsOptions) {}

  /** The provider's client; PROVIDER_UNKNOWN, PROVIDER_UNAVAILABLE (discovery failed, no credentials configured). */
  async get(providerId: string): Promise<ProviderClient> {
    const provider = this.options.catalog.get(providerId);
    const hit = this.cache.get(providerId);
    const ttl = this.options.discoveryTtlMs ?? 3_600_000;
    if (hit && Date.now() - hit.at < ttl) return hit.value;
    const value = this.build(provider);
    this.cache.set(providerId, { at: Date.now(), value });
    value.catch(() => this.cache.delete(providerId));
    return value;
  }

  private async build(provider: ProviderConfig): Promise<ProviderClient> {
    const creds = await this.credentials(provider);
    const as = await this.metadata(provider);
    const client: oauth.Client = { client_id: creds.clientId };
    const secret = creds.secret;
    let clientAuth: oauth.ClientAuth;
    switch (provider.tokenEndpointAuthMethod) {
      case "none":
        clientAuth = oauth.None();
        break;
      case "client_secret_post":
      case "client_secret_basic":
        if (!secret) {
          throw new CapvaultError("PROVIDER_UNAVAILABLE", `provider ${provider.id} has no client secret configured`);
        }
        clientAuth =
          provider.tokenEndpointAuthMethod === "client_secret_post"
            ? oauth.ClientSecretPost(secret.reveal())
            : oauth.ClientSecretBasic(secret.reveal());
        break;
    }
    const normalize = tokenResponseNormalizer(provider);
    return {
      provider,
      as,
      client,
      clientAuth,
      normalize,
      basicAuthorization() {
        const raw = `${encodeURIComponent(creds.clientId)}:${encodeURIComponent(secret?.reveal() ?? "")}`;
        return `Basic ${Buffer.from(raw).toString("base64")}`;
      },
      http(timeoutMs, withNormalizer = false) {
        return {
          signal: AbortSignal.timeout(timeoutMs),
          [oauth.allowInsecureRequests]: provider.allowInsecureLoopback,
          headers: { accept: "application/json" },
          [oauth.customFetch]: async (url: string, init: oauth.CustomFetchOptions<string, unknown>) => {
            const response = await fetch(url, init as RequestInit);
            return withNormalizer ? normalize(response) : response;
          },
        };
      },
    };
  }

  private async credentials(provider: ProviderConfig): Promise<{ clientId: string; secret?: RedactedSecret }> {
    const env = this.options.env ?? process.env;
    const configured = this.options.clients?.[provider.id];
    const clientId = configured?.clientId ?? env[provider.client.idEnv];
    if (!clientId) {
      throw new CapvaultError("PROVIDER_UNAVAILABLE", `provider ${provider.id} has no client id configured (set ${provider.client.idEnv})`);
    }
    const raw = configured ? configured.clientSecret : provider.client.secretEnv ? env[provider.client.secretEnv] : undefined;
    if (raw === undefined || raw === "") return { clientId };
    if (typeof raw === "string") return { clientId, secret: new RedactedSecret(raw) };
    const opened = await this.options.vault.open(raw.sealed, clientSecretContext(provider.id));
    return { clientId, secret: new RedactedSecret(opened.toString("utf8")) };
  }

  private async metadata(provider: ProviderConfig): Promise<oauth.AuthorizationServer> {
    const issuer = new URL(provider.issuer);
    let as: oauth.AuthorizationServer;
    if (provider.discovery) {
      try {
        const options = {
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
          [oauth.allowInsecureRequests]: provider.allowInsecureLoopback,
        };
        as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, options));
      } catch (err) {
        throw new CapvaultError("PROVIDER_UNAVAILABLE", `discovery for provider ${provider.id} failed`, { cause: err });
      }
    } else {
      as = { issuer: provider.issuer };
    }
    as = {
      ...as,
      ...(provider.authorizationEndpoint ? { authorization_endpoint: provider.authorizationEndpoint } : {}),
      ...(provider.tokenEndpoint ? { token_endpoint: provider.tokenEndpoint } : {}),
      ...(provider.revocationEndpoint ? { revocation_endpoint: provider.revocationEndpoint } : {}),
      ...(provider.userinfoEndpoint ? { userinfo_endpoint: provider.userinfoEndpoint } : {}),
      ...(provider.issParameterSupported ? { authorization_response_iss_parameter_supported: true } : {}),
    };
    for (const field of ["authorization_endpoint", "token_endpoint", "revocation_endpoint", "userinfo_endpoint"] as const) {
      const v = as[field];
      if (v !== undefined) checkEndpointUrl(v, provider.allowInsecureLoopback, `provider ${provider.id}: ${field}`);
    }
    if (!as.authorization_endpoint || !as.token_endpoint) {
      throw new CapvaultError("PROVIDER_UNAVAILABLE", `provider ${provider.id} has no authorization or token endpoint`);
    }
    return as;
  }
}
