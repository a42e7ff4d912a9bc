import { randomUUID } from "node:crypto";
import { CapvaultError } from "../errors/capvault-error.js";
import type { AuditRecord } from "../store/records.js";
import type { AuditRepository } from "../store/repositories.js";
import { completeEntry, GENESIS_HASH, hashAuditRecord, type AuditEntry } from "./audit-event.js";

export interface AuditLogOptions {
  /** Events waiting to be written before record() refuses new ones (fail closed). */
  maxQueued?: number;
  /** How many times one event may lose the race for a sequence number to another broker before giving up. */
  maxConflicts?: number;
  /** Called when an event could not be written (after retries). */
  onWriteError?: (err: unknown, entry: AuditEntry) => void;
  now?: () => Date;
}

/** The most events one database write carries. */
const MAX_BATCH = 200;

interface Head {
  sequence: number;
  hash: string;
}

/**
 * The append-only, hash-chained audit trail. record() queues an event and returns at once, so audit never sits on
 * the Proxy hot path; one writer per tenant appends queued events in order. Each event's `_id` is
 * (tenant, sequence): when another broker process takes the same sequence first, the insert fails atomically and
 * this writer re-reads the tenant's head and retries, so the chain stays linear across processes without
 * transactions. If the backlog passes maxQueued (database down), record() throws AUDIT_WRITE_FAILED: callers fail
 * closed rather than act unaudited.
 */
export class AuditLog {
  private readonly heads = new Map<string, Head>();
  private readonly queues = new Map<string, AuditEntry[]>();
  private readonly writers = new Map<string, Promise<void>>();
  private queued = 0;
  private readonly maxQueued: number;
  private readonly maxConflicts: number;
  private readonly now: () => Date;

  constructor(
    private readonly repository: AuditRepository,
    private readonly options: AuditLogOptions = {},
  ) {
    this.maxQueued = options.maxQueued ?? 10_000;
    this.maxConflicts = options.maxConflicts ?? 100;
    this.now = options.now ?? (() => new Date());
  }

  /** Queue an event for writing. Throws AUDIT_WRITE_FAILED when the backlog is full. */
  record(entry: AuditEntry): void {
    if (this.queued >= this.maxQueued) {
      throw new CapvaultError("AUDIT_WRITE_FAILED", "the audit backlog is full; refusing to act unaudited");
    }
    this.queued++;
    const queue = this.queues.get(entry.tenant) ?? [];
    queue.push(entry);
    this.queues.set(entry.tenant, queue);
    if (!this.writers.has(entry.tenant)) this.startWriter(entry.tenant);
  }

  /** Record an event and wait until it is stored (for rare, important actions: mint, revoke, disconnect). */
  async recordAndWait(entry: AuditEntry): Promise<AuditRecord> {
    return this.append(entry);
  }

  /** Wait until everything queued so far is written (shutdown, tests). */
  async flush(): Promise<void> {
    while (this.writers.size) await Promise.all([...this.writers.values()]);
  }

  private startWriter(tenant: string): void {
    const run = (async () => {
      // Start after the current turn of the event loop: the caller's response goes out before the chaining work, and
      // every event recorded meanwhile joins the first batch.
      await new Promise((resolve) => setImmediate(resolve));
      const queue = this.queues.get(tenant)!;
      while (queue.length) {
        // Everything queued so far goes out as one ordered batch: one database round trip for many events.
        const batch = queue.splice(0, MAX_BATCH);
        try {
          await this.appendBatch(tenant, batch);
        } catch (err) {
          for (const entry of batch) this.options.onWriteError?.(err, entry);
        } finally {
          this.queued -= batch.length;
        }
      }
      this.queues.delete(tenant);
      this.writers.delete(tenant);
    })();
    this.writers.set(tenant, run);
  }

  /**
   * Chain a batch in memory after the tenant's head and insert it in order. If another broker took a sequence
   * meanwhile, the events before it are stored; re-read the head and re-chain the rest.
   */
  private async appendBatch(tenant: string, entries: AuditEntry[]): Promise<void> {
    let rest = entries;
    for (let attempt = 0; rest.length && attempt <= this.maxConflicts; attempt++) {
      let head = await this.head(tenant, attempt > 0);
      const time = this.now();
      const records = rest.map((entry) => {
        const record = completeEntry(entry) as AuditRecord;
        record.id = randomUUID();
        record.sequence = head.sequence + 1;
        record.time = time;
        record.previousHash = head.hash;
        record.hash = hashAuditRecord(record);
        head = { sequence: record.sequence, hash: record.hash };
        return record;
      });
      const stored = await this.repository.insertMany(records);
      if (stored > 0) this.heads.set(tenant, { sequence: records[stored - 1].sequence, hash: records[stored - 1].hash });
      rest = rest.slice(stored);
    }
    if (rest.length) throw new CapvaultError("AUDIT_WRITE_FAILED", "lost the race for audit sequence numbers too many times");
  }

  private async append(entry: AuditEntry): Promise<AuditRecord> {
    const body = completeEntry(entry);
    for (let attempt = 0; attempt <= this.maxConflicts; attempt++) {
      const head = await this.head(entry.tenant, attempt > 0);
      const record: Omit<AuditRecord, "hash"> = {
        ...body,
        id: randomUUID(),
        sequence: head.sequence + 1,
        time: this.now(),
        previousHash: head.hash,
      };
      const full: AuditRecord = { ...record, hash: hashAuditRecord(record) };
      if (await this.repository.insert(full)) {
        this.heads.set(entry.tenant, { sequence: full.sequence, hash: full.hash });
        return full;
      }
    }
    throw new CapvaultError("AUDIT_WRITE_FAILED", "lost the race for an audit sequence number too many times");
  }

  private async head(tenant: string, reload: boolean): Promise<Head> {
    const cached = this.heads.get(tenant);
    if (cached && !reload) return cached;
    const last = await this.repository.last(tenant);
    const head = last ? { sequence: last.sequence, hash: last.hash } : { sequence: 0, hash: GENESIS_HASH };
    this.heads.set(tenant, head);
    return head;
  }
}
