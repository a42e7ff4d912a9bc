import { status, type Server, type ServerDuplexStream, type ServiceDefinition } from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema, type DescriptorProto, type EnumDescriptorProto, type FieldDescriptorProto, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { DESCRIPTOR_SET_BASE64 } from "../gen/descriptor-set.js";

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), served from the buf-built descriptor set embedded in
 * src/gen/descriptor-set.ts: capvault's protos, grpc.health.v1, reflection itself, and every file they import
 * (google/protobuf/*, google/rpc/*), byte for byte as buf built them.
 *
 * Written here rather than with @grpc/reflection, which (1.0.4) merges a package's files into one descriptor and drops
 * its imports, so clients cannot resolve google.protobuf.Timestamp. The protocol is small: list services, a file by
 * name, the file defining a symbol, the file defining an extension, the extension numbers of a type. Each file answer
 * carries the file and its transitive dependencies.
 */

/** The services reflection lists besides the ones the caller names. */
export const ALWAYS_LISTED = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/** One descriptor file: its serialized bytes and what it says. */
interface FileEntry {
  name: string;
  bytes: Uint8Array;
  proto: FileDescriptorProto;
}

/** Every file of a descriptor set, indexed by name, by symbol and by extension. */
export class DescriptorIndex {
  private readonly files = new Map<string, FileEntry>();
  private readonly symbols = new Map<string, string>();
  private readonly extensions = new Map<string, Map<number, string>>();
  private readonly messages = new Set<string>();
  private readonly serviceNames: string[] = [];

  constructor(descriptorSet: Uint8Array) {
    // A FileDescriptorSet is `repeated FileDescriptorProto file = 1`: keep each file's own bytes.
    const reader = new BinaryReader(descriptorSet);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field !== 1 || wireType !== WireType.LengthDelimited) {
        reader.skip(wireType);
        continue;
      }
      const bytes = reader.bytes();
      const proto = fromBinary(FileDescriptorProtoSchema, bytes);
      if (this.files.has(proto.name)) continue;
      this.files.set(proto.name, { name: proto.name, bytes, proto });
      this.indexFile(proto);
    }
    for (const { proto } of this.files.values()) {
      for (const dep of proto.dependency) {
        if (!this.files.has(dep)) throw new Error(`descriptor set: ${proto.name} imports ${dep}, which is not in the set`);
      }
    }
  }

  /** Fully-qualified names of every service defined in the set. */
  services(): string[] {
    return [...this.serviceNames];
  }

  /** The file with this name, or undefined. */
  fileByName(name: string): FileEntry | undefined {
    return this.files.get(name);
  }

  /** The name of the file that defines a symbol (package, message, field, enum, enum value, service, method, extension). */
  fileOfSymbol(symbol: string): string | undefined {
    return this.symbols.get(symbol.replace(/^\./, ""));
  }

  /** The name of the file that defines extension `number` of message `type`. */
  fileOfExtension(type: string, number: number): string | undefined {
    return this.extensions.get(type.replace(/^\./, ""))?.get(number);
  }

  /** The extension numbers of a message type, or undefined if there is no such message. */
  extensionNumbers(type: string): number[] | undefined {
    const name = type.replace(/^\./, "");
    if (!this.messages.has(name)) return undefined;
    return [...(this.extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /** The file and every file it imports, transitively, the file first; dependencies before their dependents. */
  withDependencies(name: string): FileEntry[] {
    const out: FileEntry[] = [];
    const seen = new Set<string>();
    const visit = (n: string) => {
      if (seen.has(n)) return;
      seen.add(n);
      const file = this.files.get(n)!;
      for (const dep of file.proto.dependency) visit(dep);
      out.push(file);
    };
    visit(name);
    const first = out.pop()!;
    return [first, ...out];
  }

  private indexFile(file: FileDescriptorProto): void {
    const pkg = file.package;
    const scoped = (name: string, scope: string) => (scope ? `${scope}.${name}` : name);
    const add = (symbol: string) => {
      if (!this.symbols.has(symbol)) this.symbols.set(symbol, file.name);
    };
    if (pkg) {
      // Every enclosing package name resolves too (grpcurl and others may ask for "capvault" or "capvault.v1").
      const parts = pkg.split(".");
      for (let i = 1; i <= parts.length; i++) add(parts.slice(0, i).join("."));
    }
    const addExtension = (ext: FieldDescriptorProto, scope: string) => {
      add(scoped(ext.name, scope));
      const extendee = ext.extendee.replace(/^\./, "");
      let numbers = this.extensions.get(extendee);
      if (!numbers) this.extensions.set(extendee, (numbers = new Map()));
      numbers.set(ext.number, file.name);
    };
    const addEnum = (e: EnumDescriptorProto, scope: string) => {
      add(scoped(e.name, scope));
      // Enum values are siblings of their enum (C++ scoping), and also resolvable under it.
      for (const v of e.value) {
        add(scoped(v.name, scope));
        add(scoped(v.name, scoped(e.name, scope)));
      }
    };
    const addMessage = (m: DescriptorProto, scope: string) => {
      const name = scoped(m.name, scope);
      add(name);
      this.messages.add(name);
      for (const f of m.field) add(`${name}.${f.name}`);
      for (const o of m.oneofDecl) add(`${name}.${o.name}`);
      for (const nested of m.nestedType) addMessage(nested, name);
      for (const e of m.enumType) addEnum(e, name);
      for (const ext of m.extension) addExtension(ext, name);
    };
    for (const m of file.messageType) addMessage(m, pkg);
    for (const e of file.enumType) addEnum(e, pkg);
    for (const ext of file.extension) addExtension(ext, pkg);
    for (const s of file.service) {
      const name = scoped(s.name, pkg);
      add(name);
      this.serviceNames.push(name);
      for (const method of s.method) add(`${name}.${method.name}`);
    }
  }
}

/** A reflection request, as far as the server needs it. */
interface ReflectionRequest {
  raw: Uint8Array;
  host: string;
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType: string; extensionNumber: number };
  allExtensionNumbersOfType?: string;
  listServices?: string;
}

function decodeRequest(bytes: Buffer): ReflectionRequest {
  const req: ReflectionRequest = { raw: bytes, host: "" };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
        req.host = reader.string();
        break;
      case 3:
        req.fileByFilename = reader.string();
        break;
      case 4:
        req.fileContainingSymbol = reader.string();
        break;
      case 5: {
        const ext = { containingType: "", extensionNumber: 0 };
        const sub = new BinaryReader(reader.bytes());
        while (sub.pos < sub.len) {
          const [f, w] = sub.tag();
          if (f === 1) ext.containingType = sub.string();
          else if (f === 2) ext.extensionNumber = sub.int32();
          else sub.skip(w);
        }
        req.fileContainingExtension = ext;
        break;
      }
      case 6:
        req.allExtensionNumbersOfType = reader.string();
        break;
      case 7:
        req.listServices = reader.string();
        break;
      default:
        reader.skip(wireType);
    }
  }
  return req;
}

/** The answer to one request: ServerReflectionResponse's oneof, already encoded by `write`. */
type Answer = (w: BinaryWriter) => void;

function answer(index: DescriptorIndex, listed: string[], req: ReflectionRequest): Answer {
  const files = (name: string): Answer => (w) => {
    // file_descriptor_response = 4 { repeated bytes file_descriptor_proto = 1 }
    w.tag(4, WireType.LengthDelimited).fork();
    for (const f of index.withDependencies(name)) w.tag(1, WireType.LengthDelimited).bytes(f.bytes);
    w.join();
  };
  const error = (code: status, message: string): Answer => (w) => {
    // error_response = 7 { int32 error_code = 1; string error_message = 2 }
    w.tag(7, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int32(code).tag(2, WireType.LengthDelimited).string(message).join();
  };
  if (req.listServices !== undefined) {
    return (w) => {
      // list_services_response = 6 { repeated ServiceResponse service = 1 { string name = 1 } }
      w.tag(6, WireType.LengthDelimited).fork();
      for (const name of listed) w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(name).join();
      w.join();
    };
  }
  if (req.fileByFilename !== undefined) {
    return index.fileByName(req.fileByFilename) ? files(req.fileByFilename) : error(status.NOT_FOUND, `file not found: ${req.fileByFilename}`);
  }
  if (req.fileContainingSymbol !== undefined) {
    const file = index.fileOfSymbol(req.fileContainingSymbol);
    return file ? files(file) : error(status.NOT_FOUND, `symbol not found: ${req.fileContainingSymbol}`);
  }
  if (req.fileContainingExtension !== undefined) {
    const { containingType, extensionNumber } = req.fileContainingExtension;
    const file = index.fileOfExtension(containingType, extensionNumber);
    return file ? files(file) : error(status.NOT_FOUND, `extension not found: ${containingType}(${extensionNumber})`);
  }
  if (req.allExtensionNumbersOfType !== undefined) {
    const type = req.allExtensionNumbersOfType.replace(/^\./, "");
    const numbers = index.extensionNumbers(type);
    if (!numbers) return error(status.NOT_FOUND, `type not found: ${type}`);
    return (w) => {
      // all_extension_numbers_response = 5 { string base_type_name = 1; repeated int32 extension_number = 2 }
      w.tag(5, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(type);
      if (numbers.length) {
        w.tag(2, WireType.LengthDelimited).fork();
        for (const n of numbers) w.int32(n);
        w.join();
      }
      w.join();
    };
  }
  return error(status.INVALID_ARGUMENT, "the request names no known question");
}

function encodeResponse(req: ReflectionRequest, body: Answer): Buffer {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string(req.host); // valid_host
  w.tag(2, WireType.LengthDelimited).bytes(req.raw); // original_request
  body(w);
  return Buffer.from(w.finish());
}

/** The grpc-js definition of `<pkg>.ServerReflection/ServerReflectionInfo` (a bidi stream) on raw bytes. */
function definition(pkg: string): ServiceDefinition {
  return {
    ServerReflectionInfo: {
      path: `/${pkg}.ServerReflection/ServerReflectionInfo`,
      requestStream: true,
      responseStream: true,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => decodeRequest(b),
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
      originalName: "serverReflectionInfo",
    },
  } as ServiceDefinition;
}

let cachedIndex: DescriptorIndex | undefined;

/** The index of the embedded descriptor set (parsed once). */
export function embeddedDescriptors(): DescriptorIndex {
  return (cachedIndex ??= new DescriptorIndex(Buffer.from(DESCRIPTOR_SET_BASE64, "base64")));
}

/**
 * Add server reflection (v1 and v1alpha) to a server. It lists `services` (capvault's), grpc.health.v1.Health and
 * the reflection services themselves; every one must be described by the embedded descriptor set.
 */
export function addReflection(server: Server, services: string[]): void {
  const index = embeddedDescriptors();
  const listed = [...new Set([...services, ...ALWAYS_LISTED])].sort();
  const known = new Set(index.services());
  const missing = listed.filter((s) => !known.has(s));
  if (missing.length) throw new Error(`reflection: no descriptor for ${missing.join(", ")} (run npm run generate)`);

  const handler = (call: ServerDuplexStream<ReflectionRequest, Buffer>) => {
    call.on("data", (req: ReflectionRequest) => call.write(encodeResponse(req, answer(index, listed, req))));
    call.on("end", () => call.end());
    call.on("error", () => call.end());
  };
  for (const pkg of ["grpc.reflection.v1", "grpc.reflection.v1alpha"]) {
    server.addService(definition(pkg), { ServerReflectionInfo: handler });
  }
}
