import type { RevocationRepository } from "../store/repositories.js";
import { RevocationSet } from "./revocation-set.js";

export interface RevocationPollerOptions {
  /** How often to look for new revocations. Revocation reaches every broker within about this long. */
  intervalMs?: number;
  /** How far back each incremental poll looks, to absorb clock skew between brokers. */
  overlapMs?: number;
  /** Full reload period, a safety net for revocations written with a clock far behind. */
  fullReloadMs?: number;
  onError?: (err: unknown) => void;
}

/**
 * Keeps a RevocationSet current from the insert-only revocations collection by polling (FerretDB has no change
 * streams). Revocations are never deleted, so a set that only grows is always correct.
 */
export class RevocationPoller {
  readonly set = new RevocationSet();
  private timer: NodeJS.Timeout | undefined;
  private lastFull = 0;
  private since = new Date(0);
  private readonly intervalMs: number;
  private readonly overlapMs: number;
  private readonly fullReloadMs: number;

  constructor(
    private readonly repository: RevocationRepository,
    private readonly options: RevocationPollerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 500;
    this.overlapMs = options.overlapMs ?? 60_000;
    this.fullReloadMs = options.fullReloadMs ?? 300_000;
  }

  /** Load everything once, then poll. */
  async start(): Promise<void> {
    await this.poll();
    const tick = () => {
      this.timer = setTimeout(() => {
        this.poll().catch((err) => this.options.onError?.(err)).finally(() => this.timer && tick());
      }, this.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  /** Add ids revoked by this process (in `tenant`) at once, without waiting for the next poll. */
  add(tenant: string, ids: string[]): void {
    this.set.add(ids.map((id) => ({ tenant, id })));
  }

  async poll(): Promise<void> {
    const startedAt = Date.now();
    const full = startedAt - this.lastFull >= this.fullReloadMs;
    const since = full ? new Date(0) : this.since;
    const rows = await this.repository.listSince(since);
    this.set.add(rows);
    if (full) this.lastFull = startedAt;
    this.since = new Date(startedAt - this.overlapMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
