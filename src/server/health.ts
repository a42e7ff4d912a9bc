import type { Server } from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatusMap } from "grpc-health-check";

/** grpc.health.v1 for the whole server ("") and for each named service. */
export class Health {
  private readonly impl: HealthImplementation;

  constructor(private readonly services: string[]) {
    const initial: ServingStatusMap = { "": "NOT_SERVING" };
    for (const s of services) initial[s] = "NOT_SERVING";
    this.impl = new HealthImplementation(initial);
  }

  addToServer(server: Server): void {
    this.impl.addToServer(server);
  }

  /** Mark the server and every service SERVING or NOT_SERVING (e.g. on shutdown). */
  setServing(serving: boolean): void {
    const status = serving ? "SERVING" : "NOT_SERVING";
    this.impl.setStatus("", status);
    for (const s of this.services) this.impl.setStatus(s, status);
  }
}
