import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { Any } from "../gen/google/protobuf/any.js";
import { ErrorInfo } from "../gen/google/rpc/error_details.js";
import { Status } from "../gen/google/rpc/status.js";
import { CapvaultError } from "./capvault-error.js";
import { ERROR_DOMAIN, REASONS, type Reason } from "./reasons.js";

const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";
const DETAILS_KEY = "grpc-status-details-bin";

/**
 * Turn any thrown value into the gRPC error a client sees: the status code from the reason table, the public
 * message, and a google.rpc.Status with an ErrorInfo (reason, domain "capvault", metadata) in the
 * grpc-status-details-bin trailer. Internal details never leave the process.
 */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const e = CapvaultError.from(err);
  const code = REASONS[e.reason].code;
  const info = ErrorInfo.encode({ reason: e.reason, domain: ERROR_DOMAIN, metadata: { ...e.metadata } }).finish();
  const details = Status.encode({
    code,
    message: e.message,
    details: [Any.fromPartial({ typeUrl: ERROR_INFO_TYPE, value: Buffer.from(info) })],
  }).finish();
  const metadata = new Metadata();
  metadata.set(DETAILS_KEY, Buffer.from(details));
  return { code, details: e.message, metadata };
}

/** What a client can read back from a capvault error: the reason and its metadata. */
export interface ErrorDetails {
  code: number;
  message: string;
  reason?: Reason | string;
  domain?: string;
  metadata: Record<string, string>;
}

/** Decode the rich error details of a ServiceError received by a client. */
export function readErrorDetails(err: Partial<ServiceError>): ErrorDetails {
  const out: ErrorDetails = { code: err.code ?? 2, message: err.details ?? err.message ?? "", metadata: {} };
  const raw = err.metadata?.get(DETAILS_KEY)[0];
  if (!raw || typeof raw === "string") return out;
  try {
    const st = Status.decode(raw);
    for (const any of st.details) {
      if (any.typeUrl !== ERROR_INFO_TYPE) continue;
      const info = ErrorInfo.decode(any.value);
      out.reason = info.reason;
      out.domain = info.domain;
      out.metadata = { ...info.metadata };
    }
  } catch {
    // Not a capvault error body: return what the status line said.
  }
  return out;
}
