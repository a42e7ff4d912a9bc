import type { ServiceError } from "@grpc/grpc-js";
import { readErrorDetails } from "../errors/grpc-status.js";

/**
 * An error from the broker as an agent sees it: the gRPC code, the stable `reason` (e.g. CAPABILITY_CHECK_FAILED,
 * CONNECTION_NEEDS_REAUTH) to branch on, and the ErrorInfo metadata (e.g. which check failed).
 */
export class CapvaultClientError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = "CapvaultClientError";
  }

  /** Build from a grpc-js ServiceError, decoding capvault's rich error details. */
  static fromServiceError(err: ServiceError): CapvaultClientError {
    const d = readErrorDetails(err);
    return new CapvaultClientError(d.code, d.reason ?? "UNKNOWN", d.message, d.metadata);
  }
}
