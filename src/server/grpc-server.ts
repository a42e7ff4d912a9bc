import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { AdminServiceService } from "../gen/capvault/v1/admin.js";
import { ApprovalServiceService } from "../gen/capvault/v1/approval.js";
import { CapabilityServiceService } from "../gen/capvault/v1/capability.js";
import { ConnectionServiceService } from "../gen/capvault/v1/connection.js";
import { ProxyServiceService } from "../gen/capvault/v1/proxy.js";
import { Health } from "./health.js";
import { addReflection } from "./reflection.js";
import { notImplemented } from "./rpc-handlers.js";
import { tolerantDefinition } from "./service-definitions.js";

/** capvault's four services, by fully-qualified name. */
export const SERVICES = {
  capability: { name: "capvault.v1.CapabilityService", definition: CapabilityServiceService },
  connection: { name: "capvault.v1.ConnectionService", definition: ConnectionServiceService },
  proxy: { name: "capvault.v1.ProxyService", definition: ProxyServiceService },
  admin: { name: "capvault.v1.AdminService", definition: AdminServiceService },
  approval: { name: "capvault.v1.ApprovalService", definition: ApprovalServiceService },
} as const;

export type ServiceKey = keyof typeof SERVICES;

export interface GrpcServerOptions {
  addr: string;
  maxMessageBytes: number;
  /** Implementations by service; a service without one answers UNIMPLEMENTED for every RPC. */
  implementations: Partial<Record<ServiceKey, UntypedServiceImplementation>>;
}

export interface GrpcServerHandle {
  /** host:port actually bound (the port is resolved when addr asks for port 0). */
  address: string;
  health: Health;
  /** Refuse new calls, let in-flight calls finish, force-stop after graceMs. */
  shutdown(graceMs: number): Promise<{ forced: boolean }>;
}

/** Start the gRPC server with health, reflection, message-size limits and capvault's services. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    "grpc.keepalive_permit_without_calls": 1,
  });
  const names: string[] = [];
  for (const [key, svc] of Object.entries(SERVICES) as [ServiceKey, (typeof SERVICES)[ServiceKey]][]) {
    const definition = tolerantDefinition(svc.definition as unknown as ServiceDefinition);
    server.addService(definition, options.implementations[key] ?? notImplemented(definition));
    names.push(svc.name);
  }
  const health = new Health(names);
  health.addToServer(server);
  addReflection(server, names);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.addr, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  health.setServing(true);
  const host = options.addr.slice(0, options.addr.lastIndexOf(":"));

  return {
    address: `${host}:${port}`,
    health,
    shutdown(graceMs: number) {
      health.setServing(false);
      return new Promise((resolve) => {
        let forced = false;
        const timer = setTimeout(() => {
          forced = true;
          server.forceShutdown();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve({ forced });
        });
      });
    },
  };
}
