import type { AuditRecord, AuditWriterRecord } from "../records.js";
import { CapvaultError } from "../../errors/capvault-error.js";
import type { AuditRepository } from "../repositories.js";
import { groupByChain } from "../audit-chains.js";
import { sameEvent } from "../same-audit-event.js";

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

  /** All or nothing per chain, as in MongoDB: events already stored are skipped; the rest must continue the chain. */
  async insertMany(events: AuditRecord[]): Promise<void> {
    const chain = this.continuedChain(events);
    if (chain !== undefined) {
      // The usual batch: one writer's next events in one chain, in order. Nothing to group, skip or refuse.
      for (const e of events) this.keep(e);
      this.heads.set(chain, events[events.length - 1].sequence);
      this.trim();
      return;
    }
    let failure: CapvaultError | undefined;
    for (const list of groupByChain(events)) {
      const chain = `${list[0].tenant}\u0000${list[0].writer}`;
      const head = this.heads.get(chain) ?? 0;
      const conflicting = list.find((e) => {
        const stored = e.sequence <= head ? this.events.get(key(e.tenant, e.writer, e.sequence)) : undefined;
        return stored !== undefined && !sameEvent(fromJson(stored), e);
      });
      const fresh = list.filter((e) => e.sequence > head);
      if (conflicting) {
        failure ??= new CapvaultError("AUDIT_WRITE_FAILED", `another event is stored at ${conflicting.writer}/${conflicting.sequence}`);
        continue;
      }
      if (fresh.some((e, i) => e.sequence !== head + 1 + i)) {
        failure ??= new CapvaultError("AUDIT_WRITE_FAILED", `audit events of ${list[0].writer} do not continue its chain at ${head + 1}`);
        continue;
      }
      for (const e of fresh) this.keep(e);
      if (fresh.length) this.heads.set(chain, fresh[fresh.length - 1].sequence);
    }
    this.trim();
    if (failure) throw failure;
  }

  /** The chain `events` continue exactly (all of one tenant and writer, the next sequences after its head), if any. */
  private continuedChain(events: AuditRecord[]): string | undefined {
    const first = events[0];
    if (first === undefined) return undefined;
    const chain = `${first.tenant}\u0000${first.writer}`;
    let next = (this.heads.get(chain) ?? 0) + 1;
    for (const e of events) {
      if (e.tenant !== first.tenant || e.writer !== first.writer || e.sequence !== next) return undefined;
      next++;
    }
    return chain;
  }

  private keep(e: AuditRecord): void {
    const k = key(e.tenant, e.writer, e.sequence);
    this.events.set(k, toJson(e));
    this.order.push(k);
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

/**
 * An event as stored: its fields as one JSON array in a fixed order (no key names to write or read; the time as epoch
 * milliseconds, so that JSON.stringify stays on its fast path). STORED_FIELDS is the order.
 */
function toJson(e: AuditRecord): string {
  return JSON.stringify([
    e.id,
    e.tenant,
    e.writer,
    e.sequence,
    e.time.getTime(),
    e.action,
    e.subject,
    e.delegationChain,
    e.connection,
    e.provider,
    e.method,
    e.path,
    e.decision,
    e.reason,
    e.detail,
    e.upstreamStatus,
    e.latencyMs,
    e.previousHash,
    e.hash,
  ]);
}

const STORED_FIELDS = [
  "id",
  "tenant",
  "writer",
  "sequence",
  "time",
  "action",
  "subject",
  "delegationChain",
  "connection",
  "provider",
  "method",
  "path",
  "decision",
  "reason",
  "detail",
  "upstreamStatus",
  "latencyMs",
  "previousHash",
  "hash",
] as const;

function fromJson(stored: string): AuditRecord {
  const values = JSON.parse(stored) as unknown[];
  const event = Object.fromEntries(STORED_FIELDS.map((field, i) => [field, values[i]])) as Omit<AuditRecord, "time"> & { time: number };
  return { ...event, time: new Date(event.time) };
}
