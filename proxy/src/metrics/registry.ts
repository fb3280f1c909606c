/**
 * A small Prometheus registry (text exposition format 0.0.4), written for the hot path:
 * callers resolve a labelled child once (`counter.child('inbound', 'http1')`) and keep it, so
 * counting a request is one addition. Its whole state can be snapshotted as plain JSON and
 * merged into another registry, so a supervisor can keep counters continuous across engine
 * restarts. Merge adds counters and histograms; gauges describe the live process (active
 * connections, build info) and are not merged: the receiver's own values stand.
 */

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface SeriesSnapshot {
  readonly labels: readonly string[];
  /** counter and gauge value; histogram sum */
  readonly value: number;
  /** histogram only: per-bucket (non-cumulative) counts, the last one being +Inf */
  readonly buckets?: readonly number[];
}

export interface MetricSnapshot {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly bucketBounds?: readonly number[];
  readonly series: readonly SeriesSnapshot[];
}

export interface RegistrySnapshot {
  readonly metrics: readonly MetricSnapshot[];
}

/** Joins label values into a series key (a byte no label value may hold). */
export function seriesKey(values: readonly string[]): string {
  return values.join('\u0000');
}

/**
 * What one reader of `Registry.changed` has already been sent: the last value (histograms: the
 * observation count) of every series, and which metrics it has seen at all.
 */
export class DeltaMark {
  readonly seen = new WeakMap<object, number>();
  readonly metrics = new WeakSet<object>();
}

abstract class Metric<C> {
  protected readonly children = new Map<string, { labels: readonly string[]; child: C }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const l of labelNames)
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(l)) throw new Error(`invalid label ${l}`);
  }
  abstract readonly type: MetricType;
  protected abstract make(): C;

  /** The series for these label values, created on first use; keep it to avoid the lookup. */
  child(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`);
    }
    const key = seriesKey(values);
    let entry = this.children.get(key);
    if (entry === undefined) {
      entry = { labels: Object.freeze([...values]), child: this.make() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  abstract snapshot(): MetricSnapshot;
  /** Only the series whose value moved since `mark` last saw them (all of them the first time). */
  abstract changed(mark: DeltaMark): MetricSnapshot;
  abstract merge(s: MetricSnapshot): void;
  abstract render(out: string[]): void;

  protected header(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`);
  }
  protected labelText(labels: readonly string[], extra?: string): string {
    const parts: string[] = [];
    for (let i = 0; i < labels.length; i++)
      parts.push(`${this.labelNames[i]}="${escapeLabel(labels[i] as string)}"`);
    if (extra !== undefined) parts.push(extra);
    return parts.length === 0 ? '' : `{${parts.join(',')}}`;
  }
}

export class CounterChild {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class GaugeChild {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
  set(v: number): void {
    this.value = v;
  }
}

export class HistogramChild {
  sum = 0;
  readonly counts: Float64Array;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    this.sum += v;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > (b[i] as number)) i++;
    (this.counts[i] as number)++;
  }
}

class ScalarMetric<C extends CounterChild | GaugeChild> extends Metric<C> {
  constructor(
    readonly type: 'counter' | 'gauge',
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly ctor: new () => C,
  ) {
    super(name, help, labelNames);
  }
  protected make(): C {
    return new this.ctor();
  }
  snapshot(): MetricSnapshot {
    const series: SeriesSnapshot[] = [];
    for (const { labels, child } of this.children.values()) series.push({ labels, value: child.value });
    return { name: this.name, type: this.type, help: this.help, labelNames: this.labelNames, series };
  }
  changed(mark: DeltaMark): MetricSnapshot {
    const series: SeriesSnapshot[] = [];
    for (const entry of this.children.values()) {
      const v = entry.child.value;
      if (mark.seen.get(entry) === v) continue;
      mark.seen.set(entry, v);
      series.push({ labels: entry.labels, value: v });
    }
    return { name: this.name, type: this.type, help: this.help, labelNames: this.labelNames, series };
  }
  merge(s: MetricSnapshot): void {
    for (const ser of s.series) this.child(...ser.labels).value += ser.value;
  }
  render(out: string[]): void {
    this.header(out);
    for (const { labels, child } of this.children.values()) {
      out.push(`${this.name}${this.labelText(labels)} ${formatNumber(child.value)}\n`);
    }
  }
}

export class Counter extends ScalarMetric<CounterChild> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super('counter', name, help, labelNames, CounterChild);
  }
}

export class Gauge extends ScalarMetric<GaugeChild> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super('gauge', name, help, labelNames, GaugeChild);
  }
}

export class Histogram extends Metric<HistogramChild> {
  readonly type = 'histogram';
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames);
    for (let i = 1; i < bounds.length; i++) {
      if ((bounds[i] as number) <= (bounds[i - 1] as number))
        throw new Error(`${name}: buckets must increase`);
    }
  }
  protected make(): HistogramChild {
    return new HistogramChild(this.bounds);
  }
  snapshot(): MetricSnapshot {
    const series: SeriesSnapshot[] = [];
    for (const { labels, child } of this.children.values()) {
      series.push({ labels, value: child.sum, buckets: Array.from(child.counts) });
    }
    return this.shaped(series);
  }
  changed(mark: DeltaMark): MetricSnapshot {
    const series: SeriesSnapshot[] = [];
    for (const entry of this.children.values()) {
      // Every observation adds one to a bucket: the total count moves whenever anything does.
      let n = 0;
      for (const c of entry.child.counts) n += c;
      if (mark.seen.get(entry) === n) continue;
      mark.seen.set(entry, n);
      series.push({ labels: entry.labels, value: entry.child.sum, buckets: Array.from(entry.child.counts) });
    }
    return this.shaped(series);
  }
  private shaped(series: SeriesSnapshot[]): MetricSnapshot {
    return {
      name: this.name,
      type: this.type,
      help: this.help,
      labelNames: this.labelNames,
      bucketBounds: this.bounds,
      series,
    };
  }
  merge(s: MetricSnapshot): void {
    if (s.bucketBounds?.join() !== this.bounds.join()) throw new Error(`${this.name}: bucket bounds differ`);
    for (const ser of s.series) {
      const c = this.child(...ser.labels);
      c.sum += ser.value;
      ser.buckets?.forEach((n, i) => (c.counts[i] = (c.counts[i] as number) + n));
    }
  }
  render(out: string[]): void {
    this.header(out);
    for (const { labels, child } of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += child.counts[i] as number;
        const le = i < this.bounds.length ? formatNumber(this.bounds[i] as number) : '+Inf';
        out.push(`${this.name}_bucket${this.labelText(labels, `le="${le}"`)} ${formatNumber(cumulative)}\n`);
      }
      out.push(`${this.name}_sum${this.labelText(labels)} ${formatNumber(child.sum)}\n`);
      out.push(`${this.name}_count${this.labelText(labels)} ${formatNumber(cumulative)}\n`);
    }
  }
}

type AnyMetric = Counter | Gauge | Histogram;

export class Registry {
  private readonly metrics = new Map<string, AnyMetric>();
  private readonly collectors: (() => void)[] = [];

  /**
   * Runs `fn` before every render and snapshot (a scrape, an engine heartbeat): for values read
   * from the process at that moment (metrics/process.ts), never on the data path.
   */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  private collect(): void {
    for (const fn of this.collectors) fn();
  }

  register<M extends AnyMetric>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }
  histogram(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]): Histogram {
    return this.register(new Histogram(name, help, labelNames, bounds));
  }

  get(name: string): AnyMetric | undefined {
    return this.metrics.get(name);
  }

  /** The text exposition format 0.0.4. */
  render(): string {
    this.collect();
    const out: string[] = [];
    for (const m of this.metrics.values()) m.render(out);
    return out.join('');
  }

  /** Plain-JSON copy of every series (safe to send over IPC). */
  snapshot(): RegistrySnapshot {
    this.collect();
    return { metrics: [...this.metrics.values()].map((m) => m.snapshot()) };
  }

  /**
   * As snapshot(), but only the series whose value changed since the last call with the same
   * `mark` (values are absolute, not increments: applying one twice is harmless), and only the
   * metrics that have such series. The first call with a new mark returns every series.
   */
  changed(mark: DeltaMark): RegistrySnapshot {
    this.collect();
    const metrics: MetricSnapshot[] = [];
    for (const m of this.metrics.values()) {
      const first = !mark.metrics.has(m);
      const d = m.changed(mark);
      if (first || d.series.length > 0) metrics.push(d);
      mark.metrics.add(m);
    }
    return { metrics };
  }

  /**
   * Adds another registry's counters and histograms into this one (unknown ones are registered
   * as they come); gauges are skipped, see the file comment.
   */
  merge(s: RegistrySnapshot): void {
    for (const ms of s.metrics) {
      if (ms.type === 'gauge') continue;
      let m = this.metrics.get(ms.name);
      if (m === undefined) {
        m =
          ms.type === 'counter'
            ? this.counter(ms.name, ms.help, ms.labelNames)
            : this.histogram(ms.name, ms.help, ms.labelNames, ms.bucketBounds ?? []);
      }
      if (m.type !== ms.type) throw new Error(`${ms.name}: cannot merge a ${ms.type} into a ${m.type}`);
      m.merge(ms);
    }
  }
}

export function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\\' ? '\\\\' : '\\n'));
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}
