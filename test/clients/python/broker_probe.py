"""An independent gRPC client (Python grpcio, not capvault's code) that probes a running broker.

Prints one JSON object: the grpc.health.v1 status and the services listed by server reflection (v1).
"""
import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(addr: str) -> None:
    with grpc.insecure_channel(addr) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        methods = {}
        for name in services:
            if name.startswith("capvault."):
                descriptor = database.FindFileContainingSymbol(name)
                methods[name] = sorted(
                    f"{s.name}/{m.name}" for s in descriptor.service if f"{descriptor.package}.{s.name}" == name for m in s.method
                )
        print(json.dumps({
            "health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
            "services": services,
            "methods": methods,
        }))


if __name__ == "__main__":
    main(sys.argv[1])
