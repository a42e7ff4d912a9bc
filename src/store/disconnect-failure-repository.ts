/** A disconnect whose revocation at the provider failed; the connection was still deleted locally. Holds no secret. */
export interface DisconnectFailureRecord {
  id: string;
  tenant: string;
  connection: string;
  provider: string;
  /** A short, secret-free reason, e.g. "provider unreachable" or "HTTP 503". */
  reason: string;
  occurredAt: Date;
}

export interface DisconnectFailureRepository {
  insert(failure: DisconnectFailureRecord): Promise<boolean>;
  /** A tenant's recorded failures, oldest first. */
  list(tenant: string): Promise<DisconnectFailureRecord[]>;
}
