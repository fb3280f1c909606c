/**
 * Metrics across engine generations (issue 6: counters do not reset on a restart). An engine's
 * first heartbeat carries its whole registry snapshot (metrics/registry.ts), every later one the
 * series that changed since the one before (absolute values), and a whole one comes again when
 * it exits cleanly. The ledger keeps the sum over finished generations plus the latest snapshot
 * of every live engine: counters and histograms add up across generations, gauges only over
 * live engines (a dead engine's connections are gone). An engine killed with SIGKILL loses at
 * most one heartbeat period of increments; counters never go backwards.
 */
import { Gauge, Registry, seriesKey } from '../metrics/registry.js';
import type { MetricSnapshot, RegistrySnapshot, SeriesSnapshot } from '../metrics/registry.js';

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNumber(v: unknown): boolean {
  // JSON carries NaN and ±Infinity as null: a gauge may hold NaN (an unreadable value)
  return typeof v === 'number' || v === null;
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/**
 * Check of a snapshot that came over IPC, down to every series: label values match the label
 * names, values are numbers, a histogram's series have one count per bucket plus +Inf.
 * Cheap now that heartbeats carry only changed series (docs/supervisor.md).
 */
export function isRegistrySnapshot(v: unknown): v is RegistrySnapshot {
  if (!isObj(v) || !Array.isArray(v.metrics)) return false;
  return v.metrics.every((m: unknown) => {
    if (
      !isObj(m) ||
      typeof m.name !== 'string' ||
      typeof m.help !== 'string' ||
      !(m.type === 'counter' || m.type === 'gauge' || m.type === 'histogram') ||
      !Array.isArray(m.series) ||
      !isStrings(m.labelNames)
    )
      return false;
    const nLabels = m.labelNames.length;
    const bounds = m.bucketBounds;
    if (m.type === 'histogram' && !(Array.isArray(bounds) && bounds.every((b) => typeof b === 'number')))
      return false;
    const nBuckets = Array.isArray(bounds) ? bounds.length + 1 : 0;
    return m.series.every(
      (s: unknown) =>
        isObj(s) &&
        isStrings(s.labels) &&
        s.labels.length === nLabels &&
        isNumber(s.value) &&
        (m.type !== 'histogram' ||
          (Array.isArray(s.buckets) && s.buckets.length === nBuckets && s.buckets.every(isNumber))),
    );
  });
}

/**
 * Merges one metric into `into`. A new engine version that changed a metric's type, labels or
 * buckets cannot be summed with the old one: that metric keeps the first shape seen and the
 * other generation's values of it are left out (documented in docs/supervisor.md).
 */
function mergeMetric(into: Registry, m: MetricSnapshot): void {
  if (m.type === 'gauge') {
    addGauge(into, m);
    return;
  }
  try {
    const existing = into.get(m.name);
    if (existing !== undefined && existing.labelNames.join() !== m.labelNames.join()) return;
    into.merge({ metrics: [m] });
  } catch {
    // type or bucket mismatch: see above
  }
}

/**
 * Registry.merge leaves gauges out (one engine's gauge is not another's); here, over live
 * engines and the supervisor, they do add up (two engines' open connections during an upgrade).
 */
function addGauge(into: Registry, m: MetricSnapshot): void {
  const existing = into.get(m.name);
  const g = existing ?? into.gauge(m.name, m.help, m.labelNames);
  if (!(g instanceof Gauge) || g.labelNames.join() !== m.labelNames.join()) return;
  for (const s of m.series) g.child(...s.labels).inc(s.value);
}

/** One live engine's registry as the supervisor knows it: the full snapshot, patched by deltas. */
interface LiveMetric {
  readonly shape: MetricSnapshot;
  readonly series: Map<string, SeriesSnapshot>;
}
type LiveSnapshot = Map<string, LiveMetric>;

function sameShape(a: MetricSnapshot, b: MetricSnapshot): boolean {
  return (
    a.type === b.type &&
    seriesKey(a.labelNames) === seriesKey(b.labelNames) &&
    (a.bucketBounds ?? []).join() === (b.bucketBounds ?? []).join()
  );
}

function patchInto(live: LiveSnapshot, snap: RegistrySnapshot): string | undefined {
  for (const m of snap.metrics) {
    let lm = live.get(m.name);
    if (lm === undefined) {
      lm = { shape: m, series: new Map() };
      live.set(m.name, lm);
    } else if (!sameShape(lm.shape, m)) {
      return `${m.name}: a delta changed the metric's type, labels or buckets`;
    }
    for (const s of m.series) lm.series.set(seriesKey(s.labels), s);
  }
  return undefined;
}

function* metricsOf(live: LiveSnapshot): Generator<MetricSnapshot> {
  for (const { shape, series } of live.values()) yield { ...shape, series: [...series.values()] };
}

export class MetricsLedger {
  /** Counters and histograms of finished generations, summed. */
  private readonly finished = new Registry();
  private readonly live = new Map<number, LiveSnapshot>();

  /**
   * @param owned names the supervisor reports itself (degraded, restarts, build info): an
   * engine's copies of them are ignored.
   */
  constructor(private readonly owned: ReadonlySet<string>) {}

  /** A full snapshot of a live engine: replaces what the ledger held for it. */
  update(generation: number, snap: RegistrySnapshot): void {
    const live: LiveSnapshot = new Map();
    patchInto(live, snap);
    this.live.set(generation, live);
  }

  /**
   * Changed series of a live engine (absolute values) on top of its last full snapshot. Returns
   * what is wrong (no full snapshot before it, a metric whose shape changed) or undefined.
   */
  patch(generation: number, delta: RegistrySnapshot): string | undefined {
    const live = this.live.get(generation);
    if (live === undefined) return 'a metrics delta before any full snapshot';
    return patchInto(live, delta);
  }

  /** The generation ended: fold its last snapshot (final, or last heartbeat) into the totals. */
  retire(generation: number): void {
    const snap = this.live.get(generation);
    this.live.delete(generation);
    if (snap === undefined) return;
    for (const m of metricsOf(snap)) {
      if (m.type !== 'gauge' && !this.owned.has(m.name)) mergeMetric(this.finished, m);
    }
  }

  /** `own` (the supervisor's registry) first, then everything the engines counted. */
  render(own: Registry): string {
    const out = new Registry();
    for (const m of own.snapshot().metrics) mergeMetric(out, m);
    for (const m of this.finished.snapshot().metrics) mergeMetric(out, m);
    for (const g of [...this.live.keys()].sort((a, b) => a - b)) {
      const snap = this.live.get(g);
      if (snap === undefined) continue;
      for (const m of metricsOf(snap)) if (!this.owned.has(m.name)) mergeMetric(out, m);
    }
    return out.render();
  }
}
