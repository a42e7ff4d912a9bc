import type { ServiceDefinition } from "@grpc/grpc-js";

/**
 * grpc-js answers INTERNAL when a request fails to deserialize. Malformed request bytes are the client's fault, so
 * capvault's service definitions decode tolerantly: a failure yields this marker, and the handler adapter answers
 * INVALID_ARGUMENT with reason INVALID_REQUEST.
 */
export class MalformedMessage {
  constructor(readonly problem: string) {}
}

/** A copy of a generated service definition whose request deserializers never throw. */
export function tolerantDefinition<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    out[name] = {
      ...method,
      requestDeserialize(bytes: Buffer) {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedMessage(err instanceof Error ? err.message : "undecodable message");
        }
      },
    };
  }
  return out as D;
}
