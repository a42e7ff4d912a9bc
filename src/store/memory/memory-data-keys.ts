import type { DataKeyRecord, DataKeyRepository, DataKeyWrapping } from "../data-key-repository.js";

const copy = <T>(value: T): T => structuredClone(value);

/** Data keys in memory (dev mode). Same contract as the MongoDB implementation. */
export class MemoryDataKeys implements DataKeyRepository {
  private readonly rows = new Map<string, DataKeyRecord>();

  async insert(key: DataKeyRecord) {
    if (this.rows.has(key.id)) return false;
    for (const k of this.rows.values()) if (k.tenant === key.tenant && k.record === key.record) return false;
    this.rows.set(key.id, copy(key));
    return true;
  }

  async get(id: string) {
    const k = this.rows.get(id);
    return k && copy(k);
  }

  async findByRecord(tenant: string, record: string) {
    for (const k of this.rows.values()) if (k.tenant === tenant && k.record === record) return copy(k);
    return undefined;
  }

  async rewrap(id: string, expected: DataKeyWrapping, next: DataKeyWrapping & { rewrappedAt: Date }) {
    const k = this.rows.get(id);
    if (!k || k.kekId !== expected.kekId || k.wrapped !== expected.wrapped) return false;
    this.rows.set(id, { ...k, kekId: next.kekId, wrapped: next.wrapped, rewrappedAt: new Date(next.rewrappedAt) });
    return true;
  }

  async listNotWrappedBy(kekId: string, limit: number, after?: string) {
    return [...this.rows.values()]
      .filter((k) => k.kekId !== kekId && (after === undefined || k.id > after))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, limit)
      .map(copy);
  }

  async countByKek() {
    const counts = new Map<string, number>();
    for (const k of this.rows.values()) counts.set(k.kekId, (counts.get(k.kekId) ?? 0) + 1);
    return counts;
  }

  async deleteByRecord(tenant: string, record: string) {
    let n = 0;
    for (const [id, k] of this.rows) if (k.tenant === tenant && k.record === record && this.rows.delete(id)) n++;
    return n;
  }
}
