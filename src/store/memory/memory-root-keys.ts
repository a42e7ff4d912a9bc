import type { RootKeyRecord, RootKeyRepository } from "../root-key-repository.js";

export class MemoryRootKeys implements RootKeyRepository {
  private readonly rows = new Map<number, RootKeyRecord>();
  async insert(key: RootKeyRecord) {
    if (this.rows.has(key.id)) return false;
    this.rows.set(key.id, structuredClone(key));
    return true;
  }
  async list() {
    return [...this.rows.values()].sort((a, b) => a.id - b.id).map((k) => structuredClone(k));
  }
  async retire(id: number, at: Date) {
    const k = this.rows.get(id);
    if (!k) return false;
    k.retiredAt ??= at;
    return true;
  }
}
