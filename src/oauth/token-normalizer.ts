import type { ProviderConfig } from "./provider-catalog.js";
import { normalizeGitHubTokenResponse } from "./github-token-normalizer.js";
import { normalizeSlackTokenResponse } from "./slack-token-normalizer.js";

/**
 * A token-response normalizer turns a provider's raw token-endpoint answer into a standard RFC 6749 one (JSON,
 * errors as HTTP 400 with `error`, space-separated `scope`, `token_type: "bearer"`), so oauth4webapi's own response
 * processing runs unchanged for every provider. It may add `x_capvault_account` (an account id found in the answer).
 */
export type TokenResponseNormalizer = (response: Response) => Promise<Response>;

/** The normalizer a provider's catalog entry names. */
export function tokenResponseNormalizer(provider: ProviderConfig): TokenResponseNormalizer {
  switch (provider.tokenResponse) {
    case "github":
      return normalizeGitHubTokenResponse;
    case "slack-user":
      return (r) => normalizeSlackTokenResponse(r, "user");
    case "slack-bot":
      return (r) => normalizeSlackTokenResponse(r, "bot");
    case "standard":
      return async (r) => r;
  }
}
