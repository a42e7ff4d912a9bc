import { expect } from "vitest";
import { followToCallback, openCallback } from "./authorize-driver.js";
import type { Broker } from "./oauth-harness.js";

/** Connect an account through the whole flow (authorization URL → provider → callback) and return the connection id. */
export async function connectThroughFlow(broker: Broker, provider: string, tenant = "acme", user = "u-alice"): Promise<string> {
  const { authorizationUrl, connectionId } = await broker.oauth.beginConnect({ tenant, user, provider });
  const callbackUrl = await followToCallback(authorizationUrl, broker.redirectUri);
  const page = await openCallback(callbackUrl);
  expect(page.text).toContain("is now connected");
  return connectionId;
}
