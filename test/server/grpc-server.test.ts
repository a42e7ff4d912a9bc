import { credentials, Client, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { afterEach, describe, expect, it } from "vitest";
import { CapvaultError } from "../../src/errors/capvault-error.js";
import { readErrorDetails } from "../../src/errors/grpc-status.js";
import { CapabilityServiceClient, type InspectRequest, type InspectResponse } from "../../src/gen/capvault/v1/capability.js";
import { ProxyServiceClient } from "../../src/gen/capvault/v1/proxy.js";
import { startGrpcServer, type GrpcServerHandle } from "../../src/server/grpc-server.js";
import { unary } from "../../src/server/rpc-handlers.js";

const identity = (b: Buffer) => b;
let server: GrpcServerHandle | undefined;
afterEach(async () => {
  await server?.shutdown(0);
  server = undefined;
});

function healthClient(address: string) {
  const pkg = loadPackageDefinition(loadSync(protoPath, { keepCase: true, enums: String })) as any;
  return new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
}

function healthStatus(address: string): Promise<string> {
  const client = healthClient(address);
  return new Promise((resolve, reject) =>
    client.check({ service: "" }, (err: ServiceError | null, res: { status: string }) => {
      client.close();
      err ? reject(err) : resolve(res.status);
    }),
  );
}

function rawCall(address: string, path: string, body: Buffer, deadlineMs = 5000): Promise<ServiceError | Buffer> {
  const client = new Client(address, credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
  return new Promise((resolve) =>
    client.makeUnaryRequest(path, identity, identity, body, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
      client.close();
      resolve(err ?? res!);
    }),
  );
}

function inspect(address: string, deadlineMs?: number): Promise<InspectResponse> {
  const client = new CapabilityServiceClient(address, credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.inspect(
      { token: "t" },
      new Metadata(),
      deadlineMs ? { deadline: Date.now() + deadlineMs } : {},
      (err, res) => {
        client.close();
        err ? reject(err) : resolve(res!);
      },
    ),
  );
}

describe("gRPC server", () => {
  it("answers UNIMPLEMENTED with a rich NOT_IMPLEMENTED error for an RPC that is not built", async () => {
    server = await startGrpcServer({ addr: "127.0.0.1:0", maxMessageBytes: 1 << 20, implementations: {} });
    const client = new ProxyServiceClient(server.address, credentials.createInsecure());
    const err = await new Promise<ServiceError>((resolve) => client.proxy({}, (e) => resolve(e!)));
    client.close();
    expect(err.code).toBe(status.UNIMPLEMENTED);
    const details = readErrorDetails(err);
    expect(details.reason).toBe("NOT_IMPLEMENTED");
    expect(details.domain).toBe("capvault");
  });

  it("reports SERVING over grpc.health.v1 once started", async () => {
    server = await startGrpcServer({ addr: "127.0.0.1:0", maxMessageBytes: 1 << 20, implementations: {} });
    expect(await healthStatus(server.address)).toBe("SERVING");
  });

  it("answers malformed request bytes with INVALID_ARGUMENT / INVALID_REQUEST and keeps serving", async () => {
    server = await startGrpcServer({ addr: "127.0.0.1:0", maxMessageBytes: 1 << 20, implementations: {} });
    // Field 1 (string) with a length that runs past the end of the message.
    const err = (await rawCall(server.address, "/capvault.v1.CapabilityService/Inspect", Buffer.from([0x0a, 0x7f, 0x41]))) as ServiceError;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(readErrorDetails(err).reason).toBe("INVALID_REQUEST");
    expect(await healthStatus(server.address)).toBe("SERVING");
  });

  it("answers an unknown method with UNIMPLEMENTED and keeps serving", async () => {
    server = await startGrpcServer({ addr: "127.0.0.1:0", maxMessageBytes: 1 << 20, implementations: {} });
    const err = (await rawCall(server.address, "/capvault.v1.ProxyService/NoSuchMethod", Buffer.alloc(0))) as ServiceError;
    expect(err.code).toBe(status.UNIMPLEMENTED);
    const err2 = (await rawCall(server.address, "/no.such.Service/Call", Buffer.alloc(0))) as ServiceError;
    expect(err2.code).toBe(status.UNIMPLEMENTED);
    expect(await healthStatus(server.address)).toBe("SERVING");
  });

  it("refuses a message over the size limit with RESOURCE_EXHAUSTED and keeps serving", async () => {
    server = await startGrpcServer({ addr: "127.0.0.1:0", maxMessageBytes: 64 * 1024, implementations: {} });
    const big = Buffer.concat([Buffer.from([0x0a, 0x80, 0x80, 0x08]), Buffer.alloc(128 * 1024, 0x41)]);
    const err = (await rawCall(server.address, "/capvault.v1.CapabilityService/Inspect", big)) as ServiceError;
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await healthStatus(server.address)).toBe("SERVING");
  });

  it("honours the caller's deadline: the handler sees its signal abort, with DEADLINE_EXCEEDED", async () => {
    let aborted = false;
    let reason: unknown;
    server = await startGrpcServer({
      addr: "127.0.0.1:0",
      maxMessageBytes: 1 << 20,
      implementations: {
        capability: {
          inspect: unary<InspectRequest, InspectResponse>("Inspect", async (_req, ctx) => {
            await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
            aborted = true;
            reason = ctx.signal.reason;
            return { blocks: [], rootKeyId: "", revocationIds: [], tenant: "", subject: "", revoked: false };
          }),
        },
      },
    });
    const err = (await inspect(server.address, 300).catch((e) => e)) as ServiceError;
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    await new Promise((r) => setTimeout(r, 100));
    expect(aborted).toBe(true);
    expect(CapvaultError.is(reason, "DEADLINE_EXCEEDED")).toBe(true);
  });

  it("a call answered normally leaves its signal alone (grpc-js emits 'cancelled' after every answer)", async () => {
    const signals: AbortSignal[] = [];
    server = await startGrpcServer({
      addr: "127.0.0.1:0",
      maxMessageBytes: 1 << 20,
      implementations: {
        capability: {
          inspect: unary<InspectRequest, InspectResponse>("Inspect", async (_req, ctx) => {
            signals.push(ctx.signal);
            return { blocks: [], rootKeyId: "", revocationIds: [], tenant: "", subject: "", revoked: false };
          }),
        },
      },
    });
    await inspect(server.address, 5_000);
    await inspect(server.address);
    await new Promise((r) => setTimeout(r, 100));
    expect(signals).toHaveLength(2);
    expect(signals.map((s) => s.aborted)).toEqual([false, false]);
  });

  it("on shutdown lets an in-flight call finish, refuses new calls, and is not forced", async () => {
    let release!: () => void;
    const started = new Promise<void>((resolveStarted) => {
      void startGrpcServer({
        addr: "127.0.0.1:0",
        maxMessageBytes: 1 << 20,
        implementations: {
          capability: {
            inspect: unary<InspectRequest, InspectResponse>("Inspect", async () => {
              resolveStarted();
              await new Promise<void>((r) => (release = r));
              return { blocks: [], rootKeyId: "7", revocationIds: [], tenant: "", subject: "", revoked: false };
            }),
          },
        },
      }).then((s) => {
        server = s;
        inFlight = inspect(s.address);
      });
    });
    let inFlight!: Promise<InspectResponse>;
    await started;
    const address = server!.address;
    const stopping = server!.shutdown(10_000);
    server = undefined;
    const refused = (await inspect(address, 2000).catch((e) => e)) as ServiceError;
    expect(refused.code).toBe(status.UNAVAILABLE);
    release();
    expect((await inFlight).rootKeyId).toBe("7");
    expect(await stopping).toEqual({ forced: false });
  });

  it("forces the stop after the grace period when a call does not finish", async () => {
    server = await startGrpcServer({
      addr: "127.0.0.1:0",
      maxMessageBytes: 1 << 20,
      implementations: {
        capability: {
          inspect: unary<InspectRequest, InspectResponse>("Inspect", () => new Promise(() => {})),
        },
      },
    });
    const pending = inspect(server.address).catch((e) => e as ServiceError);
    await new Promise((r) => setTimeout(r, 200));
    const result = await server.shutdown(300);
    server = undefined;
    expect(result).toEqual({ forced: true });
    expect(((await pending) as ServiceError).code).toBe(status.CANCELLED);
  });
});
