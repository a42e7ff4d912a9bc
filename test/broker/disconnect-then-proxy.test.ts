import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DisconnectResponse } from "../../src/gen/capvault/v1/connection.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

/**
 * Disconnect, then Proxy on the same broker: the access token Proxy has cached for the connection must not outlive
 * the connection. The upstream is the judge: it must see no request carrying the old token after Disconnect.
 */
describe("Proxy after Disconnect (FerretDB, oidc-provider, HTTPS upstream)", () => {
  let t: TestBroker;
  beforeAll(async () => {
    t = await startTestBroker();
  });
  afterAll(async () => t?.close());

  it("is refused with CONNECTION_NOT_FOUND and the old token never reaches the upstream again", async () => {
    const connection = await t.connectAccount("alice");
    const agent = t.client((await t.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }])).token);
    const oldToken = await t.accessTokenOf(connection);

    // Proxy works, twice (the second call is served from the broker's token cache).
    expect((await agent.fetch(connection, { path: "/repos/acme/widgets" })).status).toBe(200);
    expect((await agent.fetch(connection, { path: "/repos/acme/widgets" })).status).toBe(200);
    expect(t.upstream.headerValues(t.upstream.requests.length - 1, "authorization")).toEqual([`Bearer ${oldToken}`]);

    const disconnected = await new Promise<DisconnectResponse>((ok, no) =>
      t.rpc.connections.disconnect({ tenant: t.tenant, connectionId: connection }, t.operatorMetadata(), (e: ServiceError | null, r) =>
        e ? no(e) : ok(r),
      ),
    );
    expect(disconnected.revokedAtProvider).toBe(true);

    const seenBefore = t.upstream.requests.length;
    const err = await agent.fetch(connection, { path: "/repos/acme/widgets" }).catch((e) => e);
    const withOldToken = t.upstream.requests
      .map((r, i) => ({ url: r.url, i }))
      .filter(({ i }) => i >= seenBefore && t.upstream.headerValues(i, "authorization").some((v) => v.includes(oldToken)));
    expect(withOldToken, "requests the upstream received with the disconnected token").toEqual([]);
    expect(t.upstream.requests.length).toBe(seenBefore);
    expect(err).toMatchObject({ reason: "CONNECTION_NOT_FOUND" });
  });
});
