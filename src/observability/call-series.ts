import type { Registry } from "prom-client";

/*
 * The counter and histograms observed on every Proxy call. prom-client's own validate the label names and hash the
 * label object on each observation (a few microseconds, three times per call); these find their series by the label
 * values alone and are read by the registry in prom-client's own shape, so the exposition text is the same.
 * Label values come from closed sets (metrics.ts), so the series stay few.
 */

interface Series {
  readonly labels: Record<string, string>;
  /** Observations per bucket (not cumulative), then the +Inf overflow. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  metricName?: string;
}

interface CallSeriesOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
}

abstract class CallSeries<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = "sum";
  abstract readonly type: "counter" | "histogram";
  private readonly labelNames: readonly L[];
  private readonly series = new Map<string, Series>();

  constructor(options: CallSeriesOptions<L>, private readonly buckets: number) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
    // A series without labels exists from the start (served as zero), as prom-client serves it.
    if (this.labelNames.length === 0) this.seriesOf([]);
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  /** The series of these label values, in the order of `labelNames`. */
  protected seriesOf(values: readonly string[]): Series {
    const key = values.length === 1 ? values[0] : values.join("\u0000");
    let series = this.series.get(key);
    if (!series) {
      if (values.length !== this.labelNames.length) throw new Error(`${this.name} takes ${this.labelNames.length} label values`);
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]));
      series = { labels, counts: new Float64Array(this.buckets + 1), sum: 0, count: 0 };
      this.series.set(key, series);
    }
    return series;
  }

  protected allSeries(): Iterable<Series> {
    return this.series.values();
  }

  /** What the registry serves (prom-client's metric shape). */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values() };
  }

  protected abstract values(): MetricValue[];

  reset(): void {
    for (const series of this.series.values()) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}

/** A counter of per-call events. */
export class CallCounter<L extends string> extends CallSeries<L> {
  readonly type = "counter";

  constructor(options: CallSeriesOptions<L>) {
    super(options, 0);
  }

  inc(...labelValues: string[]): void {
    this.seriesOf(labelValues).count++;
  }

  protected values(): MetricValue[] {
    return [...this.allSeries()].map((s) => ({ value: s.count, labels: s.labels }));
  }
}

/** A histogram of per-call durations, in seconds. */
export class CallHistogram<L extends string> extends CallSeries<L> {
  readonly type = "histogram";
  private readonly upperBounds: readonly number[];

  constructor(options: CallSeriesOptions<L> & { buckets: readonly number[] }) {
    super(options, options.buckets.length);
    this.upperBounds = [...options.buckets].sort((a, b) => a - b);
  }

  observe(seconds: number, ...labelValues: string[]): void {
    if (!Number.isFinite(seconds)) return;
    const series = this.seriesOf(labelValues);
    let i = 0;
    while (i < this.upperBounds.length && seconds > this.upperBounds[i]) i++;
    series.counts[i]++;
    series.sum += seconds;
    series.count++;
  }

  protected values(): MetricValue[] {
    const name = this.name;
    const out: MetricValue[] = [];
    for (const s of this.allSeries()) {
      let cumulative = 0;
      this.upperBounds.forEach((le, i) => {
        cumulative += s.counts[i];
        out.push({ value: cumulative, labels: { le }, sharedLabels: s.labels, metricName: `${name}_bucket` });
      });
      out.push(
        { value: s.count, labels: { le: "+Inf" }, sharedLabels: s.labels, metricName: `${name}_bucket` },
        { value: s.sum, labels: {}, sharedLabels: s.labels, metricName: `${name}_sum` },
        { value: s.count, labels: {}, sharedLabels: s.labels, metricName: `${name}_count` },
      );
    }
    return out;
  }
}
