import { describe, expect, it } from 'vitest';
import {
  addedRatio,
  checkGoals,
  compare,
  markdownReport,
  PATH_LABELS,
  pathId,
  ratio,
  roleCpu,
  textTable,
  totalCpu,
  totalPss,
  verdict,
} from '../../bench/report.js';
import type { BenchReport, Cost, PathName, PathResult, Tree } from '../../bench/report.js';
import { escapeXml, latencySvg, logScale } from '../../bench/svg.js';
import { assertWellFormedXml } from './xml.js';

const proc = (side: string, role: string, cpu: number, pss: number) => ({
  side,
  role,
  command: role === 'supervisor' ? 'remora-proxy.js' : role === 'engine' ? 'engine-child.js' : 'nginx',
  cpuUsPerRequest: cpu,
  pssMb: pss,
  pssAnonMb: pss - 5,
  privateMb: pss - 6,
  rssMb: pss * 3,
});

const SIDECAR = (sup: number, engine: number, side = 'proxy'): Cost['processes'] => [
  proc(side, 'supervisor', sup, 20),
  proc(side, 'engine', engine, 30),
];

function measured(
  path: PathName,
  o: { rps?: number; p50: number; p99: number; cost?: Cost['processes']; tree?: Tree },
): PathResult {
  const tree = o.tree ?? 'current';
  return {
    id: pathId(path, tree),
    path,
    tree,
    label: PATH_LABELS[path],
    ...(o.rps === undefined
      ? {}
      : { throughput: { roundsRps: [o.rps - 1, o.rps, o.rps + 1], medianRps: o.rps, errors: 0 } }),
    latency: {
      targetRps: 1000,
      achievedRps: 999,
      requests: 11_990,
      statuses: { '200': 11_990 },
      percentilesMs: {
        '50': o.p50,
        '75': o.p50 + 0.1,
        '90': o.p50 + 0.2,
        '95': o.p50 + 0.3,
        '99': o.p99,
        '99.9': o.p99 + 1,
      },
      meanMs: o.p50,
      maxMs: o.p99 + 2,
    },
    ...(o.cost === undefined ? {} : { cost: { requests: 11_990, samples: 12, processes: o.cost } }),
  };
}

function report(paths: PathResult[], baseline = false): BenchReport {
  return {
    schema: 'remora-bench/2',
    startedAt: '2026-12-04T20:00:00.000Z',
    finishedAt: '2026-12-04T20:05:00.000Z',
    quick: false,
    machine: {
      otherCpuCores: 0.1,
      cpus: 2,
      cpuModel: 'Test CPU',
      node: '20.20.2',
      nginx: 'nginx/1.22.1',
      commit: 'abc1234',
      loadavgStart: [0.1, 0.2, 0.3],
      loadavgEnd: [1, 1, 1],
    },
    method: {
      throughput: 'wrk -t1 -c32 -d4s',
      rounds: 3,
      warmupSec: 2,
      latency: 'hey -z 6s -q 100 -c 10',
      latencyRounds: 2,
      latencyRate: 1000,
    },
    ...(baseline ? { baseline: { dir: '/tmp/base', commit: '56e4c76' } } : {}),
    telemetry: {
      spansReceived: 240,
      exportRequests: 30,
      rejectedExports: 0,
      scrapes: 60,
      accessLogLines: 99_000,
    },
    paths,
    comparisons: compare(paths),
  };
}

const NGINX = [proc('proxy', 'nginx master', 0, 1.5), proc('proxy', 'nginx worker', 25, 3)];
const MESH_NGINX = [
  proc('a', 'nginx master', 0, 2),
  proc('a', 'nginx worker', 36, 4),
  proc('b', 'nginx master', 0, 2),
  proc('b', 'nginx worker', 34, 4),
];

const FULL = report([
  measured('direct', { rps: 50_000, p50: 0.3, p99: 1.0 }),
  measured('remora', { rps: 36_000, p50: 0.7, p99: 2.2, cost: SIDECAR(5, 60) }),
  measured('remora-telemetry', { rps: 30_000, p50: 0.9, p99: 3.0, cost: SIDECAR(10, 90) }),
  measured('nginx', { rps: 40_000, p50: 0.6, p99: 1.8, cost: NGINX }),
  {
    id: 'http-proxy',
    path: 'http-proxy',
    tree: 'current',
    label: PATH_LABELS['http-proxy'],
    skipped: 'did not start',
  },
  measured('mesh-remora', { p50: 1.5, p99: 3.4, cost: [...SIDECAR(5, 100, 'a'), ...SIDECAR(5, 80, 'b')] }),
  measured('mesh-remora-telemetry', {
    p50: 2.3,
    p99: 5.0,
    cost: [...SIDECAR(9, 150, 'a'), ...SIDECAR(9, 120, 'b')],
  }),
  measured('mesh-nginx', { p50: 0.9, p99: 2.2, cost: MESH_NGINX }),
]);

describe('ratio math', () => {
  it('divides, and is NaN (never Infinity) for a missing or zero base', () => {
    expect(ratio(3, 4)).toBe(0.75);
    expect(ratio(3, 0)).toBeNaN();
    expect(ratio(undefined, 4)).toBeNaN();
    expect(ratio(3, Number.NaN)).toBeNaN();
  });

  it("divides added latency by nginx's only when nginx's is at least hey's 0.1 ms resolution", () => {
    expect(addedRatio(0.6, 0.3)).toBeCloseTo(2);
    expect(addedRatio(0.6, 0.1)).toBeCloseTo(6);
    expect(addedRatio(0.6, 0.05)).toBeNaN();
    expect(addedRatio(0.6, 0)).toBeNaN();
    expect(addedRatio(0.6, -0.2)).toBeNaN();
    expect(addedRatio(-0.1, 0.3)).toBeCloseTo(-1 / 3);
  });

  it('sums CPU and PSS over a path, a side or a role', () => {
    const cost: Cost = {
      requests: 1,
      samples: 1,
      processes: [...SIDECAR(5, 100, 'a'), ...SIDECAR(7, 80, 'b')],
    };
    expect(totalCpu(cost)).toBe(192);
    expect(totalCpu(cost, 'a')).toBe(105);
    expect(roleCpu(cost, 'engine')).toBe(180);
    expect(roleCpu(cost, 'supervisor', 'b')).toBe(7);
    expect(roleCpu(cost, 'nginx worker')).toBeNaN();
    expect(totalPss(cost)).toBe(100);
    expect(totalPss(cost, 'b')).toBe(50);
    expect(totalCpu(undefined)).toBeNaN();
    expect(totalCpu(cost, 'c')).toBeNaN();
  });

  it('compares each path with direct and with its own nginx (one hop: nginx; mesh hop: two nginx)', () => {
    const c = (id: string) => FULL.comparisons.find((x) => x.id === id);
    expect(c('remora')).toMatchObject({
      throughputVsDirect: 0.72,
      throughputVsNginx: 0.9,
      cpuUsPerRequest: 65,
      pssMb: 50,
    });
    expect(c('remora')?.addedP50Ms).toBeCloseTo(0.4);
    expect(c('remora')?.addedP50VsNginx).toBeCloseTo(0.4 / 0.3);
    expect(c('remora')?.addedP99VsNginx).toBeCloseTo(1.2 / 0.8);
    expect(c('remora')?.cpuVsNginx).toBeCloseTo(65 / 25);
    expect(c('mesh-remora')?.addedP50VsNginx).toBeCloseTo(1.2 / 0.6);
    expect(c('mesh-remora')?.cpuVsNginx).toBeCloseTo(190 / 70);
    expect(c('mesh-remora')?.throughputVsNginx).toBeNaN();
    expect(c('nginx')?.throughputVsNginx).toBe(1);
    expect(c('mesh-nginx')?.addedP99VsNginx).toBe(1);
    expect(FULL.comparisons.map((x) => x.id)).not.toContain('http-proxy');
  });
});

describe('goals', () => {
  it('tells the goal from the bar', () => {
    expect(verdict(0.85, 0.8, 0.6, true)).toBe('met');
    expect(verdict(0.7, 0.8, 0.6, true)).toBe('bar met');
    expect(verdict(0.5, 0.8, 0.6, true)).toBe('not met');
    expect(verdict(1.7, 1.5, 2)).toBe('bar met');
    expect(verdict(70, 70, 70)).toBe('met');
    expect(verdict(Number.NaN, 70, 70)).toBe('not measured');
  });

  it("checks issue 11's table for remora and for remora with telemetry on", () => {
    const g = checkGoals(FULL);
    expect(g.map((r) => r.what)).toEqual([
      'one hop, wrk -t1 -c32 throughput × nginx',
      'one hop, CPU per request at 1k req/s, engine + supervisor',
      'one hop, added p50 at 1k req/s',
      'one hop, added p99 at 1k req/s',
      "mesh hop (mTLS), added p50 × two nginx's added",
      "mesh hop (mTLS), added p99 × two nginx's added",
      "sidecar PSS at 1k req/s, summed (shared pages split machine-wide: below a pod's)",
    ]);
    expect(g.map((r) => r.cells.map((c) => c.verdict))).toEqual([
      ['met', 'bar met'],
      ['met', 'not met'],
      ['met', 'not met'],
      ['met', 'not met'],
      ['bar met', 'not met'],
      ['bar met', 'not met'],
      ['met', 'met'],
    ]);
    expect(g[1]?.cells[0]?.measured).toBe('65 µs');
    expect(g[6]?.cells[0]?.measured).toBe('50.0 MB (anon 40.0, RSS 150.0)');
  });

  it('adds the before columns with --baseline, and says "–" rather than guessing', () => {
    const r = report(
      [
        ...FULL.paths,
        measured('remora', { rps: 20_000, p50: 1.2, p99: 3.3, cost: SIDECAR(20, 110), tree: 'baseline' }),
      ],
      true,
    );
    const g = checkGoals(r);
    expect(g[0]?.cells).toHaveLength(4);
    expect(g[1]?.cells[2]).toEqual({ measured: '130 µs', verdict: 'not met' });
    expect(g[1]?.cells[3]).toEqual({ measured: '–', verdict: 'not measured' });
    const none = checkGoals(report([measured('direct', { rps: 50_000, p50: 0.5, p99: 1.5 })]));
    expect(none.flatMap((x) => x.cells.map((c) => c.verdict))).toEqual(Array(14).fill('not measured'));
  });
});

describe('tables', () => {
  it('prints the one-hop and mesh tables, the skip reason, and the goals, in text and markdown', () => {
    const text = textTable(FULL);
    expect(text.split('\n')[0]).toMatch(/^one hop\s+req\/s\s+× nginx/);
    expect(text).toMatch(
      /^remora\s+36000\s+0\.90×\s+0\.70\s+2\.20\s+\+0\.40\s+\+1\.20\s+1\.33×\s+1\.50×\s+5\s+60\s+65\s+2\.60×\s+50\.0$/m,
    );
    expect(text).toMatch(
      /^mesh-remora\s+1\.50\s+3\.40\s+\+1\.20\s+\+2\.40\s+2\.00×\s+2\.00×\s+105\s+85\s+190\s+2\.71×\s+50\.0\s+50\.0$/m,
    );
    expect(text).toMatch(/^http-proxy skipped: did not start$/m);
    expect(text).toContain(
      'remora: supervisor 5 µs 20.0 MB, engine 60 µs 30.0 MB (PSS; of it anonymous 40.0 MB',
    );
    expect(text).toMatch(/^one hop, added p50 at 1k req\/s\s+≤ \+0\.5 ms\s+0\.40 ms\s+met/m);
    const md = markdownReport(FULL);
    expect(md).toContain(
      '| remora | 36000 | 0.90× | 0.70 | 2.20 | +0.40 | +1.20 | 1.33× | 1.50× | 5 | 60 | 65 | 2.60× | 50.0 |',
    );
    expect(md).toContain(
      '| nginx | 40000 | 1.00× | 0.60 | 1.80 | +0.30 | +0.80 | 1.00× | 1.00× | – | – | 25 | 1.00× | 4.5 |',
    );
    expect(md).toContain(
      "| mesh hop (mTLS), added p50 × two nginx's added | ≤ 1.5× (bar 2×) | 2.00× | bar met | 3.33× | **not met** |",
    );
    expect(md).toContain(
      '240 spans in 30 OTLP exports received (0 rejected), 60 /metrics scrapes, 99000 access-log lines',
    );
    expect(md).toContain('load average before/after 0.10 0.20 0.30 / 1.00 1.00 1.00');
    expect(md).not.toMatch(/NaN|undefined|Infinity/);
  });

  it('shows the tree of every row with --baseline, the before run beside the current one', () => {
    const r = report(
      [
        measured('direct', { rps: 50_000, p50: 0.3, p99: 1.0 }),
        measured('remora', { rps: 36_000, p50: 0.7, p99: 2.2, cost: SIDECAR(5, 60) }),
        measured('remora', { rps: 20_000, p50: 1.2, p99: 3.3, cost: SIDECAR(20, 110), tree: 'baseline' }),
        measured('nginx', { rps: 40_000, p50: 0.6, p99: 1.8, cost: NGINX }),
      ],
      true,
    );
    const md = markdownReport(r);
    expect(md).toContain('| remora | now | 36000 |');
    expect(md).toContain('| remora | before | 20000 | 0.50× |');
    expect(md).toContain('commit abc1234 ("now") against 56e4c76 ("before", `--baseline`)');
    expect(md).toContain('| remora (before) |');
    expect(textTable(r)).toContain('remora@before: supervisor 20 µs');
  });

  it('says below the table when a path errored or could not keep the fixed rate', () => {
    const base = measured('remora', { rps: 1000, p50: 5, p99: 50, cost: SIDECAR(5, 500) });
    const struggling = report([
      {
        ...base,
        throughput: { roundsRps: [1000], medianRps: 1000, errors: 3 },
        latency: { ...base.latency!, achievedRps: 800, statuses: { '200': 7990, '502': 10 } },
      },
    ]);
    const text = textTable(struggling);
    expect(text).toContain('remora: hey reached only 800 of 1000 req/s');
    expect(text).toContain('remora: non-200 responses at the fixed rate: 10× 502');
    expect(text).toContain('remora: 3 errors during the throughput rounds');
    expect(textTable(FULL)).not.toMatch(/hey reached only|non-200|errors during/);
  });
});

describe('latency chart', () => {
  it('is well-formed SVG with a line and a legend entry per measured path', () => {
    const svg = latencySvg(FULL);
    assertWellFormedXml(svg);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(7);
    for (const label of [
      'direct',
      'remora',
      'nginx',
      'mesh-nginx',
      'p50',
      'p99.9',
      'latency (ms, log scale)',
      'percentile',
    ]) {
      expect(svg).toContain(`>${label}<`);
    }
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });

  it('draws a baseline run dotted in its path colour, labelled with its id', () => {
    const svg = latencySvg(
      report(
        [measured('remora', { p50: 1, p99: 2 }), measured('remora', { p50: 1, p99: 3, tree: 'baseline' })],
        true,
      ),
    );
    expect(svg).toContain('>remora@before<');
    expect(svg.match(/stroke-dasharray="1 3"/g)?.length).toBeGreaterThan(0);
  });

  it('says so when nothing was measured', () => {
    const svg = latencySvg(report([]));
    assertWellFormedXml(svg);
    expect(svg).toContain('no latency measured');
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });

  it('is caught by the well-formedness check when broken (the check can fail)', () => {
    expect(() => assertWellFormedXml('<svg><g></svg>')).toThrow();
    expect(() => assertWellFormedXml('<svg><text x=1>a</text></svg>')).toThrow();
    expect(() => assertWellFormedXml('<svg><text>a & b</text></svg>')).toThrow();
  });

  it('escapes text and picks round axis steps', () => {
    expect(escapeXml(`a<b & "c"`)).toBe('a&#60;b &#38; &#34;c&#34;');
    expect(logScale([0.6, 4.8, 31])).toEqual({ min: 0.5, max: 50, ticks: [0.5, 1, 2, 5, 10, 20, 50] });
    expect(logScale([0, 0.1, 0.3])).toEqual({ min: 0.1, max: 0.5, ticks: [0.1, 0.2, 0.5] });
    expect(logScale([2, 2])).toEqual({ min: 2, max: 5, ticks: [2, 5] });
    expect(logScale([])).toEqual({ min: 0.1, max: 1, ticks: [0.1, 0.2, 0.5, 1] });
  });
});
