import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { METRICS, PORTS, PROXY_CONTAINER_NAME } from '../../../proxy/src/contract.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { registerTraceCounters } from '../../../proxy/src/telemetry/metrics.js';
import { MeshMetrics } from '../../../proxy/src/tunnel/metrics.js';
import { missingPrerequisite } from '../../helpers/env.js';

const DIR = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));

/** Labels Prometheus adds at scrape time (deploy/monitoring/prometheus-scrape.yaml + defaults). */
const SCRAPE_LABELS = new Set(['namespace', 'pod', 'node', 'app', 'job', 'instance']);

/** Every series the proxy registers, with its label names (histograms also get `le`). */
function exposedSeries(): Map<string, Set<string>> {
  const pm = new ProxyMetrics();
  registerTraceCounters(pm.registry);
  new MeshMetrics(pm.registry);
  const out = new Map<string, Set<string>>();
  for (const m of pm.registry.snapshot().metrics) {
    out.set(m.name, new Set([...m.labelNames, ...(m.type === 'histogram' ? ['le'] : [])]));
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
  const declared = new Set<string>(Object.values(METRICS));

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

  it('every PromQL expression names only remora_ series the proxy exposes or the contract declares', () => {
    expect(exprs.length).toBeGreaterThan(10);
    for (const e of exprs) {
      const names = e.match(/\bremora_[a-z0-9_]+/g) ?? [];
      expect(names.length, e).toBeGreaterThan(0);
      for (const n of names) {
        const b = baseName(n, known);
        expect(known.has(b) || declared.has(b), `${n} in: ${e}`).toBe(true);
      }
    }
  });

  it('every label a selector or aggregation uses exists on the series it is used with', () => {
    for (const e of exprs) {
      const seriesLabels = new Set<string>(SCRAPE_LABELS);
      // Selectors: remora_x{a="..", b=~".."}
      for (const m of e.matchAll(/\b(remora_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
        const b = baseName(m[1] as string, known);
        const labels = known.get(b);
        if (labels === undefined) continue; // declared by the contract, owned by a later issue
        for (const l of labels) seriesLabels.add(l);
        for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
          const label = lm[1] as string;
          expect(labels.has(label) || SCRAPE_LABELS.has(label), `label ${label} on ${b} in: ${e}`).toBe(true);
        }
      }
      if (![...e.matchAll(/\b(remora_[a-z0-9_]+)/g)].some((m) => known.has(baseName(m[1] as string, known))))
        continue;
      // Aggregations: sum by (a, b) (...)
      for (const m of e.matchAll(/\bby\s*\(([^)]*)\)/g)) {
        for (const l of (m[1] as string).split(',').map((s) => s.trim())) {
          expect(seriesLabels.has(l), `by (${l}) in: ${e}`).toBe(true);
        }
      }
    }
  });
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
