import { startBroker, type Broker } from "../../broker/broker.js";
import { CapvaultError } from "../../errors/capvault-error.js";
import { ConfigError, loadConfig, parseFlags, redactConfig } from "../../config/load-config.js";
import type { Config } from "../../config/schema.js";
import { createLogger } from "../../log/logger.js";
import { EXIT } from "../cli-command.js";

/** What `dev` adds around the broker (its sandbox); `serve` has none. */
export interface BrokerHooks {
  /** Before start: adjust the loaded configuration (e.g. the provider catalog). Throwing fails the start. */
  configure?(config: Config): Promise<Config>;
  /** Once listening. A rejection stops the broker and fails the command. */
  onStarted?(broker: Broker, config: Config): void | Promise<void>;
  /** After the broker stopped (or failed to start, once `configure` ran). */
  onStopped?(): Promise<void>;
}

/** Where `capvault dev` serves Prometheus metrics when metrics.addr is not set. */
export const DEV_METRICS_ADDR = "127.0.0.1:9464";

/** Shared by `serve` and `dev`: load configuration, start the broker, stop gracefully on SIGTERM/SIGINT. */
export async function runBroker(argv: string[], mode: "serve" | "dev", hooks: BrokerHooks = {}): Promise<number> {
  const { flags, config: file, rest, problems } = parseFlags(argv);
  if (rest.length) problems.push(`unexpected argument ${JSON.stringify(rest[0])} (see --help)`);
  let config;
  try {
    if (problems.length) throw new ConfigError(problems);
    config = loadConfig({ flags, file, overrides: mode === "dev" ? { dev: true } : {} });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`capvault ${mode}: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  // `capvault dev` serves metrics on loopback unless told where (a taken port falls back to a free one).
  const metricsPortIsDefault = mode === "dev" && !config.metrics.addr;
  if (metricsPortIsDefault) config = { ...config, metrics: { addr: DEV_METRICS_ADDR } };
  const logger = createLogger(config.log.level);
  logger.debug({ config: redactConfig(config) }, "configuration");

  let broker;
  try {
    if (hooks.configure) config = await hooks.configure(config);
    broker = await startBroker(config, logger, { metricsPortIsDefault });
  } catch (err) {
    logger.error({ err }, "broker failed to start");
    process.stderr.write(`capvault ${mode}: failed to start: ${(err as Error).message}\n`);
    await hooks.onStopped?.();
    return CapvaultError.is(err, "CONFIG_INVALID") ? EXIT.usage : EXIT.failure;
  }
  try {
    await hooks.onStarted?.(broker, config);
  } catch (err) {
    logger.error({ err }, "start-up step failed");
    process.stderr.write(`capvault ${mode}: ${(err as Error).message}\n`);
    await broker.stop().catch(() => undefined);
    await hooks.onStopped?.();
    return EXIT.failure;
  }

  return new Promise<number>((resolve) => {
    let signals = 0;
    const stop = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, "second signal: exiting now");
        resolve(EXIT.failure);
        return;
      }
      logger.info({ signal, graceMs: config.grpc.shutdownGraceMs }, "shutting down: finishing in-flight calls");
      broker.stop().then(
        () => (hooks.onStopped?.() ?? Promise.resolve()).then(() => resolve(EXIT.ok)),
        (err) => {
          logger.error({ err }, "shutdown failed");
          resolve(EXIT.failure);
        },
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}
