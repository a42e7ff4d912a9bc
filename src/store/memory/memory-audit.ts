import type { AuditRecord, AuditWriterRecord } from "../records.js";
import type { AuditRepository } from "../repositories.js";

const key = (tenant: string, writer: string, sequence: number) => `${tenant}\u0000${writer}\u0000${sequence}`;

/**
 * The dev store's audit trail. Events are kept as JSON strings (a long trail then costs the garbage collector
 * little to mark). With `maxEvents`, only the most recent events are kept (a ring), so a dev broker can run for days
 * in bounded memory; verification then starts each chain at its first kept event.
 */
export class MemoryAudit implements AuditRepository {
  readonly keepsEverything: boolean;
  private readonly events = new Map<string, string>();
  /** Keys in insertion order; the oldest is dropped first when the ring is full. */
  private readonly order: string[] = [];
  private dropped = 0;
  private readonly heads = new Map<string, number>();
  private readonly chains = new Map<string, AuditWriterRecord>();

  constructor(private readonly maxEvents?: number) {
    this.keepsEverything = maxEvents === undefined;
  }

  async registerWriter(w: AuditWriterRecord): Promise<void> {
    const id = `${w.tenant}\u0000${w.writer}`;
    if (!this.chains.has(id)) this.chains.set(id, { ...w });
  }

  async writers(tenant: string): Promise<AuditWriterRecord[]> {
    return [...this.chains.values()]
      .filter((w) => w.tenant === tenant)
      .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime() || a.writer.localeCompare(b.writer))
      .map((w) => ({ ...w }));
  }

  async insertMany(events: AuditRecord[]): Promise<void> {
    let duplicate: AuditRecord | undefined;
    for (const e of events) {
      const k = key(e.tenant, e.writer, e.sequence);
      if (this.events.has(k)) {
        duplicate ??= e;
        continue;
      }
      this.events.set(k, JSON.stringify({ ...e, time: e.time.getTime() }));
      this.order.push(k);
      const chain = `${e.tenant}\u0000${e.writer}`;
      this.heads.set(chain, Math.max(this.heads.get(chain) ?? 0, e.sequence));
    }
    this.trim();
    if (duplicate) throw Object.assign(new Error(`audit event ${duplicate.writer}/${duplicate.sequence} is already stored`), { code: 11000 });
  }

  async get(tenant: string, writer: string, sequence: number): Promise<AuditRecord | undefined> {
    const stored = this.events.get(key(tenant, writer, sequence));
    return stored === undefined ? undefined : fromJson(stored);
  }

  async head(tenant: string, writer: string): Promise<number> {
    return this.heads.get(`${tenant}\u0000${writer}`) ?? 0;
  }

  async listChain(tenant: string, writer: string, afterSequence: number, limit: number): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for (let s = afterSequence + 1; out.length < limit; s++) {
      const event = await this.get(tenant, writer, s);
      if (!event) {
        // A trimmed ring: a reader that starts before the oldest kept event continues at it.
        const oldest = out.length === 0 && !this.keepsEverything ? this.oldestKept(tenant, writer) : undefined;
        if (oldest === undefined || oldest <= s) break;
        s = oldest - 1;
        continue;
      }
      out.push(event);
    }
    return out;
  }

  async *scan(tenant: string): AsyncIterable<AuditRecord> {
    // A snapshot of the keys: events stored meanwhile are not part of this scan.
    for (const k of [...this.order.slice(this.dropped)]) {
      const stored = this.events.get(k);
      if (stored === undefined) continue;
      const event = fromJson(stored);
      if (event.tenant === tenant) yield event;
    }
  }

  private oldestKept(tenant: string, writer: string): number | undefined {
    const prefix = `${tenant}\u0000${writer}\u0000`;
    for (let i = this.dropped; i < this.order.length; i++) {
      if (this.order[i].startsWith(prefix)) return Number(this.order[i].slice(prefix.length));
    }
    return undefined;
  }

  private trim(): void {
    if (this.maxEvents === undefined) return;
    while (this.order.length - this.dropped > this.maxEvents) this.events.delete(this.order[this.dropped++]);
    // Compact the key list now and then, so dropped keys do not accumulate.
    if (this.dropped > 4096 && this.dropped * 2 > this.order.length) {
      this.order.splice(0, this.dropped);
      this.dropped = 0;
    }
  }
}

function fromJson(stored: string): AuditRecord {
  const event = JSON.parse(stored) as Omit<AuditRecord, "time"> & { time: number };
  return { ...event, time: new Date(event.time) };
}
