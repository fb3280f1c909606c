import { describe, expect, it } from 'vitest';
import { checkTargets, compare, markdownReport, PATH_LABELS, textTable } from '../../bench/report.js';
import type { BenchReport, PathName, PathResult } from '../../bench/report.js';
import { escapeXml, latencySvg, logScale } from '../../bench/svg.js';
import { assertWellFormedXml } from './xml.js';

function measured(path: PathName, rps: number, p50: number, p99: number, rssMb?: number): PathResult {
  return {
    path,
    label: PATH_LABELS[path],
    throughput: { roundsRps: [rps - 1, rps, rps + 1], medianRps: rps, errors: 0 },
    latency: {
      targetRps: 1000,
      achievedRps: 999,
      requests: 9990,
      statuses: { '200': 9990 },
      percentilesMs: {
        '50': p50,
        '75': p50 + 0.1,
        '90': p50 + 0.2,
        '95': p50 + 0.3,
        '99': p99,
        '99.9': p99 + 1,
      },
      meanMs: p50,
      maxMs: p99 + 2,
    },
    ...(rssMb === undefined
      ? {}
      : {
          memory: {
            rssMaxMb: rssMb,
            hwmMb: rssMb + 5,
            samples: 50,
            processes: [
              { command: 'remora-proxy.js', rssMb: 20, hwmMb: 21 },
              { command: 'engine-child.js', rssMb: rssMb - 20, hwmMb: rssMb - 16 },
            ],
          },
        }),
  };
}

function report(paths: PathResult[]): BenchReport {
  return {
    schema: 'remora-bench/1',
    startedAt: '2026-11-26T07:00:00.000Z',
    finishedAt: '2026-11-26T07:02:00.000Z',
    quick: false,
    machine: {
      otherCpuCores: 0.1,
      cpus: 2,
      cpuModel: 'Test CPU',
      node: '20.20.2',
      nginx: 'nginx/1.22.1',
      loadavgStart: [0.1, 0.2, 0.3],
      loadavgEnd: [1, 1, 1],
    },
    method: {
      throughput: 'wrk -t1 -c32 -d4s',
      rounds: 3,
      warmupSec: 2,
      latency: 'hey -z 10s -q 100 -c 10',
      latencyRate: 1000,
    },
    paths,
    comparisons: compare(paths),
  };
}

const FULL = report([
  measured('direct', 50_000, 0.5, 1.5),
  measured('remora', 30_000, 0.7, 2.5, 48.2),
  measured('nginx', 40_000, 0.6, 1.7),
  { path: 'http-proxy', label: PATH_LABELS['http-proxy'], skipped: 'did not start' },
]);

const STRUGGLING = report([
  {
    ...measured('remora', 1000, 5, 50),
    throughput: { roundsRps: [1000], medianRps: 1000, errors: 3 },
    latency: {
      ...measured('remora', 1000, 5, 50).latency!,
      achievedRps: 800,
      statuses: { '200': 7990, '502': 10 },
    },
  },
]);

describe('comparisons', () => {
  it('gives throughput ratios to direct and nginx and latency added over direct', () => {
    const remora = FULL.comparisons.find((c) => c.path === 'remora');
    expect(remora?.throughputVsDirect).toBeCloseTo(0.6);
    expect(remora?.throughputVsNginx).toBeCloseTo(0.75);
    expect(remora?.addedP50Ms).toBeCloseTo(0.2);
    expect(remora?.addedP99Ms).toBeCloseTo(1.0);
    expect(FULL.comparisons.map((c) => c.path)).toEqual(['direct', 'remora', 'nginx']);
  });

  it('checks the issue targets, and says "not measured" rather than guessing', () => {
    expect(checkTargets(FULL).map((t) => t.met)).toEqual([true, true, true, true]);
    const slow = report([
      measured('direct', 50_000, 0.5, 1.5),
      measured('remora', 10_000, 1.5, 9, 80),
      measured('nginx', 40_000, 0.6, 1.7),
    ]);
    expect(checkTargets(slow).map((t) => t.met)).toEqual([false, false, false, false]);
    const none = report([measured('direct', 50_000, 0.5, 1.5)]);
    expect(checkTargets(none).map((t) => t.measured)).toEqual(Array(4).fill('not measured'));
  });
});

describe('tables', () => {
  it('prints one row per path, the skip reason below, in text and markdown', () => {
    const text = textTable(FULL);
    expect(text.split('\n')[0]).toMatch(/^path\s+req\/s/);
    expect(text).toMatch(/^remora\s+30000\s+0\.60\s+0\.75\s+0\.70/m);
    expect(text).toMatch(/^http-proxy skipped: did not start$/m);
    expect(text).toMatch(/^remora RSS 48\.2 MB = remora-proxy\.js 20\.0 \+ engine-child\.js 28\.2 MB/m);
    const md = markdownReport(FULL);
    expect(md).toContain('| remora | 30000 | 0.60 | 0.75 | 0.70 | 0.90 | 2.50 | +0.20 | +1.00 | 48.2 |');
    expect(md).toContain('| RSS at 1000 req/s | 48.20 MB | ≤ 60 MB | met |');
    expect(md).not.toMatch(/NaN|undefined/);
  });

  it('says below the table when a path errored or could not keep the fixed rate', () => {
    const text = textTable(STRUGGLING);
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
    expect(svg.match(/<polyline /g)).toHaveLength(3);
    for (const label of [
      'direct',
      'remora',
      'nginx',
      'p50',
      'p99.9',
      'latency (ms, log scale)',
      'percentile',
    ]) {
      expect(svg).toContain(`>${label}<`);
    }
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
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
