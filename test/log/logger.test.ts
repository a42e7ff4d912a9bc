import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/log/logger.js";

function capture() {
  const lines: Array<Record<string, any>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: createLogger("info", stream) };
}

describe("the broker's logger", () => {
  it("keeps an error's code (EADDRINUSE) as errorCode, while a field named code stays redacted", () => {
    const { lines, logger } = capture();
    const err = Object.assign(new Error("listen EADDRINUSE: address already in use 127.0.0.1:50051"), { code: "EADDRINUSE" });
    logger.error({ err }, "broker failed to start");
    logger.info({ code: "an-oauth-authorization-code", query: { code: "another-code" } }, "callback");
    expect(lines[0].err).toMatchObject({ message: expect.stringContaining("EADDRINUSE"), errorCode: "EADDRINUSE" });
    expect(JSON.stringify(lines[1])).not.toContain("authorization-code");
    expect(JSON.stringify(lines[1])).not.toContain("another-code");
    expect(lines[1].code).toBe("[redacted]");
  });

  it("redacts tokens and secrets by field name at depth", () => {
    const { lines, logger } = capture();
    logger.info({ accessToken: "at-secret", nested: { refresh_token: "rt-secret", deeper: { client_secret: "cs-secret" } } }, "x");
    const text = JSON.stringify(lines[0]);
    for (const secret of ["at-secret", "rt-secret", "cs-secret"]) expect(text).not.toContain(secret);
  });

  it("redacts the approval webhook's signing secret wherever a config or option object is logged", () => {
    const { lines, logger } = capture();
    logger.info({ approvals: { webhookUrl: "http://127.0.0.1/hooks", webhookSecret: "whsec-at-depth" }, options: { secret: "whsec-plain" } }, "x");
    const text = JSON.stringify(lines[0]);
    for (const secret of ["whsec-at-depth", "whsec-plain"]) expect(text).not.toContain(secret);
    expect(text).toContain("http://127.0.0.1/hooks");
  });
});
