import type { Server } from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { DESCRIPTOR_SET_BASE64 } from "../gen/descriptor-set.js";

/** Server reflection (v1 and v1alpha) over the buf-built descriptor set of capvault's protos. */
export function addReflection(server: Server, services: string[]): void {
  const pkg = loadFileDescriptorSetFromBuffer(Buffer.from(DESCRIPTOR_SET_BASE64, "base64"), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  new ReflectionService(pkg, { services: [...services, "grpc.health.v1.Health"] }).addToServer(server);
}
