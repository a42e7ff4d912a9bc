import { CapvaultError } from "../errors/capvault-error.js";
import type { RevocationRepository } from "../store/repositories.js";
import type { RevocationLogEntry } from "../store/revocation-log.js";
import { RevocationSet, type RevokedBlock } from "./revocation-set.js";

export interface RevocationPollerOptions {
  /** How often to read new revocations. Revocation reaches every broker within about this long. Default 500 ms. */
  intervalMs?: number;
  /**
   * The oldest revocation view this broker may decide with (default 2 s): when the last successful poll started
   * longer ago than this (the database is stalled or unreachable), every use of a capability is refused with
   * REVOCATIONS_STALE (UNAVAILABLE) until a poll succeeds again.
   */
  maxStalenessMs?: number;
  /** A poll taking longer than this is abandoned and the next one starts on schedule (default min(1 s, maxStalenessMs / 2)). */
  pollTimeoutMs?: number;
  /**
   * Called when the log says root keys changed (a key added or retired); the poll succeeds only once it resolves, so
   * a retired key stops verifying within the same bound as a revocation.
   */
  onRootKeysChanged?: () => Promise<void>;
  onError?: (err: unknown) => void;
}

/**
 * Keeps a RevocationSet current by polling (FerretDB has no change streams). Start-up loads every revocation once;
 * after that each poll reads only the revocation log's new entries, by `_id` (store/revocation-log.ts), so a poll
 * costs the same with a thousand stored revocations as with a million. Revocations are never deleted, so a set that
 * only grows is always correct — as long as it is recent: the set refuses to answer (REVOCATIONS_STALE) when the view
 * is older than `maxStalenessMs`, measured from the start of the last successful poll.
 */
export class RevocationPoller {
  readonly set: RevocationSet;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** The log position after the last entry applied. */
  private next = 0;
  /** performance.now() at the start of the last successful poll (or load); -Infinity before the first. */
  private freshAt = Number.NEGATIVE_INFINITY;
  /** Bumped when a poll is abandoned, so its late results are not mistaken for a current poll's. */
  private generation = 0;
  private readonly intervalMs: number;
  readonly maxStalenessMs: number;
  private readonly pollTimeoutMs: number;

  constructor(
    private readonly repository: RevocationRepository,
    private readonly options: RevocationPollerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 500;
    this.maxStalenessMs = options.maxStalenessMs ?? 2_000;
    this.pollTimeoutMs = options.pollTimeoutMs ?? Math.max(1, Math.min(1_000, Math.floor(this.maxStalenessMs / 2)));
    this.set = new FreshRevocationSet(() => this.assertFresh());
  }

  /** Load every revocation once, then poll. */
  async start(): Promise<void> {
    const startedAt = performance.now();
    // The log head first: anything logged after it is read by the polls, anything before it is in the load.
    const head = await this.repository.logHead();
    this.set.add(await this.repository.listSince(new Date(0)));
    this.next = Math.max(this.next, head);
    this.freshAt = Math.max(this.freshAt, startedAt);
    this.running = true;
    const tick = () => {
      this.timer = setTimeout(() => {
        this.poll()
          .catch((err) => this.options.onError?.(err))
          .finally(() => this.running && tick());
      }, this.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  /** Add ids revoked by this process (in `tenant`) at once, without waiting for the next poll. */
  add(tenant: string, ids: string[]): void {
    this.set.add(ids.map((id) => ({ tenant, id })));
  }

  /**
   * Read the log's new entries until one is missing. Bounded by `pollTimeoutMs`: a poll stuck on a stalled database
   * fails (and is abandoned) so that later polls still run; only a poll that caught up makes the view fresh.
   */
  async poll(): Promise<void> {
    const startedAt = performance.now();
    const generation = ++this.generation;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (this.generation === generation) this.generation++; // abandon it
        reject(new CapvaultError("STORE_UNAVAILABLE", `revocation poll took longer than ${this.pollTimeoutMs} ms`));
      }, this.pollTimeoutMs);
      timer.unref();
    });
    try {
      await Promise.race([this.catchUp(generation), timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.freshAt = Math.max(this.freshAt, startedAt);
  }

  /** How old the revocation view is, in ms (Infinity before the first load). */
  ageMs(): number {
    return performance.now() - this.freshAt;
  }

  /** Throws REVOCATIONS_STALE when the view is older than the bound: the broker cannot know what was revoked. */
  assertFresh(): void {
    const age = this.ageMs();
    if (age > this.maxStalenessMs) {
      throw new CapvaultError(
        "REVOCATIONS_STALE",
        Number.isFinite(age)
          ? `the revocation list was last read ${Math.round(age)} ms ago (bound ${this.maxStalenessMs} ms); retry`
          : "the revocation list has not been read yet; retry",
        { metadata: { maxStalenessMs: String(this.maxStalenessMs) } },
      );
    }
  }

  stop(): void {
    this.running = false;
    this.generation++;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async catchUp(generation: number): Promise<void> {
    for (;;) {
      const seq = this.next;
      const entry = await this.repository.readLog(seq);
      if (generation !== this.generation) return; // abandoned: a newer poll owns the position
      if (!entry) return;
      await this.apply(entry);
      if (generation !== this.generation) return;
      this.next = Math.max(this.next, seq + 1);
    }
  }

  private async apply(entry: RevocationLogEntry): Promise<void> {
    if (entry.kind === "revocation") this.set.add([{ tenant: entry.tenant, id: entry.id }]);
    else await this.options.onRootKeysChanged?.();
  }
}

/** The poller's set: it answers only while the view is fresh. */
class FreshRevocationSet extends RevocationSet {
  constructor(
    private readonly assertFresh: () => void,
    blocks: Iterable<RevokedBlock> = [],
  ) {
    super(blocks);
  }

  override has(tenant: string, id: string): boolean {
    this.assertFresh();
    return super.has(tenant, id);
  }

  override isRevoked(tenant: string, ids: Iterable<string>): boolean {
    this.assertFresh();
    return super.isRevoked(tenant, ids);
  }
}
