/** The catalog file of a test provider on an in-process oidc-provider (client credentials from `<envPrefix>_ID/_SECRET`). */
export function testProviderFile(id: string, issuer: string, envPrefix: string, api: Record<string, unknown>): Record<string, unknown> {
  return {
    id,
    displayName: id === "gh" ? "GitHub (test)" : `GitHub (test variant ${id})`,
    issuer,
    discovery: true,
    defaultScopes: ["openid", "email", "offline_access"],
    scopeSeparator: " ",
    pkce: "S256",
    authorizationParams: { prompt: "consent" },
    tokenResponse: "standard",
    tokenEndpointAuthMethod: "client_secret_basic",
    revocation: "rfc7009",
    account: "oidc",
    client: { idEnv: `${envPrefix}_ID`, secretEnv: `${envPrefix}_SECRET` },
    api,
  };
}
