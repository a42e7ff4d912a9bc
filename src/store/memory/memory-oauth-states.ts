import type { OAuthStateRecord, OAuthStateRepository } from "../oauth-state-repository.js";

/** In-memory one-time OAuth states (dev mode); same contract as the MongoDB implementation. */
export class MemoryOAuthStates implements OAuthStateRepository {
  private readonly rows = new Map<string, OAuthStateRecord>();
  private readonly consumed = new Map<string, Date>();

  async insert(state: OAuthStateRecord) {
    if (this.rows.has(state.id)) return false;
    this.rows.set(state.id, structuredClone(state));
    return true;
  }
  async get(id: string) {
    const s = this.rows.get(id);
    return s && structuredClone(s);
  }
  async consume(id: string, _consumedAt: Date, expiresAt: Date) {
    if (this.consumed.has(id)) return false;
    this.consumed.set(id, expiresAt);
    return true;
  }
  async deleteExpired(before: Date) {
    let n = 0;
    for (const [id, s] of this.rows) if (s.expiresAt.getTime() < before.getTime() && this.rows.delete(id)) n++;
    for (const [id, e] of this.consumed) if (e.getTime() < before.getTime() && this.consumed.delete(id)) n++;
    return n;
  }
}
