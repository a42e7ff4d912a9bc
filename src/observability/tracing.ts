import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type TextMapGetter } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { Metadata } from "@grpc/grpc-js";
import { CapvaultError } from "../errors/capvault-error.js";

/**
 * OpenTelemetry tracing. The instrumented code (rpc-handlers.ts, the Proxy steps) only uses the OpenTelemetry API,
 * which does nothing until {@link startTracing} installs a provider: with tracing off, a span costs a no-op object.
 *
 * Attributes are chosen, never copied: a method name, a provider id, an HTTP status, a stable reason code. Never a
 * token, a query value, a header value or a body.
 */
const TRACER = "capvault";

/** Whether a provider is installed: without one, calls skip span bookkeeping altogether (the hot path). */
let enabled = false;

/** Whether spans are being recorded (startTracing ran and was not stopped). */
export function tracingEnabled(): boolean {
  return enabled;
}

/** A running trace pipeline; `stop()` flushes what is buffered and uninstalls it. */
export interface Tracing {
  stop(): Promise<void>;
}

/**
 * Install the process-wide tracer provider. Spans go to `exporter` when given (tests: the SDK's InMemorySpanExporter,
 * exported as soon as they end), else to the OTLP/HTTP protobuf exporter, which reads the standard variables
 * (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, ...); sampling follows
 * OTEL_TRACES_SAMPLER and the resource OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (service.name defaults to capvault).
 */
export function startTracing(exporter?: SpanExporter): Tracing {
  const resource = resourceFromAttributes({ "service.name": "capvault" }).merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  enabled = true;
  return {
    async stop() {
      enabled = false;
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}

const w3c = new W3CTraceContextPropagator();
const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get(carrier, key) {
    const values = carrier.get(key).filter((v): v is string => typeof v === "string");
    return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
  },
};

/**
 * Run an RPC handler inside its server span, continuing the trace of the caller's W3C `traceparent` (and
 * `tracestate`) metadata when it sent one.
 */
export function inRpcSpan<T>(method: string, metadata: Metadata, handler: () => Promise<T>): Promise<T> {
  if (!enabled) return handler();
  const parent = w3c.extract(ROOT_CONTEXT, metadata, metadataGetter);
  const attributes = { "rpc.system": "grpc", "rpc.service": "capvault.v1", "rpc.method": method };
  return inSpan(method, handler, { kind: SpanKind.SERVER, attributes }, parent);
}

/** Run one step of a call (authorization, credential, upstream) as a child span of the current one. */
export function inStepSpan<T>(name: string, step: () => Promise<T>, attributes: Attributes = {}): Promise<T> {
  if (!enabled) return step();
  const described = async () => {
    const result = await step();
    const status = (result as { status?: unknown } | undefined)?.status;
    if (typeof status === "number") trace.getActiveSpan()?.setAttribute("http.response.status_code", status);
    return result;
  };
  return inSpan(name, described, { kind: SpanKind.INTERNAL, attributes }, context.active());
}

/** The trace id of the current span, for log lines; undefined when tracing is off. */
export function currentTraceId(): string | undefined {
  if (!enabled) return undefined;
  const span = trace.getSpan(context.active());
  return span?.isRecording() ? span.spanContext().traceId : undefined;
}

function inSpan<T>(name: string, fn: () => Promise<T>, options: { kind: SpanKind; attributes: Attributes }, parent: ReturnType<typeof context.active>): Promise<T> {
  return trace.getTracer(TRACER).startActiveSpan(name, options, parent, async (span) => {
    try {
      return await fn();
    } catch (err) {
      // The stable reason only: an error message may quote the request.
      const reason = CapvaultError.from(err).reason;
      span.setAttribute("capvault.reason", reason);
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      throw err;
    } finally {
      span.end();
    }
  });
}
