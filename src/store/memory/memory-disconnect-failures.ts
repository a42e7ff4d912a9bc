import type { DisconnectFailureRecord, DisconnectFailureRepository } from "../disconnect-failure-repository.js";

/** In-memory disconnect failures (dev mode); same contract as the MongoDB implementation. */
export class MemoryDisconnectFailures implements DisconnectFailureRepository {
  private readonly rows = new Map<string, DisconnectFailureRecord>();

  async insert(f: DisconnectFailureRecord) {
    if (this.rows.has(f.id)) return false;
    this.rows.set(f.id, structuredClone(f));
    return true;
  }
  async list(tenant: string) {
    return [...this.rows.values()]
      .filter((f) => f.tenant === tenant)
      .sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime() || a.id.localeCompare(b.id))
      .map((f) => structuredClone(f));
  }
}
