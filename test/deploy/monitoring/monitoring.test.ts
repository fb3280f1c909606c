import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { INJECTOR_METRICS, METRICS, PORTS, PROXY_CONTAINER_NAME } from '../../../proxy/src/contract.js';
import { InjectorMetrics } from '../../../injector/src/webhook/metrics.js';
import { PROCESS_METRICS, registerProcessMetrics } from '../../../proxy/src/metrics/process.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { registerTraceCounters } from '../../../proxy/src/telemetry/metrics.js';
import { MeshMetrics } from '../../../proxy/src/tunnel/metrics.js';
import { missingPrerequisite } from '../../helpers/env.js';

const DIR = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));

/** Labels Prometheus adds at scrape time (deploy/monitoring/prometheus-scrape.yaml + defaults). */
const SCRAPE_LABELS = new Set(['namespace', 'pod', 'node', 'app', 'job', 'instance']);

/**
 * Labels a panel may already query although no series carries them yet (none now: `grpc_status`
 * is on remora_requests_total since the HTTP/2 stage, docs/grpc.md).
 */
const FUTURE_LABELS = new Set<string>();

/** Matches every metric name the dashboard and the rules may use (ours and the process set). */
const METRIC_NAME = /\b(?:remora_|process_|nodejs_)[a-z0-9_]+/g;

/**
 * Every series the proxy (engine and supervisor) and the injector register, with its label
 * names (histograms also get `le`): from the real registries and the injector's real output.
 */
function exposedSeries(): Map<string, Set<string>> {
  const pm = new ProxyMetrics();
  registerTraceCounters(pm.registry);
  new MeshMetrics(pm.registry);
  PolicyMetrics.of(pm.registry);
  registerProcessMetrics(pm.registry, 'engine');
  const out = new Map<string, Set<string>>();
  for (const m of pm.registry.snapshot().metrics) {
    out.set(m.name, new Set([...m.labelNames, ...(m.type === 'histogram' ? ['le'] : [])]));
  }
  // The injector renders its own text: take names and labels from it, histograms by their TYPE.
  const injector = new InjectorMetrics();
  injector.observeCa({
    stats: { issued: 1, refused: { token_refused: 1 } },
    streams: { open: 1, refused: { no_client_certificate: 1 }, slowClosed: 1 },
  });
  injector.skip('opted_out');
  const text = injector.render();
  const histograms = new Set([...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1] as string));
  for (const m of text.matchAll(/^([a-z_]+)(?:\{([^}]*)\})? \S+$/gm)) {
    const raw = m[1] as string;
    const base = raw.replace(/_(bucket|sum|count)$/, '');
    const name = histograms.has(base) ? base : raw;
    const labels = out.get(name) ?? new Set<string>(histograms.has(base) ? ['le'] : []);
    for (const l of (m[2] ?? '').matchAll(/([a-z_]+)="/g)) labels.add(l[1] as string);
    out.set(name, labels);
  }
  return out;
}

interface Panel {
  title?: string;
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

function exprsOf(dash: { panels: Panel[]; templating: { list: { query?: unknown }[] } }): string[] {
  const out: string[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      for (const t of p.targets ?? []) out.push(t.expr);
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating.list) {
    const q = v.query as { query?: string } | string | undefined;
    const s = typeof q === 'string' ? q : q?.query;
    if (s !== undefined && s.includes('remora_')) out.push(s);
  }
  return out;
}

/** `remora_x_bucket` → `remora_x`. */
function baseName(series: string, known: Map<string, Set<string>>): string {
  if (known.has(series)) return series;
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  return m && known.has(m[1] as string) ? (m[1] as string) : series;
}

describe('deploy/monitoring/grafana-dashboard.json', () => {
  const dash = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as Parameters<
    typeof exprsOf
  >[0];
  const exprs = exprsOf(dash);
  const known = exposedSeries();

  it('has the golden signals and the proxy health panels', () => {
    const all = exprs.join('\n');
    for (const name of [
      METRICS.requestsTotal,
      `${METRICS.requestDuration}_bucket`,
      METRICS.tcpActive,
      METRICS.proxyDegraded,
      METRICS.engineRestarts,
      METRICS.certExpiry,
    ]) {
      expect(all).toContain(name);
    }
    expect(all).toContain('histogram_quantile(0.99');
    expect(all).toContain('histogram_quantile(0.5');
  });

  it('every PromQL expression names only series the proxy, its supervisor or the injector exposes', () => {
    expect(exprs.length).toBeGreaterThan(40);
    checkNames(exprs, known);
  });

  it('every label a selector or aggregation uses exists on the series it is used with', () => {
    checkLabels(exprs, known);
  });

  it('has the service graph, policy, resilience, injector, gRPC and sidecar-cost panels', () => {
    const all = exprs.join('\n');
    for (const name of [
      METRICS.policyDenials,
      METRICS.retries,
      METRICS.retryBudgetExhausted,
      METRICS.rateLimited,
      METRICS.circuitOpen,
      METRICS.outlierEjections,
      METRICS.peerOverflow,
      INJECTOR_METRICS.reviewsTotal,
      INJECTOR_METRICS.certificatesIssued,
      PROCESS_METRICS.pss,
      PROCESS_METRICS.cpu,
      PROCESS_METRICS.lagP99,
    ])
      expect(all, name).toContain(name);
    expect(all).toContain('protocol="grpc"');
    // The edge table: rate, success, p50 and p99 by source and destination.
    const edges = exprs.filter((e) =>
      e.includes('by (source_namespace, source_workload, destination_service'),
    );
    expect(edges.length).toBeGreaterThanOrEqual(2);
    expect(exprs.some((e) => e.includes('histogram_quantile(0.99, sum by (le, source_namespace'))).toBe(true);
  });
});

/** Every metric name in `exprs` is one a registry defines. */
function checkNames(exprs: readonly string[], known: Map<string, Set<string>>): void {
  for (const e of exprs) {
    const names = e.match(METRIC_NAME) ?? [];
    expect(names.length, e).toBeGreaterThan(0);
    for (const n of names) expect(known.has(baseName(n, known)), `${n} in: ${e}`).toBe(true);
  }
}

/** Every label matched or aggregated by in `exprs` exists on the series it is used with. */
function checkLabels(exprs: readonly string[], known: Map<string, Set<string>>): void {
  for (const e of exprs) {
    const seriesLabels = new Set<string>([...SCRAPE_LABELS, ...FUTURE_LABELS]);
    // Selectors: remora_x{a="..", b=~".."}
    for (const m of e.matchAll(/\b((?:remora_|process_|nodejs_)[a-z0-9_]+)(\{([^}]*)\})?/g)) {
      const b = baseName(m[1] as string, known);
      const labels = known.get(b);
      if (labels === undefined) continue; // checkNames fails for it
      for (const l of labels) seriesLabels.add(l);
      for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
        const label = lm[1] as string;
        expect(
          labels.has(label) || SCRAPE_LABELS.has(label) || FUTURE_LABELS.has(label),
          `label ${label} on ${b} in: ${e}`,
        ).toBe(true);
      }
    }
    // Aggregations: sum by (a, b) (...)
    for (const m of e.matchAll(/\bby\s*\(([^)]*)\)/g)) {
      for (const l of (m[1] as string).split(',').map((x) => x.trim())) {
        expect(seriesLabels.has(l), `by (${l}) in: ${e}`).toBe(true);
      }
    }
  }
}

const RULES = join(DIR, 'remora-rules.yaml');
const CR = join(DIR, 'prometheus-rule.yaml');
const PROMTOOL_TESTS = fileURLToPath(new URL('./remora-rules.promtool.yaml', import.meta.url));

interface RuleGroups {
  groups: { name: string; rules: { alert?: string; expr: string }[] }[];
}

describe('deploy/monitoring/remora-rules.yaml and prometheus-rule.yaml', () => {
  const rules = parseYaml(readFileSync(RULES, 'utf8')) as RuleGroups;
  const cr = parseYaml(readFileSync(CR, 'utf8')) as { kind: string; apiVersion: string; spec: RuleGroups };
  const alerts = rules.groups.flatMap((g) => g.rules);
  const known = exposedSeries();

  it('has the alerts a platform team starts from', () => {
    expect(alerts.map((r) => r.alert).sort()).toEqual([
      'RemoraCertificateNearExpiry',
      'RemoraEngineRestarting',
      'RemoraLatencyHigh',
      'RemoraProxyDegraded',
      'RemoraSuccessRateLow',
    ]);
  });

  it('the PrometheusRule is generated from the rules file and carries the same groups', async () => {
    const gen = (await import(pathToFileURL(join(DIR, 'prometheus-rule.mjs')).href)) as {
      prometheusRule(text: string): string;
    };
    expect(readFileSync(CR, 'utf8'), 'run: node deploy/monitoring/prometheus-rule.mjs').toBe(
      gen.prometheusRule(readFileSync(RULES, 'utf8')),
    );
    expect(cr).toMatchObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule' });
    expect(cr.spec.groups).toEqual(rules.groups);
  });

  it('every alert names only series a registry defines, with labels they carry', () => {
    const exprs = alerts.map((r) => r.expr);
    checkNames(exprs, known);
    checkLabels(exprs, known);
  });

  const skip = missingPrerequisite({ tools: ['promtool'] });
  const promtool = (...args: string[]): string =>
    execFileSync('promtool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  it.skipIf(skip !== undefined)(
    `promtool check rules: the file and the CR's spec${skip ? ` (${skip})` : ''}`,
    () => {
      expect(promtool('check', 'rules', RULES)).toContain('SUCCESS: 5 rules found');
      const dir = mkdtempSync(join(tmpdir(), 'remora-rules-'));
      try {
        const spec = join(dir, 'spec.yaml');
        writeFileSync(spec, JSON.stringify(cr.spec));
        expect(promtool('check', 'rules', spec)).toContain('SUCCESS: 5 rules found');
        // The check can fail: a broken expression is refused.
        const broken = join(dir, 'broken.yaml');
        writeFileSync(broken, readFileSync(RULES, 'utf8').replace('> 0.1', '> > 0.1'));
        expect(() => promtool('check', 'rules', broken)).toThrow();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(skip !== undefined)(
    `promtool test rules: every alert fires on its sample series and stays quiet otherwise${skip ? ` (${skip})` : ''}`,
    () => {
      const out = promtool('test', 'rules', PROMTOOL_TESTS);
      expect(out).toContain('SUCCESS');
      const tested = new Set(
        [...readFileSync(PROMTOOL_TESTS, 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]),
      );
      for (const r of alerts) expect(tested.has(r.alert), `${r.alert} has a promtool test`).toBe(true);
    },
  );
});

describe('deploy/monitoring/prometheus-scrape.yaml', () => {
  const text = readFileSync(join(DIR, 'prometheus-scrape.yaml'), 'utf8');
  const doc = parseYaml(text) as {
    scrape_configs: { job_name: string; relabel_configs: { regex?: string; action?: string }[] }[];
  };

  it('keeps exactly the sidecar container port the injector names remora-metrics', async () => {
    const job = doc.scrape_configs[0];
    expect(job?.job_name).toBe('remora-proxies');
    const keep = job?.relabel_configs.find((r) => r.action === 'keep');
    expect(keep?.regex).toBe(`${PROXY_CONTAINER_NAME};remora-metrics`);
    // The injector's sidecar really names its 15090 port that way.
    const sidecar = readFileSync(
      fileURLToPath(new URL('../../../injector/src/inject/sidecar.ts', import.meta.url)),
      'utf8',
    );
    expect(sidecar).toContain(`port('remora-metrics', PORTS.metrics)`);
    expect(PORTS.metrics).toBe(15090);
  });

  // Debian's Prometheus is built without Kubernetes service discovery, so promtool checks a copy
  // whose pod discovery is swapped for a static target; everything else (relabel rules, regexes,
  // actions) is checked as written.
  const withoutK8sSd = (t: string): string =>
    t.replace(
      /kubernetes_sd_configs:\n\s*- role: pod\n/,
      "static_configs:\n      - targets: ['127.0.0.1:15090']\n",
    );
  const skip = missingPrerequisite({ tools: ['promtool'] });
  it.skipIf(skip !== undefined)(
    `promtool accepts it as a Prometheus config${skip ? ` (${skip})` : ''}`,
    () => {
      expect(withoutK8sSd(text)).not.toContain('kubernetes_sd_configs');
      const dir = mkdtempSync(join(tmpdir(), 'remora-promtool-'));
      try {
        const file = join(dir, 'prometheus.yml');
        writeFileSync(file, withoutK8sSd(text));
        const out = execFileSync('promtool', ['check', 'config', '--syntax-only', file], {
          encoding: 'utf8',
        });
        expect(out).toContain('SUCCESS');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('promtool rejects a broken copy (the check above can fail)', () => {
    if (skip !== undefined) return;
    const dir = mkdtempSync(join(tmpdir(), 'remora-promtool-'));
    try {
      const file = join(dir, 'prometheus.yml');
      writeFileSync(file, withoutK8sSd(text).replace('action: keep', 'action: kept'));
      expect(() =>
        execFileSync('promtool', ['check', 'config', '--syntax-only', file], { stdio: 'pipe' }),
      ).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/monitoring/otel-collector.yaml', () => {
  const doc = parseYaml(readFileSync(join(DIR, 'otel-collector.yaml'), 'utf8')) as {
    receivers: Record<string, { protocols?: { http?: { endpoint?: string } } }>;
    processors: Record<string, unknown>;
    exporters: Record<string, unknown>;
    service: {
      pipelines: Record<string, { receivers: string[]; processors: string[]; exporters: string[] }>;
    };
  };

  it('a traces pipeline whose every component is defined, receiving OTLP/HTTP on 4318', () => {
    const p = doc.service.pipelines.traces;
    expect(p).toBeDefined();
    for (const r of p?.receivers ?? []) expect(doc.receivers).toHaveProperty(r);
    for (const r of p?.processors ?? []) expect(doc.processors).toHaveProperty(r);
    for (const r of p?.exporters ?? []) expect(doc.exporters).toHaveProperty(r);
    expect(p?.processors).toContain('batch');
    expect(doc.receivers.otlp?.protocols?.http?.endpoint).toMatch(/:4318$/);
  });
});
