import type { RootKeyRepository } from "./root-key-repository.js";
import type { DataKeyRepository } from "./data-key-repository.js";
import type {
  AuditRepository,
  ConnectionRepository,
  LeaseRepository,
  RevocationRepository,
  TenantRepository,
} from "./repositories.js";
import type { CredentialRepository } from "./credential-repository.js";
import type { DisconnectFailureRepository } from "./disconnect-failure-repository.js";
import type { OAuthStateRepository } from "./oauth-state-repository.js";
import type { ApprovalRepository } from "./approval-repository.js";

/** The broker's storage: one repository per collection, backed by MongoDB or, in dev mode, by memory. */
export interface Store {
  readonly kind: "memory" | "mongodb";
  readonly tenants: TenantRepository;
  readonly connections: ConnectionRepository;
  readonly revocations: RevocationRepository;
  readonly audit: AuditRepository;
  readonly leases: LeaseRepository;
  readonly dataKeys: DataKeyRepository;
  readonly oauthStates: OAuthStateRepository;
  readonly credentials: CredentialRepository;
  readonly rootKeys: RootKeyRepository;
  readonly disconnectFailures: DisconnectFailureRepository;
  readonly approvals: ApprovalRepository;
  /** Create indexes; safe to call on every start-up. */
  ensureIndexes(): Promise<void>;
  /** Report each failed database command by name (metrics); the in-memory store has none. */
  onCommandFailed?(listener: (command: string) => void): void;
  /** Fails if the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
