/**
 * The benchmark's figures as data (the JSON written to bench/results/), and the views drawn
 * from it: the console table, the markdown table for docs/performance.md, the targets check.
 * Pure functions of the report, so a re-run on a quiet machine updates the doc mechanically.
 */
import { PERCENTILES } from './tools.js';

export const PATH_NAMES = Object.freeze(['direct', 'remora', 'nginx', 'http-proxy'] as const);
export type PathName = (typeof PATH_NAMES)[number];

export const PATH_LABELS: Readonly<Record<PathName, string>> = Object.freeze({
  direct: 'direct (client → backend)',
  remora: 'remora-proxy (inbound, explicit mode)',
  nginx: 'nginx proxy_pass (1 worker, upstream keepalive)',
  'http-proxy': 'http-proxy (Node, keep-alive agent)',
});

export interface Throughput {
  /** Requests per second of each measured round, in the order they ran. */
  readonly roundsRps: readonly number[];
  readonly medianRps: number;
  /** Non-2xx responses plus socket errors over all rounds (should be 0). */
  readonly errors: number;
}

export interface Latency {
  readonly targetRps: number;
  readonly achievedRps: number;
  readonly requests: number;
  readonly statuses: Readonly<Record<string, number>>;
  /** Keyed by percentile ("50", "99.9"), in milliseconds. */
  readonly percentilesMs: Readonly<Record<string, number>>;
  readonly meanMs: number;
  readonly maxMs: number;
}

export interface Memory {
  /** Largest VmRSS sampled during the fixed-rate run, summed over the proxy's process tree. */
  readonly rssMaxMb: number;
  /** VmHWM (peak RSS since start, throughput runs included) at the end of the fixed-rate run. */
  readonly hwmMb: number;
  readonly samples: number;
  /** Each process of the tree (supervisor, engine, ...) at the sample with the largest total. */
  readonly processes: readonly { readonly command: string; readonly rssMb: number; readonly hwmMb: number }[];
}

export interface PathResult {
  readonly path: PathName;
  readonly label: string;
  /** Why the path was not measured (binary missing, did not start, wrong body), if it was not. */
  readonly skipped?: string;
  readonly throughput?: Throughput;
  readonly latency?: Latency;
  readonly memory?: Memory;
}

export interface Comparison {
  readonly path: PathName;
  readonly throughputVsDirect: number;
  readonly throughputVsNginx: number;
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
}

export interface BenchReport {
  readonly schema: 'remora-bench/1';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly quick: boolean;
  readonly machine: Readonly<Record<string, string | number | readonly number[]>>;
  readonly method: Readonly<Record<string, string | number>>;
  readonly paths: readonly PathResult[];
  readonly comparisons: readonly Comparison[];
}

/** The issue's acceptance figures for remora-proxy (issue 2, "What it must show"). */
export const TARGETS = Object.freeze({
  throughputVsNginxMin: 0.5,
  throughputVsNginxGoal: 0.8,
  addedP50MsMax: 0.3,
  addedP99MsMax: 2,
  rssMbMax: 60,
});

export function compare(paths: readonly PathResult[]): Comparison[] {
  const by = new Map(paths.map((p) => [p.path, p]));
  const direct = by.get('direct');
  const nginx = by.get('nginx');
  return paths
    .filter((p) => p.skipped === undefined)
    .map((p) => ({
      path: p.path,
      throughputVsDirect: ratio(p.throughput?.medianRps, direct?.throughput?.medianRps),
      throughputVsNginx: ratio(p.throughput?.medianRps, nginx?.throughput?.medianRps),
      addedP50Ms: diff(p.latency?.percentilesMs['50'], direct?.latency?.percentilesMs['50']),
      addedP99Ms: diff(p.latency?.percentilesMs['99'], direct?.latency?.percentilesMs['99']),
    }));
}

function ratio(a: number | undefined, b: number | undefined): number {
  return a === undefined || b === undefined || b === 0 ? Number.NaN : a / b;
}

function diff(a: number | undefined, b: number | undefined): number {
  return a === undefined || b === undefined ? Number.NaN : a - b;
}

export interface TargetCheck {
  readonly what: string;
  readonly measured: string;
  readonly target: string;
  /** undefined when the figure could not be measured in this run. */
  readonly met: boolean | undefined;
}

export function checkTargets(report: BenchReport): TargetCheck[] {
  const cmp = report.comparisons.find((c) => c.path === 'remora');
  const mem = report.paths.find((p) => p.path === 'remora')?.memory;
  const check = (
    what: string,
    value: number | undefined,
    unit: string,
    target: string,
    ok: (v: number) => boolean,
  ) => ({
    what,
    measured:
      value === undefined || Number.isNaN(value)
        ? 'not measured'
        : `${fmt(value, unit === '×' ? 2 : 2)}${unit}`,
    target,
    met: value === undefined || Number.isNaN(value) ? undefined : ok(value),
  });
  return [
    check(
      'throughput vs nginx',
      cmp?.throughputVsNginx,
      '×',
      `≥ ${TARGETS.throughputVsNginxMin}× (goal ${TARGETS.throughputVsNginxGoal}×)`,
      (v) => v >= TARGETS.throughputVsNginxMin,
    ),
    check(
      'added p50 at 1000 req/s',
      cmp?.addedP50Ms,
      ' ms',
      `≤ ${TARGETS.addedP50MsMax} ms`,
      (v) => v <= TARGETS.addedP50MsMax,
    ),
    check(
      'added p99 at 1000 req/s',
      cmp?.addedP99Ms,
      ' ms',
      `≤ ${TARGETS.addedP99MsMax} ms`,
      (v) => v <= TARGETS.addedP99MsMax,
    ),
    check(
      'RSS at 1000 req/s',
      mem?.rssMaxMb,
      ' MB',
      `≤ ${TARGETS.rssMbMax} MB`,
      (v) => v <= TARGETS.rssMbMax,
    ),
  ];
}

export function fmt(v: number | undefined, digits = 2): string {
  return v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits);
}

function signed(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? '–' : `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
}

interface Row {
  readonly cells: readonly string[];
}

function rows(report: BenchReport): { header: readonly string[]; body: readonly Row[] } {
  const header = [
    'path',
    'req/s (median)',
    '× direct',
    '× nginx',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    '+p50 ms',
    '+p99 ms',
    'RSS MB',
  ];
  const body = report.paths.map((p): Row => {
    if (p.skipped !== undefined) return { cells: [p.path, 'skipped', '', '', '', '', '', '', '', ''] };
    const c = report.comparisons.find((x) => x.path === p.path);
    const pc = p.latency?.percentilesMs;
    return {
      cells: [
        p.path,
        p.throughput === undefined ? '–' : Math.round(p.throughput.medianRps).toString(),
        fmt(c?.throughputVsDirect),
        fmt(c?.throughputVsNginx),
        fmt(pc?.['50']),
        fmt(pc?.['90']),
        fmt(pc?.['99']),
        p.path === 'direct' ? '' : signed(c?.addedP50Ms),
        p.path === 'direct' ? '' : signed(c?.addedP99Ms),
        p.memory === undefined ? '' : fmt(p.memory.rssMaxMb, 1),
      ],
    };
  });
  return { header, body };
}

/** A fixed-width table for the terminal. */
export function textTable(report: BenchReport): string {
  const { header, body } = rows(report);
  const all = [header, ...body.map((r) => r.cells)];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...body.map((r) => line(r.cells)),
    ...notesBelow(report),
  ].join('\n');
}

/** The same table as markdown, plus the targets, ready to paste into docs/performance.md. */
export function markdownReport(report: BenchReport): string {
  const { header, body } = rows(report);
  const md = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  const m = report.machine;
  const targets = checkTargets(report).map((t) =>
    md([t.what, t.measured, t.target, t.met === undefined ? 'not measured' : t.met ? 'met' : '**not met**']),
  );
  return [
    `Run of ${report.startedAt}${report.quick ? ' (**--quick**: too short to quote)' : ''}: ` +
      `${String(m.cpus)} × ${String(m.cpuModel)}, Node ${String(m.node)}, ${String(m.nginx)}, ` +
      `commit ${String(m.commit ?? '?')}, load average before/after ${fmtLoad(m.loadavgStart)} / ${fmtLoad(m.loadavgEnd)}; ` +
      `other processes used ~${String(m.otherCpuCores ?? '?')} of the ${String(m.cpus)} cores while it ran.`,
    '',
    `Throughput: \`${String(report.method.throughput)}\`, ${String(report.method.rounds)} round(s) ` +
      `(paths alternating)${Number(report.method.warmupSec) > 0 ? ' after a warm-up' : ''}, median. Latency: \`${String(report.method.latency)}\` ` +
      `(${String(report.method.latencyRate)} req/s); "+p50/+p99" are added over direct.`,
    '',
    md(header),
    md(header.map((_, i) => (i === 0 ? '---' : '---:'))),
    ...body.map((r) => md(r.cells)),
    ...notesBelow(report).map((n) => `\n${n}`),
    '',
    md(['remora-proxy', 'measured', 'target', '']),
    md(['---', '---:', '---', '---']),
    ...targets,
  ].join('\n');
}

/** Lines under the table: why a path was skipped, and what the RSS figure is made of. */
function notesBelow(report: BenchReport): string[] {
  return report.paths.flatMap((p) => {
    if (p.skipped !== undefined) return [`${p.path} skipped: ${p.skipped}`];
    const notes: string[] = [];
    const l = p.latency;
    if (l !== undefined && l.achievedRps < 0.95 * l.targetRps) {
      notes.push(
        `${p.path}: hey reached only ${Math.round(l.achievedRps)} of ${l.targetRps} req/s (responses too slow for the fixed rate)`,
      );
    }
    const other = Object.entries(l?.statuses ?? {}).filter(([code]) => code !== '200');
    if (other.length > 0)
      notes.push(
        `${p.path}: non-200 responses at the fixed rate: ${other.map(([c, n]) => `${n}× ${c}`).join(', ')}`,
      );
    if ((p.throughput?.errors ?? 0) > 0)
      notes.push(`${p.path}: ${p.throughput?.errors ?? 0} errors during the throughput rounds`);
    const m = p.memory;
    if (m === undefined) return notes;
    const parts = m.processes.map((x) => `${x.command} ${x.rssMb.toFixed(1)}`).join(' + ');
    return [
      ...notes,
      `${p.path} RSS ${m.rssMaxMb.toFixed(1)} MB = ${parts} MB (VmRSS, largest of ${m.samples} samples at 1000 req/s; ` +
        `peak since start VmHWM ${m.hwmMb.toFixed(1)} MB)`,
    ];
  });
}

function fmtLoad(v: unknown): string {
  return Array.isArray(v) ? v.map((x) => Number(x).toFixed(2)).join(' ') : '–';
}

/** Percentile keys as they appear in the JSON ("50", "99.9"). */
export const PERCENTILE_KEYS: readonly string[] = PERCENTILES.map(String);
