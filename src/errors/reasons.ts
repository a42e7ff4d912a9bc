import { status } from "@grpc/grpc-js";

/**
 * The closed set of things that can go wrong in capvault. Each reason is a stable UPPER_SNAKE code that clients may
 * branch on, mapped here, and only here, to its gRPC status code and a public message safe to show anyone.
 * Add a reason by adding a row; never compare errors by message.
 */
export const REASONS = {
  // General
  INTERNAL: { code: status.INTERNAL, message: "internal error" },
  NOT_IMPLEMENTED: { code: status.UNIMPLEMENTED, message: "this RPC is not implemented yet" },
  INVALID_REQUEST: { code: status.INVALID_ARGUMENT, message: "the request is invalid" },
  DEADLINE_EXCEEDED: { code: status.DEADLINE_EXCEEDED, message: "the deadline passed before the call completed" },
  CANCELLED: { code: status.CANCELLED, message: "the call was cancelled" },
  SHUTTING_DOWN: { code: status.UNAVAILABLE, message: "the broker is shutting down" },
  STORE_UNAVAILABLE: { code: status.UNAVAILABLE, message: "the database is unavailable" },
  CONFIG_INVALID: { code: status.FAILED_PRECONDITION, message: "the configuration is invalid" },
  TENANT_NOT_FOUND: { code: status.NOT_FOUND, message: "no such tenant" },

  // Capabilities: who may
  CAPABILITY_MISSING: { code: status.UNAUTHENTICATED, message: "no capability: send 'authorization: Bearer <token>'" },
  CAPABILITY_MALFORMED: { code: status.UNAUTHENTICATED, message: "the capability token cannot be parsed" },
  CAPABILITY_SIGNATURE_INVALID: { code: status.UNAUTHENTICATED, message: "the capability token's signature is invalid" },
  CAPABILITY_UNKNOWN_ROOT_KEY: { code: status.UNAUTHENTICATED, message: "the capability token was signed by an unknown or retired root key" },
  CAPABILITY_REVOKED: { code: status.UNAUTHENTICATED, message: "the capability token has been revoked" },
  CAPABILITY_TOO_LARGE: { code: status.INVALID_ARGUMENT, message: "the capability token is too large" },
  CAPABILITY_TOO_DEEP: { code: status.INVALID_ARGUMENT, message: "the capability token has too many blocks" },
  CAPABILITY_CHECK_FAILED: { code: status.PERMISSION_DENIED, message: "a check in the capability refused the request" },
  CAPABILITY_EXPIRED: { code: status.PERMISSION_DENIED, message: "the capability has expired" },
  POLICY_DENIED: { code: status.PERMISSION_DENIED, message: "an organisation policy refused the request" },
  NO_MATCHING_GRANT: { code: status.PERMISSION_DENIED, message: "no grant in the capability allows the request" },
  AUTHORIZATION_LIMIT: { code: status.PERMISSION_DENIED, message: "authorization exceeded its run limits" },
  OPERATOR_REQUIRED: { code: status.PERMISSION_DENIED, message: "this RPC needs an operator capability" },
  DATALOG_INVALID: { code: status.INVALID_ARGUMENT, message: "the Datalog is invalid or not allowed here" },
  CAPABILITY_RUNTIME_FAILED: { code: status.UNAVAILABLE, message: "the capability runtime failed; retry" },

  // Connections and OAuth: how connected, how refreshed
  PROVIDER_UNKNOWN: { code: status.INVALID_ARGUMENT, message: "no such provider" },
  CONNECTION_NOT_FOUND: { code: status.NOT_FOUND, message: "no such connection" },
  CONNECTION_PENDING: { code: status.FAILED_PRECONDITION, message: "the connection has not been completed by the user" },
  CONNECTION_NEEDS_REAUTH: { code: status.FAILED_PRECONDITION, message: "the user must reconnect this account" },
  OAUTH_STATE_INVALID: { code: status.INVALID_ARGUMENT, message: "the authorization response is unknown, expired or already used" },
  OAUTH_ISSUER_MISMATCH: { code: status.INVALID_ARGUMENT, message: "the authorization response came from the wrong issuer" },
  OAUTH_PROVIDER_ERROR: { code: status.FAILED_PRECONDITION, message: "the provider refused the authorization" },
  OAUTH_TOKEN_EXCHANGE_FAILED: { code: status.UNAVAILABLE, message: "the provider's token endpoint failed" },
  REFRESH_FAILED: { code: status.UNAVAILABLE, message: "refreshing the connection failed; retry" },
  REFRESH_BUSY: { code: status.UNAVAILABLE, message: "another broker is refreshing this connection; retry" },
  IMPORT_CONFLICT: { code: status.ABORTED, message: "the connection changed while it was imported; import the record again" },
  REFRESH_LOST_IN_FLIGHT: { code: status.FAILED_PRECONDITION, message: "a token refresh was lost in flight and the provider ended the grant; the user must reconnect this account" },
  PROVIDER_UNAVAILABLE: { code: status.UNAVAILABLE, message: "the provider is unavailable" },

  // Vault: how stored
  SECRET_UNDECRYPTABLE: { code: status.DATA_LOSS, message: "a stored secret failed to decrypt (wrong key, record or field)" },
  KEK_UNKNOWN: { code: status.FAILED_PRECONDITION, message: "a key-encryption key is missing from the keyring" },
  KEK_RETIRED: { code: status.FAILED_PRECONDITION, message: "the key-encryption key is retired" },
  KEK_IN_USE: { code: status.FAILED_PRECONDITION, message: "the key-encryption key still protects records" },
  KEK_NOT_ACTIVE: { code: status.FAILED_PRECONDITION, message: "the key-encryption key may unwrap but not wrap (it is not the active key)" },

  // Proxy: where to
  PATH_INVALID: { code: status.INVALID_ARGUMENT, message: "the path is not a valid origin-form path" },
  METHOD_INVALID: { code: status.INVALID_ARGUMENT, message: "the HTTP method is invalid" },
  HEADER_INVALID: { code: status.INVALID_ARGUMENT, message: "a header name or value is invalid" },
  BODY_TOO_LARGE: { code: status.RESOURCE_EXHAUSTED, message: "the body is larger than allowed" },
  UPSTREAM_HOST_FORBIDDEN: { code: status.PERMISSION_DENIED, message: "the upstream host is not allowed for this connection" },
  UPSTREAM_ADDRESS_FORBIDDEN: { code: status.PERMISSION_DENIED, message: "the upstream address is not allowed" },
  UPSTREAM_UNREACHABLE: { code: status.UNAVAILABLE, message: "the upstream could not be reached" },
  UPSTREAM_TIMEOUT: { code: status.DEADLINE_EXCEEDED, message: "the upstream did not answer in time" },
  RESPONSE_TOO_LARGE: { code: status.RESOURCE_EXHAUSTED, message: "the upstream response is larger than allowed" },
  QUERY_INVALID: { code: status.INVALID_ARGUMENT, message: "a query parameter name or value is invalid" },
  BODY_INVALID: { code: status.INVALID_ARGUMENT, message: "the body claims to be JSON but is not a single well-formed JSON text" },

  // Audit
  AUDIT_WRITE_FAILED: { code: status.UNAVAILABLE, message: "the audit event could not be written" },
  AUDIT_UNAVAILABLE: { code: status.UNAVAILABLE, message: "the audit trail cannot take events now; nothing was done" },

  // Capabilities (appended)
  MINT_WIDER_THAN_MINTER: { code: status.PERMISSION_DENIED, message: "a capability cannot mint a capability wider than itself" },
  CAPABILITY_TENANT_MISMATCH: { code: status.PERMISSION_DENIED, message: "the capability belongs to another tenant" },
  REVOCATIONS_STALE: { code: status.UNAVAILABLE, message: "the broker cannot see recent revocations (database unreachable); retry" },
  CAPABILITY_RUNTIME_BUSY: { code: status.UNAVAILABLE, message: "the capability runtime is busy: the job waited too long; retry" },

  // Step-up approval (src/approvals)
  APPROVAL_REQUIRED: { code: status.FAILED_PRECONDITION, message: "this request needs a person's approval: it is held (approval_id and approval_url in the metadata); repeat it with capvault-approval-id once approved" },
  APPROVAL_PENDING: { code: status.FAILED_PRECONDITION, message: "the approval has not been decided yet; wait for it (WaitApproval) and repeat the call" },
  APPROVAL_DENIED: { code: status.PERMISSION_DENIED, message: "the approval was denied" },
  APPROVAL_EXPIRED: { code: status.FAILED_PRECONDITION, message: "the approval expired before it was used; repeat the call to ask again" },
  APPROVAL_MISMATCH: { code: status.PERMISSION_DENIED, message: "the approval was given for another request or capability" },
  APPROVAL_USED: { code: status.PERMISSION_DENIED, message: "the approval has already been used: one approval lets exactly one call through" },
  APPROVAL_NOT_FOUND: { code: status.NOT_FOUND, message: "no such approval" },
  APPROVAL_DECIDED: { code: status.FAILED_PRECONDITION, message: "the approval was already decided" },
  APPROVAL_LINK_INVALID: { code: status.PERMISSION_DENIED, message: "the approval link is invalid, used or expired" },
} as const satisfies Record<string, { code: status; message: string }>;

/** A stable reason code. */
export type Reason = keyof typeof REASONS;

/** The ErrorInfo domain of every capvault error. */
export const ERROR_DOMAIN = "capvault";
