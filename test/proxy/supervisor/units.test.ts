/** The supervisor's pure parts: metrics ledger, IPC validation, upgrade body, token, config. */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ENV, METRICS } from '../../../proxy/src/contract.js';
import type { ConfigError } from '../../../proxy/src/errors.js';
import { DeltaMark, Registry } from '../../../proxy/src/metrics/registry.js';
import type { Counter, MetricSnapshot } from '../../../proxy/src/metrics/registry.js';
import { checkOverrides, parseSupervisorConfig } from '../../../proxy/src/supervisor/config.js';
import { IpcProtocolError, UpgradeRequestError } from '../../../proxy/src/supervisor/errors.js';
import { parseUpgradeBody } from '../../../proxy/src/supervisor/http.js';
import { parseFromEngine, parseToEngine } from '../../../proxy/src/supervisor/ipc.js';
import { MetricsLedger } from '../../../proxy/src/supervisor/ledger.js';
import { bearerMatches, loadOrCreateToken } from '../../../proxy/src/supervisor/token.js';

const dir = mkdtempSync(join(tmpdir(), 'remora-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function engineRegistry(requests: number, active: number, buckets = [0.1, 1]): Registry {
  const r = new Registry();
  r.counter(METRICS.requestsTotal, 'requests', ['direction']).child('inbound').inc(requests);
  r.gauge(METRICS.tcpActive, 'active', ['direction']).child('inbound').set(active);
  r.histogram(METRICS.requestDuration, 'duration', ['direction'], buckets).child('inbound').observe(0.05);
  r.gauge(METRICS.proxyDegraded, 'engine copy').child().set(0);
  return r;
}

function value(text: string, line: string): number {
  const m = new RegExp(`^${line.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m === null ? NaN : Number(m[1]);
}

describe('MetricsLedger', () => {
  const own = new Registry();
  own.gauge(METRICS.proxyDegraded, 'supervisor').child().set(1);

  it('keeps counters and histograms of finished generations, gauges only of live ones', () => {
    const ledger = new MetricsLedger(new Set([METRICS.proxyDegraded]));
    ledger.update(1, engineRegistry(10, 3).snapshot());
    ledger.retire(1);
    ledger.update(2, engineRegistry(4, 2).snapshot());
    ledger.update(3, engineRegistry(1, 5).snapshot());
    const text = ledger.render(own);
    expect(value(text, 'remora_requests_total{direction="inbound"}')).toBe(15);
    expect(value(text, 'remora_tcp_connections_active{direction="inbound"}')).toBe(7);
    expect(value(text, 'remora_request_duration_seconds_count{direction="inbound"}')).toBe(3);
    // the engine's own copy of a supervisor-owned metric is ignored
    expect(value(text, 'remora_proxy_degraded')).toBe(1);
  });

  it('a generation with different buckets does not break the rest', () => {
    const ledger = new MetricsLedger(new Set());
    ledger.update(1, engineRegistry(2, 0).snapshot());
    ledger.retire(1);
    ledger.update(2, engineRegistry(3, 1, [0.5]).snapshot());
    const text = ledger.render(new Registry());
    expect(value(text, 'remora_requests_total{direction="inbound"}')).toBe(5);
    expect(value(text, 'remora_request_duration_seconds_count{direction="inbound"}')).toBe(1);
  });

  it('patches a live engine with deltas of changed series (absolute values) and retires the patched numbers', () => {
    const ledger = new MetricsLedger(new Set());
    const r = engineRegistry(10, 3);
    const mark = new DeltaMark();
    ledger.update(1, r.changed(mark));
    (r.get(METRICS.requestsTotal) as Counter).child('inbound').inc(5);
    r.counter('remora_new_total', 'registered after the first heartbeat').child().inc(2);
    const delta = r.changed(mark);
    // only what moved: the request counter and the new metric, not the gauge or the histogram
    expect(delta.metrics.map((m) => m.name)).toEqual([METRICS.requestsTotal, 'remora_new_total']);
    expect(ledger.patch(1, delta)).toBeUndefined();
    expect(ledger.patch(1, delta)).toBeUndefined(); // absolute values: applying twice is harmless
    let text = ledger.render(new Registry());
    expect(value(text, 'remora_requests_total{direction="inbound"}')).toBe(15);
    expect(value(text, 'remora_tcp_connections_active{direction="inbound"}')).toBe(3);
    expect(value(text, 'remora_request_duration_seconds_count{direction="inbound"}')).toBe(1);
    expect(value(text, 'remora_new_total')).toBe(2);
    ledger.retire(1);
    ledger.update(2, engineRegistry(1, 0).snapshot());
    text = ledger.render(new Registry());
    expect(value(text, 'remora_requests_total{direction="inbound"}')).toBe(16);
    expect(value(text, 'remora_new_total')).toBe(2);
  });

  it('refuses a delta before any full snapshot, and one that changes the shape of a metric', () => {
    const ledger = new MetricsLedger(new Set());
    const r = engineRegistry(1, 0);
    expect(ledger.patch(1, r.snapshot())).toMatch(/delta before any full snapshot/);
    ledger.update(1, r.snapshot());
    const reshaped = { metrics: [{ ...r.snapshot().metrics[0]!, type: 'gauge' as const }] };
    expect(ledger.patch(1, reshaped)).toMatch(/remora_requests_total: a delta changed/);
    const relabelled = { metrics: [{ ...r.snapshot().metrics[0]!, labelNames: ['other'] }] };
    expect(ledger.patch(1, relabelled)).toMatch(/changed the metric's type, labels or buckets/);
    // what it had stands
    expect(value(ledger.render(new Registry()), 'remora_requests_total{direction="inbound"}')).toBe(1);
  });

  it('retiring an engine that never reported changes nothing', () => {
    const ledger = new MetricsLedger(new Set());
    ledger.retire(7);
    expect(ledger.render(new Registry())).toBe('');
  });
});

describe('IPC messages', () => {
  it('validates what engines send', () => {
    expect(parseFromEngine({ t: 'ready' })).toEqual({ t: 'ready' });
    expect(parseFromEngine({ t: 'loaded' })).toEqual({ t: 'loaded' });
    expect(parseFromEngine({ t: 'fatal', reason: 'x' })).toEqual({ t: 'fatal', reason: 'x' });
    expect(() => parseFromEngine({ t: 'heartbeat', metrics: { metrics: [{ name: 1 }] } })).toThrow(
      IpcProtocolError,
    );
    expect(() => parseFromEngine({ t: 'hello' })).toThrow(/unknown message type "hello"/);
  });

  it('validates heartbeats strictly: delta flag, status, every series', () => {
    const snap = engineRegistry(3, 1).snapshot();
    expect(parseFromEngine({ t: 'heartbeat', metrics: snap, delta: true })).toEqual({
      t: 'heartbeat',
      metrics: snap,
      delta: true,
    });
    // an older engine: no delta flag, a whole snapshot
    expect(parseFromEngine({ t: 'heartbeat', metrics: snap, status: { a: 1 } })).toEqual({
      t: 'heartbeat',
      metrics: snap,
      status: { a: 1 },
    });
    expect(() => parseFromEngine({ t: 'heartbeat', metrics: snap, delta: 'yes' })).toThrow(
      /delta must be true or absent, got "yes"/,
    );
    expect(() => parseFromEngine({ t: 'heartbeat', metrics: snap, delta: false })).toThrow(IpcProtocolError);
    expect(() => parseFromEngine({ t: 'heartbeat', metrics: snap, status: [1] })).toThrow(
      /status must be an object/,
    );
    const [counter, gauge, histogram] = snap.metrics as [MetricSnapshot, MetricSnapshot, MetricSnapshot];
    const bad: MetricSnapshot[] = [
      { ...counter, series: [{ labels: [], value: 1 }] }, // one label name, no value
      { ...counter, series: [{ labels: ['inbound'], value: '1' as unknown as number }] },
      { ...gauge, series: [{ labels: [7 as unknown as string], value: 1 }] },
      { ...histogram, series: [{ labels: ['inbound'], value: 1, buckets: [1] }] }, // 2 bounds: 3 counts
      { ...histogram, bucketBounds: undefined },
      { ...counter, help: undefined as unknown as string },
    ];
    for (const m of bad)
      expect(() => parseFromEngine({ t: 'heartbeat', metrics: { metrics: [m] }, delta: true })).toThrow(
        /heartbeat: malformed metrics snapshot/,
      );
    expect(() => parseFromEngine({ t: 'drained', metrics: { metrics: [bad[0]] } })).toThrow(
      /drained: malformed metrics snapshot/,
    );
    expect(() => parseFromEngine('ready')).toThrow(/without a type/);
  });

  it('validates what the supervisor sends', () => {
    const start = {
      t: 'start',
      generation: 2,
      version: 'v2',
      fds: { inbound: 4, outbound: 5 },
      backlog: 4096,
      heartbeatMs: 1000,
    };
    expect(parseToEngine(start)).toEqual(start);
    expect(() => parseToEngine({ ...start, fds: { health: 4 } })).toThrow(/bad listener "health"/);
    expect(() => parseToEngine({ t: 'drain', deadlineMs: -1 })).toThrow(/deadlineMs/);
    expect(parseToEngine({ t: 'snapshot' })).toEqual({ t: 'snapshot' });
  });
});

describe('upgrade request body', () => {
  it('empty means same version, same config', () => {
    expect(parseUpgradeBody('')).toEqual({});
    expect(parseUpgradeBody('{"version":"v2","config":{"logLevel":"debug"}}')).toEqual({
      version: 'v2',
      config: { logLevel: 'debug' },
    });
  });
  it('names every problem', () => {
    try {
      parseUpgradeBody('{"version":2,"config":[],"x":1}');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UpgradeRequestError);
      expect((err as UpgradeRequestError).errors).toEqual([
        'unknown field "x" (expected version, config)',
        'version must be a string',
        'config must be a JSON object of config-file fields',
      ]);
    }
  });
});

describe('admin token', () => {
  it('is created with mode 0600 when absent, then read back', () => {
    const path = join(dir, 'sub', 'token');
    const t = loadOrCreateToken(path);
    expect(t.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim()).toBe(t.token);
    expect(loadOrCreateToken(path)).toMatchObject({ token: t.token, created: false, warning: undefined });
  });
  it('warns when others can read it, refuses a short one', () => {
    const path = join(dir, 'open-token');
    writeFileSync(path, 'a'.repeat(32), { mode: 0o644 });
    expect(loadOrCreateToken(path).warning).toMatch(/readable by group or others/);
    writeFileSync(path, 'short');
    expect(() => loadOrCreateToken(path)).toThrow(/fewer than 16/);
  });
  it('bearer check', () => {
    expect(bearerMatches('Bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('bearer  abc ', 'abc')).toBe(true);
    expect(bearerMatches('Bearer abd', 'abc')).toBe(false);
    expect(bearerMatches('Basic abc', 'abc')).toBe(false);
    expect(bearerMatches(undefined, 'abc')).toBe(false);
  });
});

describe('supervisor config', () => {
  it('defaults, env over file, every error listed', () => {
    const c = parseSupervisorConfig({});
    expect(c).toMatchObject({
      engineWaitMs: 10_000,
      engineReadyMs: 15_000,
      restartGraceMs: 10_000,
      bundleRoot: undefined,
    });
    const f = parseSupervisorConfig(
      { [ENV.engineWaitSeconds]: '0.5' },
      JSON.stringify({ engineWaitSeconds: 3, restartGraceSeconds: 2 }),
    );
    expect(f).toMatchObject({ engineWaitMs: 500, restartGraceMs: 2000 });
    try {
      parseSupervisorConfig({
        [ENV.engineReadySeconds]: '0',
        [ENV.restartGraceSeconds]: 'x',
        [ENV.failureMode]: 'y',
      });
      expect.unreachable();
    } catch (err) {
      const text = (err as ConfigError).errors.join('\n');
      expect(text).toMatch(/REMORA_ENGINE_READY_SECONDS: must be more than 0/);
      expect(text).toMatch(/REMORA_RESTART_GRACE_SECONDS: not a number/);
      expect(text).toMatch(/REMORA_FAILURE_MODE/);
    }
  });
  it('upgrade overrides become env for the new engine; supervisor-owned fields are refused', () => {
    expect(checkOverrides({}, undefined, { logLevel: 'debug', drainSeconds: 3 })).toEqual({
      [ENV.logLevel]: 'debug',
      [ENV.drainSeconds]: '3',
    });
    expect(() => checkOverrides({}, undefined, { failureMode: 'degrade' })).toThrow(
      /belongs to the supervisor/,
    );
    expect(() => checkOverrides({}, undefined, { drainSeconds: { a: 1 } })).toThrow(
      /must be a string, number or boolean/,
    );
  });
});
