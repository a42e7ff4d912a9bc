import { Client, credentials, Metadata } from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema, type DescriptorProto, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGrpcServer, type GrpcServerHandle } from "../../src/server/grpc-server.js";

// A reflection client written from the protocol (grpc/reflection/v1/reflection.proto), independent of the server's
// code: it encodes requests and decodes answers field by field.

type Question = { fileByFilename: string } | { fileContainingSymbol: string } | { listServices: true } | { allExtensionNumbersOfType: string };

interface Reply {
  files: FileDescriptorProto[];
  services: string[];
  error?: { code: number; message: string };
}

function encode(q: Question): Buffer {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string("localhost");
  if ("fileByFilename" in q) w.tag(3, WireType.LengthDelimited).string(q.fileByFilename);
  if ("fileContainingSymbol" in q) w.tag(4, WireType.LengthDelimited).string(q.fileContainingSymbol);
  if ("allExtensionNumbersOfType" in q) w.tag(6, WireType.LengthDelimited).string(q.allExtensionNumbersOfType);
  if ("listServices" in q) w.tag(7, WireType.LengthDelimited).string("*");
  return Buffer.from(w.finish());
}

function decode(bytes: Buffer): Reply {
  const reply: Reply = { files: [], services: [] };
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 4) {
      const sub = new BinaryReader(r.bytes());
      while (sub.pos < sub.len) {
        const [f, w] = sub.tag();
        if (f === 1) reply.files.push(fromBinary(FileDescriptorProtoSchema, sub.bytes()));
        else sub.skip(w);
      }
    } else if (field === 6) {
      const sub = new BinaryReader(r.bytes());
      while (sub.pos < sub.len) {
        const [f, w] = sub.tag();
        if (f !== 1) {
          sub.skip(w);
          continue;
        }
        const svc = new BinaryReader(sub.bytes());
        while (svc.pos < svc.len) {
          const [g, x] = svc.tag();
          if (g === 1) reply.services.push(svc.string());
          else svc.skip(x);
        }
      }
    } else if (field === 7) {
      const sub = new BinaryReader(r.bytes());
      const error = { code: 0, message: "" };
      while (sub.pos < sub.len) {
        const [f, w] = sub.tag();
        if (f === 1) error.code = sub.int32();
        else if (f === 2) error.message = sub.string();
        else sub.skip(w);
      }
      reply.error = error;
    } else r.skip(wt);
  }
  return reply;
}

let server: GrpcServerHandle;
let client: Client;

function ask(q: Question, version: "v1" | "v1alpha" = "v1"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest(
      `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      new Metadata(),
      { deadline: Date.now() + 5000 },
    );
    call.on("data", (b: Buffer) => {
      resolve(decode(b));
      call.end();
    });
    call.on("error", reject);
    call.write(encode(q));
  });
}

beforeAll(async () => {
  server = await startGrpcServer({ addr: "127.0.0.1:0", maxMessageBytes: 1 << 20, implementations: {} });
  client = new Client(server.address, credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await server?.shutdown(0);
});

const SERVED = [
  "capvault.v1.AdminService",
  "capvault.v1.ApprovalService",
  "capvault.v1.CapabilityService",
  "capvault.v1.ConnectionService",
  "capvault.v1.ProxyService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

/** Every message and enum name a set of files defines, fully qualified with a leading dot. */
function definedTypes(files: FileDescriptorProto[]): Set<string> {
  const out = new Set<string>();
  const walk = (m: DescriptorProto, scope: string) => {
    const name = `${scope}.${m.name}`;
    out.add(name);
    for (const e of m.enumType) out.add(`${name}.${e.name}`);
    for (const n of m.nestedType) walk(n, name);
  };
  for (const f of files) {
    const scope = f.package ? `.${f.package}` : "";
    for (const e of f.enumType) out.add(`${scope}.${e.name}`);
    for (const m of f.messageType) walk(m, scope);
  }
  return out;
}

/** Every type name a set of files refers to (fields and method inputs and outputs). */
function referencedTypes(files: FileDescriptorProto[]): string[] {
  const out: string[] = [];
  const walk = (m: DescriptorProto) => {
    for (const f of m.field) if (f.typeName) out.push(f.typeName);
    m.nestedType.forEach(walk);
  };
  for (const f of files) {
    f.messageType.forEach(walk);
    for (const s of f.service) for (const m of s.method) out.push(m.inputType, m.outputType);
  }
  return out;
}

describe("server reflection", () => {
  it("lists every service it serves, health and reflection included, on v1 and v1alpha", async () => {
    expect((await ask({ listServices: true })).services.sort()).toEqual(SERVED);
    expect((await ask({ listServices: true }, "v1alpha")).services.sort()).toEqual(SERVED);
  });

  it.each(SERVED)("describes %s with every file it needs: each type it refers to resolves", async (service) => {
    const reply = await ask({ fileContainingSymbol: service });
    expect(reply.error).toBeUndefined();
    const [first, ...rest] = reply.files;
    expect(first.service.map((s) => `${first.package}.${s.name}`)).toContain(service);
    // Every import is answered (transitively), under its real file name: no merged or renamed files.
    const names = new Set(reply.files.map((f) => f.name));
    for (const f of reply.files) for (const dep of f.dependency) expect(names, `${f.name} imports ${dep}`).toContain(dep);
    const defined = definedTypes(reply.files);
    for (const t of referencedTypes([first, ...rest])) expect(defined, `type ${t}`).toContain(t);
  });

  it("answers capvault's files with google.protobuf imports", async () => {
    const reply = await ask({ fileContainingSymbol: "capvault.v1.CapabilityService.Mint" });
    expect(reply.files[0].name).toBe("capvault/v1/capability.proto");
    expect(reply.files.map((f) => f.name)).toEqual(
      expect.arrayContaining(["capvault/v1/common.proto", "google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]),
    );
  });

  it("resolves messages, nested types, enums, fields, and the rich-error types by symbol, and files by name", async () => {
    for (const symbol of ["capvault.v1.MintRequest", "capvault.v1.MintRequest.ttl", "google.rpc.ErrorInfo", "google.rpc.Status", "google.protobuf.Timestamp", "grpc.health.v1.HealthCheckResponse.ServingStatus"]) {
      const reply = await ask({ fileContainingSymbol: symbol });
      expect(reply.error, symbol).toBeUndefined();
      expect(reply.files.length, symbol).toBeGreaterThan(0);
    }
    const status = await ask({ fileByFilename: "google/rpc/status.proto" });
    expect(status.files.map((f) => f.name)).toEqual(["google/rpc/status.proto", "google/protobuf/any.proto"]);
    expect((await ask({ fileByFilename: "grpc/health/v1/health.proto" })).files[0].package).toBe("grpc.health.v1");
  });

  it("answers NOT_FOUND for what it does not know, and an empty extension list for a known type", async () => {
    expect((await ask({ fileContainingSymbol: "capvault.v1.Nope" })).error?.code).toBe(5);
    expect((await ask({ fileByFilename: "nope.proto" })).error?.code).toBe(5);
    const ext = await ask({ allExtensionNumbersOfType: "capvault.v1.MintRequest" });
    expect(ext.error).toBeUndefined();
  });
});
