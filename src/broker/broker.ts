import type { Config } from "../config/schema.js";
import type { Logger } from "../log/logger.js";
import { startGrpcServer, type GrpcServerHandle } from "../server/grpc-server.js";
import { setFailureReporter } from "../server/rpc-handlers.js";
import { openStore } from "../store/open-store.js";
import type { Store } from "../store/store.js";

/** A running broker: its addresses and how to stop it. */
export interface Broker {
  grpcAddress: string;
  store: Store;
  grpc: GrpcServerHandle;
  /** Graceful stop: new calls refused, in-flight calls finish (up to the grace period), resources closed. */
  stop(): Promise<void>;
}

/** The composition root: open storage, build the services, start listening. */
export async function startBroker(config: Config, logger: Logger): Promise<Broker> {
  setFailureReporter((method, err) => logger.error({ method, reason: err.reason, err: err.cause ?? err }, "rpc failed"));
  const store = await openStore(config);
  const grpc = await startGrpcServer({
    addr: config.grpc.addr,
    maxMessageBytes: config.grpc.maxMessageBytes,
    implementations: {},
  });
  logger.info({ grpc: grpc.address, store: store.kind }, "broker listening");

  let stopping: Promise<void> | undefined;
  return {
    grpcAddress: grpc.address,
    store,
    grpc,
    stop() {
      stopping ??= (async () => {
        const { forced } = await grpc.shutdown(config.grpc.shutdownGraceMs);
        logger.info({ forced }, "gRPC server stopped");
        await store.close();
      })();
      return stopping;
    },
  };
}
