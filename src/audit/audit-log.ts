import { randomBytes, randomUUID } from "node:crypto";
import { CapvaultError } from "../errors/capvault-error.js";
import type { AuditRecord } from "../store/records.js";
import type { AuditRepository } from "../store/repositories.js";
import { groupByChain } from "../store/audit-chains.js";
import { sameEvent } from "../store/same-audit-event.js";
import { auditRecordOf, GENESIS_HASH, type AuditEntry } from "./audit-event.js";

export interface AuditLogOptions {
  /** Events reserved or waiting to be stored before reserve() refuses new ones (fail closed). */
  maxQueued?: number;
  /** How long a caller waits for its event to be stored before its call fails (the event is still stored later). */
  commitTimeoutMs?: number;
  /** A write in flight for longer than this counts as a failing database (a stalled server answers nothing). */
  stallMs?: number;
  /**
   * A write attempt (or the read-back after one) that has not settled after this long is given up and retried
   * (default 5 s). Retrying is safe whatever the abandoned attempt still does: each event's place is fixed, and a
   * chain's segments are insert-once, so a late write and its retry cannot both store.
   */
  attemptTimeoutMs?: number;
  /** This process's chain id (tests); a fresh one by default. */
  writer?: string;
  /** Called when a write attempt fails (it is retried until it succeeds). */
  onWriteError?: (err: unknown) => void;
  now?: () => Date;
}

/** The most events one database write carries. */
const MAX_BATCH = 500;
const RETRY_DELAYS_MS = [50, 100, 250, 500, 1000];

/** A slot in the trail, taken before acting: commit() stores the call's event and resolves once it is durable. */
export interface AuditReservation {
  commit(entry: AuditEntry): Promise<AuditRecord>;
}

interface Waiting {
  entry: AuditEntry;
  resolve: (record: AuditRecord) => void;
  reject: (err: unknown) => void;
  /** Answered: stored, or given up after commitTimeoutMs (the event itself stays queued). */
  settled: boolean;
  /** performance.now() after which the caller stops waiting. */
  expiresAt: number;
}

/**
 * The append-only, hash-chained audit trail, durable before the answer.
 *
 * Each AuditLog is one writer with its own hash chain per tenant (sequence 1, 2, 3… within (tenant, writer)), so
 * broker processes never race each other for sequence numbers and an operator's Revoke cannot be starved by another
 * broker's Proxy traffic. Verification checks every writer's chain (verify-audit.ts).
 *
 * Group commit: callers reserve() a slot before acting (refused when the queue is full or the database is failing),
 * then commit() their event; everything committed while one batch is being written goes out as the next batch, and
 * each caller's promise resolves when its batch is acknowledged. Every event's place (tenant, writer, sequence) is
 * fixed when it is chained, so a retry after any failure is idempotent: the writer reads back what is actually stored
 * and stores only what is missing, whatever the server did with a failed write.
 */
export class AuditLog {
  readonly writer: string;
  private readonly heads = new Map<string, { sequence: number; hash: string }>();
  private readonly registered = new Set<string>();
  private readonly waiting: Waiting[] = [];
  private reserved = 0;
  private writing: Promise<void> | undefined;
  private failingSince: number | undefined;
  private writeStartedAt: number | undefined;
  private readonly stallMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly maxQueued: number;
  private readonly commitTimeoutMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly repository: AuditRepository,
    private readonly options: AuditLogOptions = {},
  ) {
    this.writer = options.writer ?? newWriterId();
    this.maxQueued = options.maxQueued ?? 10_000;
    this.commitTimeoutMs = options.commitTimeoutMs ?? 10_000;
    this.stallMs = options.stallMs ?? 2000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 5000;
    this.now = options.now ?? (() => new Date());
  }

  /** False while a write is failing or stalled: new work is refused until the database takes events again. */
  get healthy(): boolean {
    if (this.failingSince !== undefined) return false;
    return this.writeStartedAt === undefined || performance.now() - this.writeStartedAt < this.stallMs;
  }

  /** Why the writer is not healthy, for the log: how long it has been failing or writing, and its queue. */
  state(): { depth: number; failingForMs?: number; writingForMs?: number } {
    return {
      depth: this.depth,
      ...(this.failingSince !== undefined ? { failingForMs: Date.now() - this.failingSince } : {}),
      ...(this.writeStartedAt !== undefined ? { writingForMs: Math.round(performance.now() - this.writeStartedAt) } : {}),
    };
  }

  /** Events reserved or waiting to be stored. */
  get depth(): number {
    return this.reserved + this.waiting.length + this.inFlight;
  }
  private inFlight = 0;

  /**
   * Take a slot for one event before acting. Throws AUDIT_UNAVAILABLE (nothing may be done) when the queue is full or
   * the database is not taking events.
   */
  reserve(): AuditReservation {
    if (!this.healthy) throw new CapvaultError("AUDIT_UNAVAILABLE", "the audit trail's database is not taking events");
    if (this.depth >= this.maxQueued) throw new CapvaultError("AUDIT_UNAVAILABLE", "the audit queue is full");
    this.reserved++;
    let used = false;
    return {
      commit: (entry) => {
        if (used) throw new Error("an audit reservation is committed once");
        used = true;
        this.reserved--;
        return this.enqueue(entry);
      },
    };
  }

  /** Reserve, then store an event and wait until it is durable (operator actions: mint, revoke, disconnect…). */
  recordAndWait(entry: AuditEntry): Promise<AuditRecord> {
    return this.reserve().commit(entry);
  }

  /**
   * Store an event without waiting (background events: refreshes, connects). Never refused for a failing database:
   * the event waits in memory and is retried; only a full queue refuses it (AUDIT_UNAVAILABLE).
   */
  record(entry: AuditEntry): void {
    if (this.depth >= this.maxQueued) throw new CapvaultError("AUDIT_UNAVAILABLE", "the audit queue is full");
    this.enqueue(entry).catch(() => undefined); // failures are reported through onWriteError
  }

  /**
   * Wait until every event committed so far is stored (shutdown, tests); with `maxWaitMs`, give up after that long
   * (the database is down) and say whether everything was stored.
   */
  async flush(maxWaitMs?: number): Promise<boolean> {
    const deadline = maxWaitMs === undefined ? Infinity : Date.now() + maxWaitMs;
    while (this.writing && Date.now() < deadline) {
      await (maxWaitMs === undefined ? this.writing : Promise.race([this.writing, sleep(Math.min(100, deadline - Date.now()))]));
    }
    return this.writing === undefined;
  }

  private enqueue(entry: AuditEntry): Promise<AuditRecord> {
    const stored = new Promise<AuditRecord>((resolve, reject) => {
      const waiting: Waiting = { entry, resolve, reject, settled: false, expiresAt: performance.now() + this.commitTimeoutMs };
      this.waiting.push(waiting);
      this.commits.push(waiting);
      this.unsettled++;
    });
    this.watchExpiry();
    this.writing ??= this.writeAll();
    return stored;
  }

  /**
   * Every commit not yet answered, oldest first: they share one timeout, so they expire in this order, and one timer
   * (armed for the oldest) stands for all of them instead of a timer per commit. Answered ones are dropped from the front.
   */
  private readonly commits: Waiting[] = [];
  private commitsHead = 0;
  private unsettled = 0;
  private expiry: NodeJS.Timeout | undefined;

  /** Keep the expiry timer armed (and holding the process open) while a commit waits; idle otherwise. */
  private watchExpiry(): void {
    if (this.expiry === undefined) this.expiry = setTimeout(() => this.expire(), this.commitTimeoutMs);
    else if (this.unsettled === 1) this.expiry.ref();
  }

  /** The caller stops waiting; the event itself stays queued and is stored when the database allows. */
  private expire(): void {
    this.expiry = undefined;
    const now = performance.now();
    for (; this.commitsHead < this.commits.length; this.commitsHead++) {
      const waiting = this.commits[this.commitsHead];
      if (waiting.settled) continue;
      if (waiting.expiresAt > now) break;
      this.answer(waiting);
      waiting.reject(new CapvaultError("AUDIT_WRITE_FAILED", "the audit event was not stored in time"));
    }
    this.dropAnswered();
    if (this.unsettled > 0) {
      this.expiry = setTimeout(() => this.expire(), Math.max(1, this.commits[this.commitsHead].expiresAt - now));
    }
  }

  /** Mark a commit answered; once none waits, the timer no longer holds the process open. */
  private answer(waiting: Waiting): void {
    waiting.settled = true;
    if (--this.unsettled === 0) this.expiry?.unref();
  }

  private dropAnswered(): void {
    while (this.commitsHead < this.commits.length && this.commits[this.commitsHead].settled) this.commitsHead++;
    if (this.commitsHead === this.commits.length) {
      this.commits.length = 0;
      this.commitsHead = 0;
    } else if (this.commitsHead >= 1024) {
      this.commits.splice(0, this.commitsHead);
      this.commitsHead = 0;
    }
  }

  private async writeAll(): Promise<void> {
    // A quiet writer starts once the code that committed this event has run to its end (whatever it committed with
    // it joins the batch): on a quiet broker, waiting for the end of the event loop's turn would add that whole turn
    // to the call's answer. A writer that already wrote in this turn waits for its end, so that the turn's other
    // commits join one batch.
    if (this.wroteThisTurn) await new Promise((resolve) => setImmediate(resolve));
    else await Promise.resolve();
    this.markTurn();
    while (this.waiting.length) {
      const batch = this.waiting.splice(0, MAX_BATCH);
      this.inFlight = batch.length;
      const records = await this.chain(batch.map((w) => w.entry));
      await this.storeDurably(records);
      this.inFlight = 0;
      batch.forEach((w, i) => {
        if (w.settled) return; // its caller gave up waiting; the event is stored all the same
        this.answer(w);
        w.resolve(records[i]);
      });
      this.dropAnswered();
    }
    this.writing = undefined;
  }

  /** Whether a batch was started in this turn of the event loop (cleared at its end). */
  private wroteThisTurn = false;

  private markTurn(): void {
    if (this.wroteThisTurn) return;
    this.wroteThisTurn = true;
    setImmediate(() => (this.wroteThisTurn = false));
  }

  /** Fix each event's place in its tenant's chain: once chained, an event is retried exactly as it is. */
  private async chain(entries: AuditEntry[]): Promise<AuditRecord[]> {
    const time = this.now();
    const records: AuditRecord[] = [];
    for (const entry of entries) {
      if (!this.registered.has(entry.tenant)) await this.registerChain(entry.tenant);
      const head = this.heads.get(entry.tenant) ?? { sequence: 0, hash: GENESIS_HASH };
      const full = auditRecordOf(entry, { id: randomUUID(), writer: this.writer, sequence: head.sequence + 1, time, previousHash: head.hash });
      this.heads.set(entry.tenant, { sequence: full.sequence, hash: full.hash });
      records.push(full);
    }
    return records;
  }

  /** A chain is registered before its first event is stored, so that verification knows every chain exists. */
  private async registerChain(tenant: string): Promise<void> {
    await this.untilDone(() => this.repository.registerWriter({ tenant, writer: this.writer, startedAt: this.now() }));
    this.registered.add(tenant);
  }

  /** Insert; after any failure read back what is stored, insert only what is missing, and retry until all is. */
  private async storeDurably(records: AuditRecord[]): Promise<void> {
    let missing = records;
    for (let attempt = 0; missing.length; attempt++) {
      this.writeStartedAt = performance.now();
      try {
        await withTimeout(this.repository.insertMany(missing), this.attemptTimeoutMs, `audit write took longer than ${this.attemptTimeoutMs} ms`);
        missing = [];
      } catch (err) {
        this.options.onWriteError?.(err);
        try {
          missing = await withTimeout(this.notStored(missing), this.attemptTimeoutMs, `audit read-back took longer than ${this.attemptTimeoutMs} ms`);
        } catch (readErr) {
          this.options.onWriteError?.(readErr);
        }
        if (missing.length) {
          this.failingSince ??= Date.now();
          await sleep(RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]);
        }
      }
    }
    this.failingSince = undefined;
    this.writeStartedAt = undefined;
  }

  /** What of these events is not stored: one read per chain (a batch is one run of sequences in each chain). */
  private async notStored(records: AuditRecord[]): Promise<AuditRecord[]> {
    const missing: AuditRecord[] = [];
    for (const chain of groupByChain(records)) {
      const { tenant, writer } = chain[0];
      const first = chain[0].sequence;
      const stored = await this.repository.listChain(tenant, writer, first - 1, chain[chain.length - 1].sequence - first + 1);
      const bySequence = new Map(stored.map((e) => [e.sequence, e]));
      for (const record of chain) {
        const found = bySequence.get(record.sequence);
        // Only this process writes under its writer id: a different event at this key means two processes share one.
        if (found && !sameEvent(found, record)) {
          throw new CapvaultError("AUDIT_WRITE_FAILED", `another event is stored at ${record.writer}/${record.sequence}`);
        }
        if (!found) missing.push(record);
      }
    }
    return missing;
  }

  private async untilDone(operation: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await operation();
        return;
      } catch (err) {
        this.options.onWriteError?.(err);
        this.failingSince ??= Date.now();
        await sleep(RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]);
      }
    }
  }
}

/** Writer ids sort by start time (base-36 milliseconds), then a random part so two processes never share one. */
function newWriterId(): string {
  return `w${Date.now().toString(36)}${randomBytes(5).toString("hex")}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Fails with AUDIT_WRITE_FAILED after `ms` unless `promise` settled first. Also bounds each write attempt: after a
 * database restart under load, one insert neither answered nor failed for tens of seconds and held the writer (and
 * with it every Proxy call); the abandoned attempt's own outcome is ignored.
 */
function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  // One promise per call (not a race of two and a finally): this runs twice for every Proxy call.
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CapvaultError("AUDIT_WRITE_FAILED", message)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
