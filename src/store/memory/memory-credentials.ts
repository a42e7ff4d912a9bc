import type { CredentialRecord, CredentialRepository } from "../credential-repository.js";

/** In-memory credential generations (dev mode); same contract as the MongoDB implementation. */
export class MemoryCredentials implements CredentialRepository {
  private readonly rows = new Map<string, CredentialRecord>();
  private readonly key = (connection: string, generation: number) => `${connection}:${generation}`;

  async insert(c: CredentialRecord) {
    const k = this.key(c.connection, c.generation);
    if (this.rows.has(k)) return false;
    this.rows.set(k, structuredClone(c));
    return true;
  }
  async latest(tenant: string, connection: string) {
    let best: CredentialRecord | undefined;
    for (const c of this.rows.values()) {
      if (c.tenant === tenant && c.connection === connection && (!best || c.generation > best.generation)) best = c;
    }
    return best && structuredClone(best);
  }
  async listExpiringBefore(before: Date, limit: number) {
    return [...this.rows.values()]
      .filter((c) => c.kind === "tokens" && c.expiresAt !== undefined && c.expiresAt.getTime() < before.getTime())
      .sort((a, b) => a.expiresAt!.getTime() - b.expiresAt!.getTime())
      .slice(0, limit)
      .map((c) => structuredClone(c));
  }
  async deleteBelow(tenant: string, connection: string, generation: number) {
    let n = 0;
    for (const [k, c] of this.rows) {
      if (c.tenant === tenant && c.connection === connection && c.generation < generation && this.rows.delete(k)) n++;
    }
    return n;
  }
  async deleteAll(tenant: string, connection: string) {
    return this.deleteBelow(tenant, connection, Number.MAX_SAFE_INTEGER);
  }
}
