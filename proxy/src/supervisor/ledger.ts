/**
 * Metrics across engine generations (issue 6: counters do not reset on a restart). Every engine
 * heartbeat carries its whole registry snapshot (metrics/registry.ts), and one more comes when
 * it exits cleanly. The ledger keeps the sum over finished generations plus the latest snapshot
 * of every live engine: counters and histograms add up across generations, gauges only over
 * live engines (a dead engine's connections are gone). An engine killed with SIGKILL loses at
 * most one heartbeat period of increments; counters never go backwards.
 */
import { Gauge, Registry } from '../metrics/registry.js';
import type { MetricSnapshot, RegistrySnapshot } from '../metrics/registry.js';

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural check of a snapshot that came over IPC (from our own child, so shallow). */
export function isRegistrySnapshot(v: unknown): v is RegistrySnapshot {
  if (!isObj(v) || !Array.isArray(v.metrics)) return false;
  return v.metrics.every(
    (m: unknown) =>
      isObj(m) &&
      typeof m.name === 'string' &&
      (m.type === 'counter' || m.type === 'gauge' || m.type === 'histogram') &&
      Array.isArray(m.series) &&
      Array.isArray(m.labelNames),
  );
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

export class MetricsLedger {
  /** Counters and histograms of finished generations, summed. */
  private readonly finished = new Registry();
  private readonly live = new Map<number, RegistrySnapshot>();

  /**
   * @param owned names the supervisor reports itself (degraded, restarts, build info): an
   * engine's copies of them are ignored.
   */
  constructor(private readonly owned: ReadonlySet<string>) {}

  update(generation: number, snap: RegistrySnapshot): void {
    this.live.set(generation, snap);
  }

  /** The generation ended: fold its last snapshot (final, or last heartbeat) into the totals. */
  retire(generation: number): void {
    const snap = this.live.get(generation);
    this.live.delete(generation);
    if (snap === undefined) return;
    for (const m of snap.metrics) {
      if (m.type !== 'gauge' && !this.owned.has(m.name)) mergeMetric(this.finished, m);
    }
  }

  /** `own` (the supervisor's registry) first, then everything the engines counted. */
  render(own: Registry): string {
    const out = new Registry();
    for (const m of own.snapshot().metrics) mergeMetric(out, m);
    for (const m of this.finished.snapshot().metrics) mergeMetric(out, m);
    for (const g of [...this.live.keys()].sort((a, b) => a - b)) {
      for (const m of this.live.get(g)?.metrics ?? []) if (!this.owned.has(m.name)) mergeMetric(out, m);
    }
    return out.render();
  }
}
