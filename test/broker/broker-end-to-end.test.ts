import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapvaultClientError } from "../../src/client/index.js";
import { startTestBroker, type TestBroker } from "../support/broker-harness.js";

describe("a broker end to end (FerretDB, oidc-provider, HTTPS upstream)", () => {
  let t: TestBroker;
  let connection: string;
  beforeAll(async () => {
    t = await startTestBroker();
    connection = await t.connectAccount("alice");
  });
  afterAll(async () => t?.close());

  it("lets an agent call the upstream with the user's token, which it never sees", async () => {
    const minted = await t.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }]);
    const agent = t.client(minted.token);
    const res = await agent.fetch(connection, { path: "/repos/acme/widgets/issues", query: { state: "open" } });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ method: "GET", url: "/repos/acme/widgets/issues?state=open" });
    expect(res.headers["set-cookie"]).toBeUndefined();

    const accessToken = await t.accessTokenOf(connection);
    const seen = t.upstream.requests.at(-1)!;
    expect(t.upstream.headerValues(t.upstream.requests.length - 1, "authorization")).toEqual([`Bearer ${accessToken}`]);
    expect(seen.method).toBe("GET");
    expect(JSON.stringify(res)).not.toContain(accessToken);
  });

  it("refuses a request outside the grant, naming the failing check", async () => {
    const minted = await t.mint([{ connection, method: "GET", pathPrefix: "/repos/acme/" }]);
    const agent = t.client(minted.token);
    const before = t.upstream.requests.length;
    const err = await agent.fetch(connection, { path: "/repos/acme-evil/x" }).catch((e) => e);
    expect(err).toBeInstanceOf(CapvaultClientError);
    expect(err.reason).toBe("NO_MATCHING_GRANT");
    const post = await agent.fetch(connection, { method: "POST", path: "/repos/acme/x", body: { a: 1 } }).catch((e) => e);
    expect(post.reason).toBe("NO_MATCHING_GRANT");
    expect(t.upstream.requests.length).toBe(before);
  });
});
