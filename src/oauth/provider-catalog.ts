import { readdir, readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { CapvaultError } from "../errors/capvault-error.js";
import { checkEndpointUrl } from "./endpoint-policy.js";

const url = z.string().url();
const host = z
  .string()
  .regex(/^[a-z0-9.-]+(:\d+)?$/i, "an exact host name (no scheme, path, wildcard or userinfo)");

/**
 * The schema of one provider file in providers/ (see docs/oauth.md). Endpoint URLs must be https, except loopback
 * URLs when the catalog is loaded with `allowInsecureLoopback` (tests).
 */
export const ProviderFileSchema = z
  .object({
    /** Stable id; must equal the file name without `.json`. */
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
    displayName: z.string().min(1),
    /**
     * The authorization server's issuer identifier. It is what the `iss` authorization-response parameter must equal
     * (RFC 9207) and, with `discovery: true`, where the OpenID/OAuth metadata is fetched from.
     */
    issuer: url,
    /** Fetch endpoints from `<issuer>/.well-known/openid-configuration` (OIDC providers, generic-oidc, Google). */
    discovery: z.boolean().default(false),
    authorizationEndpoint: url.optional(),
    tokenEndpoint: url.optional(),
    revocationEndpoint: url.optional(),
    userinfoEndpoint: url.optional(),
    /** The provider always sends `iss` in authorization responses (discovered providers advertise it themselves). */
    issParameterSupported: z.boolean().default(false),
    defaultScopes: z.array(z.string().min(1)).default([]),
    scopeSeparator: z.enum([" ", ","]).default(" "),
    /** The authorization parameter scopes go in ("scope"; Slack user tokens use "user_scope"). */
    scopeParameter: z.string().default("scope"),
    /** PKCE method: only S256 exists here; `plain` is refused by the schema. */
    pkce: z.literal("S256").default("S256"),
    /** Extra authorization parameters, e.g. Google's access_type=offline and prompt=consent. */
    authorizationParams: z.record(z.string(), z.string()).default({}),
    /** How the token endpoint's answers are normalised before standard processing. */
    tokenResponse: z.enum(["standard", "github", "slack-user", "slack-bot"]).default("standard"),
    tokenEndpointAuthMethod: z.enum(["client_secret_basic", "client_secret_post", "none"]).default("client_secret_basic"),
    /** How Disconnect revokes at the provider. */
    revocation: z.enum(["rfc7009", "github", "slack", "none"]).default("none"),
    /** How the account id shown to people is found: id_token/userinfo, GitHub's /user, Slack's token response. */
    account: z.enum(["oidc", "github-user", "slack", "none"]).default("none"),
    /** Where the client credentials come from (never the secret itself: files in providers/ are public). */
    client: z.object({ idEnv: z.string().min(1), secretEnv: z.string().min(1).optional() }).strict(),
    /** What the Proxy uses: where requests for this provider may go and how the credential is attached. */
    api: z
      .object({
        baseUrl: url,
        allowedHosts: z.array(host).min(1),
        credentialHeader: z.object({ name: z.string().min(1), scheme: z.string() }).strict(),
        /** Headers sent when the agent sends none of that name, e.g. GitHub's API version. */
        defaultHeaders: z.record(z.string(), z.string()).optional(),
        /** TESTS AND PRIVATE DEPLOYMENTS ONLY: let the API resolve to loopback/private addresses. */
        allowPrivateAddresses: z.boolean().optional(),
        /** TESTS AND PRIVATE DEPLOYMENTS ONLY: a PEM file of CA certificates to trust for the API. */
        caFile: z.string().min(1).optional(),
      })
      .strict(),
  })
  .strict();

/** A provider as written in its catalog file. */
export type ProviderFile = z.infer<typeof ProviderFileSchema>;

/** Endpoint overrides for one provider (tests point providers at loopback servers; staging at sandboxes). */
export interface ProviderOverride {
  issuer?: string;
  discovery?: boolean;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  revocationEndpoint?: string;
  userinfoEndpoint?: string;
  issParameterSupported?: boolean;
  apiBaseUrl?: string;
  allowedHosts?: string[];
  authorizationParams?: Record<string, string>;
  defaultScopes?: string[];
}

/** A validated provider after overrides; what the rest of src/oauth works with. */
export type ProviderConfig = ProviderFile & { readonly allowInsecureLoopback: boolean };

/** The loaded catalog. */
export interface ProviderCatalog {
  /** The provider, or CapvaultError PROVIDER_UNKNOWN. */
  get(id: string): ProviderConfig;
  has(id: string): boolean;
  list(): ProviderConfig[];
}

/** The providers/ folder shipped with capvault. */
export const DEFAULT_CATALOG_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "providers");

export interface LoadCatalogOptions {
  /** Folder of `<id>.json` files; providers/ by default. */
  dir?: string;
  overrides?: Record<string, ProviderOverride>;
  /** Allow http:// endpoints on loopback addresses (127.0.0.1, ::1, localhost). Never in production. */
  allowInsecureLoopback?: boolean;
}

/** Load, validate and override every `<id>.json` in the catalog folder. Fails with CONFIG_INVALID naming the file. */
export async function loadProviderCatalog(options: LoadCatalogOptions = {}): Promise<ProviderCatalog> {
  const dir = options.dir ?? DEFAULT_CATALOG_DIR;
  const allowInsecureLoopback = options.allowInsecureLoopback ?? false;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".json")).sort();
  } catch (err) {
    throw new CapvaultError("CONFIG_INVALID", `cannot read the provider catalog folder ${dir}`, { cause: err });
  }
  const providers = new Map<string, ProviderConfig>();
  for (const name of names) {
    const file = join(dir, name);
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, "utf8"));
    } catch (err) {
      throw new CapvaultError("CONFIG_INVALID", `provider file ${name} is not valid JSON`, { cause: err });
    }
    const provider = parseProvider(raw, name, options.overrides?.[basename(name, ".json")], allowInsecureLoopback);
    providers.set(provider.id, provider);
  }
  for (const id of Object.keys(options.overrides ?? {})) {
    if (!providers.has(id)) throw new CapvaultError("CONFIG_INVALID", `override for unknown provider "${id}"`);
  }
  return catalogOf(providers);
}

/** Validate one provider document (exported for tests and for callers that build a catalog in code). */
export function parseProvider(
  raw: unknown,
  fileName: string,
  override: ProviderOverride | undefined,
  allowInsecureLoopback: boolean,
): ProviderConfig {
  const parsed = ProviderFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CapvaultError("CONFIG_INVALID", `provider file ${fileName}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  const file = parsed.data;
  if (`${file.id}.json` !== fileName) {
    throw new CapvaultError("CONFIG_INVALID", `provider file ${fileName} declares id "${file.id}"; the file must be named ${file.id}.json`);
  }
  const p: ProviderConfig = {
    ...file,
    ...pick(override, ["issuer", "discovery", "authorizationEndpoint", "tokenEndpoint", "revocationEndpoint", "userinfoEndpoint", "issParameterSupported", "authorizationParams", "defaultScopes"]),
    api: {
      ...file.api,
      ...(override?.apiBaseUrl ? { baseUrl: override.apiBaseUrl } : {}),
      ...(override?.allowedHosts ? { allowedHosts: override.allowedHosts } : {}),
    },
    allowInsecureLoopback,
  };
  if (!p.discovery && (!p.authorizationEndpoint || !p.tokenEndpoint)) {
    throw new CapvaultError("CONFIG_INVALID", `provider ${p.id}: authorizationEndpoint and tokenEndpoint are required without discovery`);
  }
  if ((p.revocation === "github" || p.revocation === "slack") && !p.revocationEndpoint) {
    throw new CapvaultError("CONFIG_INVALID", `provider ${p.id}: revocation "${p.revocation}" needs revocationEndpoint`);
  }
  for (const [field, value] of [
    ["issuer", p.issuer],
    ["authorizationEndpoint", p.authorizationEndpoint],
    ["tokenEndpoint", p.tokenEndpoint],
    ["revocationEndpoint", p.revocationEndpoint],
    ["userinfoEndpoint", p.userinfoEndpoint],
    ["api.baseUrl", p.api.baseUrl],
  ] as const) {
    if (value !== undefined) checkEndpointUrl(value, allowInsecureLoopback, `provider ${p.id}: ${field}`);
  }
  return Object.freeze(p);
}

function pick<T extends object, K extends keyof T>(o: T | undefined, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o?.[k] !== undefined) out[k] = o[k];
  return out;
}

function catalogOf(providers: Map<string, ProviderConfig>): ProviderCatalog {
  return {
    get(id) {
      const p = providers.get(id);
      if (!p) throw new CapvaultError("PROVIDER_UNKNOWN", undefined, { metadata: { provider: id } });
      return p;
    },
    has: (id) => providers.has(id),
    list: () => [...providers.values()],
  };
}
