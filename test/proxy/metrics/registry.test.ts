import { describe, expect, it } from 'vitest';
import { DeltaMark, Registry, escapeLabel } from '../../../proxy/src/metrics/registry.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { METRICS, VERSION } from '../../../proxy/src/contract.js';

/** A strict parser of the text format 0.0.4 lines we emit: fails on anything malformed. */
function parse(text: string): {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: [string, Record<string, string>, number][];
} {
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: [string, Record<string, string>, number][] = [];
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      help.set(m[1] as string, m[2] as string);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (m) {
      type.set(m[1] as string, m[2] as string);
      continue;
    }
    m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(
        line,
      );
    if (!m) throw new Error(`malformed line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const p of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[p[1] as string] = (p[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push([m[1] as string, labels, Number(m[3])]);
  }
  return { help, type, samples };
}

describe('metrics registry', () => {
  it('renders counters, gauges and histograms with HELP/TYPE in the 0.0.4 text format', () => {
    const r = new Registry();
    const c = r.counter('t_requests_total', 'Requests.\nSecond line with \\ backslash', ['code']);
    c.child('200').inc();
    c.child('200').inc(2);
    c.child('500').inc();
    r.gauge('t_active', 'Active.').child().set(4);
    const h = r.histogram('t_seconds', 'Durations.', ['dir'], [0.1, 1]);
    h.child('in').observe(0.05);
    h.child('in').observe(0.5);
    h.child('in').observe(5);
    const { help, type, samples } = parse(r.render());
    expect(help.get('t_requests_total')).toBe('Requests.\\nSecond line with \\\\ backslash');
    expect(type.get('t_seconds')).toBe('histogram');
    const val = (name: string, labels: Record<string, string>) =>
      samples.find(([n, l]) => n === name && JSON.stringify(l) === JSON.stringify(labels))?.[2];
    expect(val('t_requests_total', { code: '200' })).toBe(3);
    expect(val('t_requests_total', { code: '500' })).toBe(1);
    expect(val('t_active', {})).toBe(4);
    expect(val('t_seconds_bucket', { dir: 'in', le: '0.1' })).toBe(1);
    expect(val('t_seconds_bucket', { dir: 'in', le: '1' })).toBe(2);
    expect(val('t_seconds_bucket', { dir: 'in', le: '+Inf' })).toBe(3);
    expect(val('t_seconds_count', { dir: 'in' })).toBe(3);
    expect(val('t_seconds_sum', { dir: 'in' })).toBeCloseTo(5.55);
  });

  it('escapes label values (backslash, quote, newline)', () => {
    expect(escapeLabel('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const r = new Registry();
    r.counter('t_total', 'x', ['v']).child('a\\b"c\nd').inc();
    const { samples } = parse(r.render());
    expect(samples[0]?.[1]).toEqual({ v: 'a\\b"c\nd' });
  });

  it('rejects invalid names, wrong label arity and non-increasing buckets', () => {
    const r = new Registry();
    expect(() => r.counter('bad-name', 'x')).toThrow(/invalid metric name/);
    expect(() => r.counter('t_total', 'x', ['a']).child()).toThrow(/expected 1 label values/);
    expect(() => r.histogram('t_h', 'x', [], [1, 1])).toThrow(/increase/);
    expect(() => r.counter('t_total', 'again')).toThrow(/registered twice/);
  });

  it('snapshots to plain JSON and merges, keeping counters continuous across registries', () => {
    const old = new ProxyMetrics();
    old.inbound.requests(200).inc(5);
    old.inbound.duration.observe(0.002);
    old.inbound.active.inc(2);
    const snap = JSON.parse(JSON.stringify(old.registry.snapshot())) as ReturnType<Registry['snapshot']>;
    const next = new ProxyMetrics();
    next.inbound.requests(200).inc(1);
    next.registry.merge(snap);
    const { samples } = parse(next.registry.render());
    const val = (name: string, labels: Record<string, string>) =>
      samples.find(([n, l]) => n === name && Object.entries(labels).every(([k, v]) => l[k] === v))?.[2];
    expect(val(METRICS.requestsTotal, { direction: 'inbound', status_code: '200' })).toBe(6);
    expect(val(`${METRICS.requestDuration}_count`, { direction: 'inbound' })).toBe(1);
    // Gauges describe the live process: not merged.
    expect(val(METRICS.tcpActive, { direction: 'inbound' })).toBe(0);
    expect(val(METRICS.buildInfo, {})).toBe(1);
  });

  it('changed(mark): every series the first time, then only the ones that moved, absolute values', () => {
    const r = new Registry();
    const hits = r.counter('hits_total', 'hits', ['k']);
    hits.child('a').inc(2);
    hits.child('b').inc(1);
    const level = r.gauge('level', 'level').child();
    level.set(4);
    const lat = r.histogram('lat_seconds', 'latency', [], [0.1, 1]).child();
    lat.observe(0.5);
    r.counter('never_total', 'registered, never counted', ['k']);
    const mark = new DeltaMark();
    const first = r.changed(mark);
    // the first call is the whole registry, a metric without series included
    expect(first).toEqual(r.snapshot());
    expect(r.changed(mark)).toEqual({ metrics: [] });
    hits.child('b').inc(3);
    lat.observe(0); // sum unchanged, one more observation: still a change
    level.set(4); // same value: not a change
    const d = r.changed(mark);
    expect(d.metrics.map((m) => [m.name, m.series])).toEqual([
      ['hits_total', [{ labels: ['b'], value: 4 }]],
      ['lat_seconds', [{ labels: [], value: 0.5, buckets: [1, 1, 0] }]],
    ]);
    expect(d.metrics[1]?.bucketBounds).toEqual([0.1, 1]);
    // another reader has its own mark: it still gets everything
    expect(r.changed(new DeltaMark()).metrics).toHaveLength(4);
  });

  it('exposes the engine series with bounded labels', () => {
    const m = new ProxyMetrics();
    m.outbound.requests(99999).inc();
    const { type, samples } = parse(m.registry.render());
    for (const name of [
      METRICS.requestsTotal,
      METRICS.requestDuration,
      METRICS.tcpOpened,
      METRICS.tcpActive,
      METRICS.tcpBytes,
      METRICS.buildInfo,
      METRICS.proxyDegraded,
      METRICS.engineRestarts,
    ]) {
      expect(type.has(name), name).toBe(true);
    }
    expect(samples.find(([n]) => n === METRICS.buildInfo)?.[1]).toEqual({
      version: VERSION,
      node: process.version,
    });
    expect(samples.find(([n]) => n === METRICS.proxyDegraded)?.[2]).toBe(0);
    // An out-of-range status from an upstream is clamped into one bucket label.
    expect(
      samples.find(([n, l]) => n === METRICS.requestsTotal && l.direction === 'outbound')?.[1].status_code,
    ).toBe('0');
  });
});
