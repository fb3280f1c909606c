// Debian's Prometheus server, started here with a generated config, scrapes a running sidecar
// (explicit mode on loopback, no root); after known traffic, PromQL through its HTTP API returns
// the expected series and values.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, METRICS } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { closedPort, get, startRecordingApp, startSidecar } from '../proxy/telemetry/sidecar.js';
import type { RecordingApp, Sidecar } from '../proxy/telemetry/sidecar.js';

const skip = missingPrerequisite({ tools: ['prometheus'] });
const MONITORING = fileURLToPath(new URL('../../deploy/monitoring/', import.meta.url));
const RULES = join(MONITORING, 'remora-rules.yaml');

/** Every PromQL expression of the dashboard, with Grafana's variables given values. */
function dashboardQueries(): { title: string; expr: string }[] {
  interface Panel {
    title?: string;
    targets?: { expr: string }[];
    panels?: Panel[];
  }
  const dash = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as {
    panels: Panel[];
  };
  const out: { title: string; expr: string }[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      for (const t of p.targets ?? [])
        out.push({
          title: p.title ?? '',
          expr: t.expr
            .replaceAll('$__rate_interval', '1m')
            .replaceAll('$namespace', '.*')
            .replaceAll('$workload', '.*'),
        });
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  return out;
}

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip !== undefined)(`Prometheus scrapes a sidecar ${skip ?? ''}`, () => {
  let app: RecordingApp;
  let proxy: Sidecar;
  let prom: ChildProcess | undefined;
  let promPort = 0;
  let promLog = '';
  let dir = '';

  async function query(q: string): Promise<PromResult[]> {
    const r = await get(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = JSON.parse(r.body) as {
      status: string;
      data?: { resultType: string; result: PromResult[] };
      error?: string;
    };
    if (body.status !== 'success' || body.data === undefined) throw new Error(`PromQL ${q}: ${r.body}`);
    return body.data.result;
  }

  /** Waits until `q` returns a single sample equal to `want` (Prometheus scrapes every 1 s). */
  async function expectValue(q: string, want: number, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    let last: PromResult[] = [];
    for (;;) {
      last = await query(q).catch(() => []);
      if (last.length === 1 && Number(last[0]?.value[1]) === want) return;
      if (Date.now() > end) {
        throw new Error(
          `${q}: wanted ${want}, got ${JSON.stringify(last)}\nprometheus log:\n${promLog.slice(-2000)}`,
        );
      }
      await sleep(250);
    }
  }

  beforeAll(async () => {
    app = await startRecordingApp();
    proxy = await startSidecar({
      [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
      [ENV.workload]: 'reviews',
      [ENV.podNamespace]: 'shop',
      [ENV.accessLog]: 'off',
    });
    dir = mkdtempSync(join(tmpdir(), 'remora-prom-'));
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        // The alerts as shipped: Prometheus itself must load and evaluate them.
        'rule_files:',
        `  - ${RULES}`,
        'scrape_configs:',
        '  - job_name: remora-sidecar',
        '    metrics_path: /metrics',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${proxy.ports.metrics}']`,
        '',
      ].join('\n'),
    );
    promPort = await closedPort();
    prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prom.stdout?.on('data', (c: Buffer) => (promLog += c.toString()));
    prom.stderr?.on('data', (c: Buffer) => (promLog += c.toString()));
    const end = Date.now() + 20_000;
    for (;;) {
      const r = await get(`http://127.0.0.1:${promPort}/-/ready`).catch(() => undefined);
      if (r?.status === 200) break;
      if (prom.exitCode !== null || Date.now() > end)
        throw new Error(`prometheus did not start:\n${promLog}`);
      await sleep(100);
    }
  });

  afterAll(async () => {
    if (prom?.pid !== undefined && prom.exitCode === null) {
      const exited = new Promise<void>((r) => prom?.once('exit', () => r()));
      process.kill(prom.pid, 'SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (prom.exitCode === null && prom.signalCode === null) process.kill(prom.pid, 'SIGKILL');
    }
    await proxy?.stop();
    await app?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('the target is up', async () => {
    await expectValue('up{job="remora-sidecar"}', 1);
  });

  it('after 25 requests answered 200 and 5 answered 503, PromQL returns exactly those counts', async () => {
    for (let i = 0; i < 25; i++)
      expect((await get(`http://127.0.0.1:${proxy.ports.inbound}/ok/${i}`)).status).toBe(200);
    for (let i = 0; i < 5; i++)
      expect((await get(`http://127.0.0.1:${proxy.ports.inbound}/status/503`)).status).toBe(503);
    await expectValue(`sum(${METRICS.requestsTotal}{status_code="200"})`, 25);
    await expectValue(`sum(${METRICS.requestsTotal}{status_code="503"})`, 5);
    await expectValue(
      `sum(${METRICS.requestsTotal}{direction="inbound", destination_workload="reviews", destination_namespace="shop"})`,
      30,
    );
    await expectValue(`sum(${METRICS.requestDuration}_count{direction="inbound"})`, 30);
    // No series carries a raw path: the 30 distinct paths left no label behind.
    const series = await query(`{__name__=~"remora_.*"}`);
    expect(series.length).toBeGreaterThan(0);
    for (const s of series) expect(JSON.stringify(s.metric)).not.toContain('/ok/');
  });

  it('latency quantiles come out of the histogram (not NaN: the buckets were scraped)', async () => {
    const r = await query(
      `histogram_quantile(0.99, sum by (le) (${METRICS.requestDuration}_bucket{direction="inbound"}))`,
    );
    expect(r).toHaveLength(1);
    const p99 = Number(r[0]?.value[1]);
    expect(Number.isFinite(p99)).toBe(true);
    expect(p99).toBeGreaterThan(0);
  });

  it('the health gauges the dashboard reads are scraped: degraded 0, active connections present', async () => {
    await expectValue(`sum(${METRICS.proxyDegraded})`, 0);
    await expectValue(`count(${METRICS.tcpActive}{direction="inbound"})`, 1);
  });

  it('the build info series names this version', async () => {
    const r = await query(METRICS.buildInfo);
    expect(r[0]?.metric.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('Prometheus loaded the shipped alerts and evaluates them without error', async () => {
    const end = Date.now() + 20_000;
    let groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] = [];
    for (;;) {
      const r = await get(`http://127.0.0.1:${promPort}/api/v1/rules`);
      groups = (JSON.parse(r.body) as { data: { groups: typeof groups } }).data.groups;
      const rules = groups.flatMap((g) => g.rules);
      if (rules.length > 0 && rules.every((x) => x.health === 'ok')) break;
      if (Date.now() > end) throw new Error(`rules not healthy: ${JSON.stringify(groups)}`);
      await sleep(250);
    }
    expect(groups.map((g) => g.name).sort()).toEqual(['remora-proxy', 'remora-traffic']);
    expect(groups.flatMap((g) => g.rules)).toHaveLength(5);
  });

  it('every dashboard panel query runs against the real Prometheus; the golden signals and the sidecar cost have data', async () => {
    // Traffic of its own, so this test does not lean on the ones above.
    for (let i = 0; i < 10; i++)
      expect((await get(`http://127.0.0.1:${proxy.ports.inbound}/panel/${i}`)).status).toBe(200);
    await expectValue(`count(${METRICS.requestsTotal}{direction="inbound", status_code="200"}) > 0`, 1);
    await sleep(2500); // two more scrapes, so rate() over 1m has two samples after the traffic
    const results: string[] = [];
    const empty = new Set<string>();
    for (const q of dashboardQueries()) {
      const r = await query(q.expr); // throws on a PromQL error
      results.push(`${r.length} series · ${q.title} · ${q.expr}`);
      if (r.length === 0) empty.add(q.title);
    }
    // No injector, policy, mesh, gRPC or outbound traffic here: those panels may be empty; these may not.
    for (const title of [
      'Request rate',
      'Latency p50 / p99',
      'Active TCP connections',
      'Degraded proxies (L4 stand-in)',
      'Proxy versions',
      'Callers of this workload (inbound, by verified identity)',
      'HTTP status classes (inbound)',
      'CPU by process',
      'Memory per pod: PSS (what the pod pays) and RSS',
      'V8 heap used by process',
      'Event-loop delay p50 / p99',
      'Open file descriptors and connections',
    ])
      expect(empty.has(title), `${title} has data`).toBe(false);
    const out = process.env.REMORA_TELEMETRY_EXAMPLES;
    if (out !== undefined && out !== '')
      writeFileSync(join(out, 'panel-queries.txt'), `${results.join('\n')}\n`);
  });
});
