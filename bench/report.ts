/**
 * The benchmark's figures as data (the JSON written to bench/results/), and the views drawn
 * from it: the console tables, the markdown for docs/performance.md, the goals check of issue 11.
 * Pure functions of the report, so a re-run on a quiet machine updates the doc mechanically.
 */
import { PERCENTILES } from './tools.js';

export const PATH_NAMES = Object.freeze([
  'direct',
  'remora',
  'remora-telemetry',
  'nginx',
  'http-proxy',
  'mesh-remora',
  'mesh-remora-telemetry',
  'mesh-nginx',
] as const);
export type PathName = (typeof PATH_NAMES)[number];

/** The paths that go through Remora: with `--baseline`, each also runs on the earlier tree. */
export const REMORA_PATHS: readonly PathName[] = Object.freeze([
  'remora',
  'remora-telemetry',
  'mesh-remora',
  'mesh-remora-telemetry',
]);
/** Two proxies (client side A, server side B) with mutual TLS between them. */
export const MESH_PATHS: readonly PathName[] = Object.freeze([
  'mesh-remora',
  'mesh-remora-telemetry',
  'mesh-nginx',
]);

export const PATH_LABELS: Readonly<Record<PathName, string>> = Object.freeze({
  direct: 'direct (client → backend)',
  remora: 'remora-proxy (supervisor + engine, inbound, explicit mode)',
  'remora-telemetry':
    'remora-proxy, telemetry on (metrics scraped, access log, 1 % traces to an OTLP receiver)',
  nginx: 'nginx proxy_pass (its own nginx, 1 worker, upstream keepalive)',
  'http-proxy': 'http-proxy (Node, keep-alive agent)',
  'mesh-remora': 'two remora-proxy sidecars, A outbound → mTLS tunnel → B → backend',
  'mesh-remora-telemetry': 'the same two sidecars with telemetry on',
  'mesh-nginx': 'two nginx, A → mutual TLS 1.3 → B → backend (../shared/bench/nginx-mesh-hop.sh)',
});

export type Tree = 'current' | 'baseline';

/** A path's key in the report: the name, with `@before` for the baseline tree's run of it. */
export function pathId(path: PathName, tree: Tree): string {
  return tree === 'baseline' ? `${path}@before` : path;
}

/** The nginx path a path's added latency and CPU are compared with. */
export function nginxFor(path: PathName): PathName {
  return MESH_PATHS.includes(path) ? 'mesh-nginx' : 'nginx';
}

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
  /** Keyed by percentile ("50", "99.9"), in milliseconds, over every round's requests. */
  readonly percentilesMs: Readonly<Record<string, number>>;
  readonly meanMs: number;
  readonly maxMs: number;
}

/** One process of a proxy path, over its fixed-rate (1k req/s) runs. */
export interface ProcessCost {
  /** `proxy` for a one-hop path; `a` (client side) or `b` (server side) for a mesh hop. */
  readonly side: string;
  /** supervisor, engine, nginx master, nginx worker, http-proxy. */
  readonly role: string;
  readonly command: string;
  /** (utime + stime) over the fixed-rate runs ÷ the requests they served. */
  readonly cpuUsPerRequest: number;
  /**
   * smaps_rollup at the sample where the path's PSS sum was largest: PSS, its anonymous part
   * (heap: the process's own), private pages (USS, a floor) and RSS (a ceiling).
   */
  readonly pssMb: number;
  readonly pssAnonMb: number;
  readonly privateMb: number;
  readonly rssMb: number;
}

export interface Cost {
  /** Requests the CPU figures are divided by (every round's hey requests). */
  readonly requests: number;
  /** Memory samples taken during the fixed-rate runs. */
  readonly samples: number;
  readonly processes: readonly ProcessCost[];
}

export interface PathResult {
  readonly id: string;
  readonly path: PathName;
  readonly tree: Tree;
  readonly label: string;
  /** Why the path was not measured (binary missing, did not start, wrong body), if it was not. */
  readonly skipped?: string;
  /** One-hop paths only. */
  readonly throughput?: Throughput;
  readonly latency?: Latency;
  /** Proxy paths only. */
  readonly cost?: Cost;
}

export interface Comparison {
  readonly id: string;
  readonly throughputVsDirect: number;
  readonly throughputVsNginx: number;
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
  /** Added latency ÷ nginx's added (one hop: nginx; mesh hop: the two nginx). */
  readonly addedP50VsNginx: number;
  readonly addedP99VsNginx: number;
  /** Summed over the path's processes (both sides of a mesh hop). */
  readonly cpuUsPerRequest: number;
  readonly cpuVsNginx: number;
  readonly pssMb: number;
  /** Anonymous PSS (the sidecar's own heap, whoever else maps the node binary) and RSS (the ceiling). */
  readonly pssAnonMb: number;
  readonly rssMb: number;
}

export interface Telemetry {
  /** Spans the OTLP receiver decoded, export requests it got, /metrics scrapes, access-log lines. */
  readonly spansReceived: number;
  readonly exportRequests: number;
  readonly rejectedExports: number;
  readonly scrapes: number;
  readonly accessLogLines: number;
}

export interface BenchReport {
  readonly schema: 'remora-bench/2';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly quick: boolean;
  readonly machine: Readonly<Record<string, string | number | readonly number[]>>;
  readonly method: Readonly<Record<string, string | number>>;
  /** The earlier tree of `--baseline`, if any: its directory and commit. */
  readonly baseline?: { readonly dir: string; readonly commit: string };
  readonly telemetry?: Telemetry;
  readonly paths: readonly PathResult[];
  readonly comparisons: readonly Comparison[];
}

/** a ÷ b; NaN when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number {
  return a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? Number.NaN
    : a / b;
}

function diff(a: number | undefined, b: number | undefined): number {
  return a === undefined || b === undefined ? Number.NaN : a - b;
}

/** hey's resolution: an added latency below it is noise, not a base to divide by. */
export const LATENCY_RESOLUTION_MS = 0.1;

/**
 * Added latency relative to nginx's added latency. NaN (shown as "–") when nginx's added figure
 * is below hey's 0.1 ms resolution or negative (noise): a ratio to nothing would read as huge.
 */
export function addedRatio(added: number | undefined, nginxAdded: number | undefined): number {
  if (nginxAdded === undefined || !(nginxAdded >= LATENCY_RESOLUTION_MS)) return Number.NaN;
  return ratio(added, nginxAdded);
}

/** Total CPU µs per request of a path (all its processes, both sides). */
export function totalCpu(cost: Cost | undefined, side?: string): number {
  if (cost === undefined) return Number.NaN;
  const ps = cost.processes.filter((p) => side === undefined || p.side === side);
  return ps.length === 0 ? Number.NaN : ps.reduce((s, p) => s + p.cpuUsPerRequest, 0);
}

/** CPU µs per request of one role (supervisor, engine) on one side, summed over its processes. */
export function roleCpu(cost: Cost | undefined, role: string, side?: string): number {
  const ps = (cost?.processes ?? []).filter(
    (p) => p.role === role && (side === undefined || p.side === side),
  );
  return ps.length === 0 ? Number.NaN : ps.reduce((s, p) => s + p.cpuUsPerRequest, 0);
}

/** PSS summed over a path's processes (or one side's), MB. */
export function totalPss(cost: Cost | undefined, side?: string): number {
  if (cost === undefined) return Number.NaN;
  const ps = cost.processes.filter((p) => side === undefined || p.side === side);
  return ps.length === 0 ? Number.NaN : ps.reduce((s, p) => s + p.pssMb, 0);
}

export function compare(paths: readonly PathResult[]): Comparison[] {
  const by = new Map(paths.filter((p) => p.skipped === undefined).map((p) => [p.id, p]));
  const direct = by.get('direct');
  return paths
    .filter((p) => p.skipped === undefined)
    .map((p) => {
      const nginx = by.get(nginxFor(p.path));
      const d50 = direct?.latency?.percentilesMs['50'];
      const d99 = direct?.latency?.percentilesMs['99'];
      const added50 = diff(p.latency?.percentilesMs['50'], d50);
      const added99 = diff(p.latency?.percentilesMs['99'], d99);
      const cpu = totalCpu(p.cost);
      return {
        id: p.id,
        throughputVsDirect: ratio(p.throughput?.medianRps, direct?.throughput?.medianRps),
        throughputVsNginx: ratio(p.throughput?.medianRps, by.get('nginx')?.throughput?.medianRps),
        addedP50Ms: added50,
        addedP99Ms: added99,
        addedP50VsNginx: addedRatio(added50, diff(nginx?.latency?.percentilesMs['50'], d50)),
        addedP99VsNginx: addedRatio(added99, diff(nginx?.latency?.percentilesMs['99'], d99)),
        cpuUsPerRequest: cpu,
        cpuVsNginx: ratio(cpu, totalCpu(nginx?.cost)),
        pssMb: totalPss(p.cost),
        pssAnonMb: p.cost === undefined ? Number.NaN : p.cost.processes.reduce((s, x) => s + x.pssAnonMb, 0),
        rssMb: p.cost === undefined ? Number.NaN : p.cost.processes.reduce((s, x) => s + x.rssMb, 0),
      };
    });
}

/** Issue 11's table: the goal and the bar (the least that counts as progress) of each figure. */
export const GOALS = Object.freeze({
  throughputVsNginx: { goal: 0.8, bar: 0.6 },
  cpuUsPerRequest: { goal: 70, bar: 70 },
  addedP50Ms: { goal: 0.5, bar: 0.5 },
  addedP99Ms: { goal: 1.5, bar: 1.5 },
  meshAddedVsNginx: { goal: 1.5, bar: 2 },
  pssMb: { goal: 60, bar: 60 },
});

export type Verdict = 'met' | 'bar met' | 'not met' | 'not measured';

export interface GoalCheck {
  readonly what: string;
  readonly goal: string;
  /** Per column (remora, remora with telemetry on, and the same before with --baseline). */
  readonly cells: readonly { readonly measured: string; readonly verdict: Verdict }[];
}

/** met when the goal holds, "bar met" when only the bar does; `higher`: bigger is better. */
export function verdict(v: number, goal: number, bar: number, higher = false): Verdict {
  if (!Number.isFinite(v)) return 'not measured';
  const ok = (limit: number): boolean => (higher ? v >= limit : v <= limit);
  return ok(goal) ? 'met' : ok(bar) ? 'bar met' : 'not met';
}

/** The columns of the goals table: which one-hop and mesh paths, on which tree. */
export function goalColumns(report: BenchReport): { title: string; hop: string; mesh: string }[] {
  const cols = [
    { title: 'remora', hop: 'remora', mesh: 'mesh-remora' },
    { title: 'telemetry on', hop: 'remora-telemetry', mesh: 'mesh-remora-telemetry' },
  ];
  if (report.baseline === undefined) return cols;
  return [
    ...cols,
    ...cols.map((c) => ({
      title: `${c.title} (before)`,
      hop: pathId(c.hop as PathName, 'baseline'),
      mesh: pathId(c.mesh as PathName, 'baseline'),
    })),
  ];
}

export function checkGoals(report: BenchReport): GoalCheck[] {
  const cmp = (id: string): Comparison | undefined => report.comparisons.find((c) => c.id === id);
  const cols = goalColumns(report);
  const row = (
    what: string,
    goal: string,
    pick: (c: { hop: string; mesh: string }) => number | undefined,
    unit: string,
    judge: (v: number) => Verdict,
    more: (c: { hop: string; mesh: string }) => string = () => '',
  ): GoalCheck => ({
    what,
    goal,
    cells: cols.map((c) => {
      const v = pick(c) ?? Number.NaN;
      return {
        measured: Number.isFinite(v)
          ? `${fmt(v, unit === ' µs' ? 0 : unit === ' MB' ? 1 : 2)}${unit}${more(c)}`
          : '–',
        verdict: judge(v),
      };
    }),
  });
  const G = GOALS;
  return [
    row(
      'one hop, wrk -t1 -c32 throughput × nginx',
      `≥ ${G.throughputVsNginx.goal}× (bar ${G.throughputVsNginx.bar}×)`,
      (c) => cmp(c.hop)?.throughputVsNginx,
      '×',
      (v) => verdict(v, G.throughputVsNginx.goal, G.throughputVsNginx.bar, true),
    ),
    row(
      'one hop, CPU per request at 1k req/s, engine + supervisor',
      `≤ ${G.cpuUsPerRequest.goal} µs`,
      (c) => cmp(c.hop)?.cpuUsPerRequest,
      ' µs',
      (v) => verdict(v, G.cpuUsPerRequest.goal, G.cpuUsPerRequest.bar),
    ),
    ...(['50', '99'] as const).map((p) => {
      const limit = p === '50' ? G.addedP50Ms : G.addedP99Ms;
      return row(
        `one hop, added p${p} at 1k req/s`,
        `≤ +${limit.goal} ms`,
        (c) => cmp(c.hop)?.[p === '50' ? 'addedP50Ms' : 'addedP99Ms'],
        ' ms',
        (v) => verdict(v, limit.goal, limit.bar),
      );
    }),
    ...(['50', '99'] as const).map((p) =>
      row(
        `mesh hop (mTLS), added p${p} × two nginx's added`,
        `≤ ${G.meshAddedVsNginx.goal}× (bar ${G.meshAddedVsNginx.bar}×)`,
        (c) => cmp(c.mesh)?.[p === '50' ? 'addedP50VsNginx' : 'addedP99VsNginx'],
        '×',
        (v) => verdict(v, G.meshAddedVsNginx.goal, G.meshAddedVsNginx.bar),
      ),
    ),
    row(
      "sidecar PSS at 1k req/s, summed (shared pages split machine-wide: below a pod's)",
      `≤ ${G.pssMb.goal} MB`,
      (c) => cmp(c.hop)?.pssMb,
      ' MB',
      (v) => verdict(v, G.pssMb.goal, G.pssMb.bar),
      (c) => ` (anon ${fmt(cmp(c.hop)?.pssAnonMb, 1)}, RSS ${fmt(cmp(c.hop)?.rssMb, 1)})`,
    ),
  ];
}

export function fmt(v: number | undefined, digits = 2): string {
  return v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

function signed(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
}

function times(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`;
}

function us(v: number): string {
  return Number.isFinite(v) ? v.toFixed(0) : '–';
}

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

function treeCell(p: PathResult, report: BenchReport): string {
  return report.baseline === undefined ? '' : p.tree === 'baseline' ? 'before' : 'now';
}

/** Rows of the one-hop or the mesh paths: name, tree (with --baseline), then `cells`. */
function pathTable(
  report: BenchReport,
  mesh: boolean,
  columns: readonly string[],
  cells: (p: PathResult, c: Comparison | undefined) => string[],
): Table {
  const withTree = report.baseline !== undefined;
  const header = [mesh ? 'mesh hop' : 'one hop', ...(withTree ? ['tree'] : []), ...columns];
  const rows = report.paths
    .filter((p) => MESH_PATHS.includes(p.path) === mesh)
    .map((p) => {
      const lead = [p.path, ...(withTree ? [treeCell(p, report)] : [])];
      if (p.skipped !== undefined) return [...lead, 'skipped', ...Array<string>(columns.length - 1).fill('')];
      return [
        ...lead,
        ...cells(
          p,
          report.comparisons.find((x) => x.id === p.id),
        ),
      ];
    });
  return { header, rows };
}

/** p50, p99, the added figures over direct and their ratios to nginx's (blank for direct). */
function latencyCells(p: PathResult, c: Comparison | undefined): string[] {
  const pc = p.latency?.percentilesMs;
  const added = p.path !== 'direct';
  return [
    fmt(pc?.['50']),
    fmt(pc?.['99']),
    added ? signed(c?.addedP50Ms) : '',
    added ? signed(c?.addedP99Ms) : '',
    added ? times(c?.addedP50VsNginx) : '',
    added ? times(c?.addedP99VsNginx) : '',
  ];
}

/** One hop: throughput, the 1k req/s latency, CPU per request and PSS, with ratio columns. */
export function oneHopTable(report: BenchReport): Table {
  const columns = [
    'req/s',
    '× nginx',
    'p50 ms',
    'p99 ms',
    '+p50',
    '+p99',
    '+p50 × nginx',
    '+p99 × nginx',
    'CPU µs/req sup',
    'engine',
    'sum',
    '× nginx',
    'PSS MB',
  ];
  return pathTable(report, false, columns, (p, c) => {
    const cost = p.cost;
    return [
      p.throughput === undefined ? '–' : Math.round(p.throughput.medianRps).toString(),
      times(c?.throughputVsNginx),
      ...latencyCells(p, c),
      cost === undefined ? '' : us(roleCpu(cost, 'supervisor')),
      cost === undefined ? '' : us(roleCpu(cost, 'engine')),
      cost === undefined ? '' : us(totalCpu(cost)),
      cost === undefined ? '' : times(c?.cpuVsNginx),
      cost === undefined ? '' : fmt(totalPss(cost), 1),
    ];
  });
}

/** The mesh hop: added latency over direct and its ratio to two nginx', CPU and PSS per side. */
export function meshTable(report: BenchReport): Table {
  const columns = [
    'p50 ms',
    'p99 ms',
    '+p50',
    '+p99',
    '+p50 × nginx',
    '+p99 × nginx',
    'CPU µs/req A',
    'B',
    'sum',
    '× nginx',
    'PSS MB A',
    'B',
  ];
  return pathTable(report, true, columns, (p, c) => {
    return [
      ...latencyCells(p, c),
      us(totalCpu(p.cost, 'a')),
      us(totalCpu(p.cost, 'b')),
      us(totalCpu(p.cost)),
      times(c?.cpuVsNginx),
      fmt(totalPss(p.cost, 'a'), 1),
      fmt(totalPss(p.cost, 'b'), 1),
    ];
  });
}

export function goalsTable(report: BenchReport): Table {
  const cols = goalColumns(report);
  const header = ['goal', 'goal (bar)', ...cols.flatMap((c) => [c.title, ''])];
  const rows = checkGoals(report).map((g) => [
    g.what,
    g.goal,
    ...g.cells.flatMap((c) => [c.measured, c.verdict === 'not measured' ? '' : c.verdict]),
  ]);
  return { header, rows };
}

function textOf(t: Table): string {
  const all = [t.header, ...t.rows];
  const widths = t.header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(t.header), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)].join('\n');
}

function markdownOf(t: Table, left = 1): string {
  const md = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [
    md(t.header),
    md(t.header.map((_, i) => (i < left ? '---' : '---:'))),
    ...t.rows.map((r) => md(r.map((c) => (c === 'not met' ? '**not met**' : c)))),
  ].join('\n');
}

/** The fixed-width tables for the terminal, with the notes below them. */
export function textTable(report: BenchReport): string {
  return [
    textOf(oneHopTable(report)),
    '',
    textOf(meshTable(report)),
    ...notesBelow(report),
    '',
    textOf(goalsTable(report)),
  ].join('\n');
}

/** The same tables as markdown, with the run's facts, ready for docs/performance.md. */
export function markdownReport(report: BenchReport): string {
  const m = report.machine;
  const base = report.baseline;
  const t = report.telemetry;
  return [
    `Run of ${report.startedAt}${report.quick ? ' (**--quick**: too short to quote)' : ''}: ` +
      `${String(m.cpus)} × ${String(m.cpuModel)}, Node ${String(m.node)}, ${String(m.nginx)}, ` +
      `commit ${String(m.commit ?? '?')}${base === undefined ? '' : ` ("now") against ${base.commit} ("before", \`--baseline\`)`}, ` +
      `load average before/after ${fmtLoad(m.loadavgStart)} / ${fmtLoad(m.loadavgEnd)}; ` +
      `other processes used ~${String(m.otherCpuCores ?? '?')} of the ${String(m.cpus)} cores while it ran.`,
    '',
    `Throughput: \`${String(report.method.throughput)}\`, ${String(report.method.rounds)} round(s) ` +
      `(paths alternating)${Number(report.method.warmupSec) > 0 ? ' after a warm-up' : ''}, median. ` +
      `Latency, CPU and PSS at ${String(report.method.latencyRate)} req/s: \`${String(report.method.latency)}\`, ` +
      `${String(report.method.latencyRounds)} alternating round(s) per path, percentiles over all of them` +
      (Number(report.method.jitWarmupSec ?? 0) > 0
        ? ` (the mesh paths, which have no throughput rounds, warmed up by wrk for ${String(report.method.jitWarmupSec)} s first, as their JIT needs)`
        : '') +
      '; ' +
      `"+p50/+p99" are added over direct (ms), "× nginx" divides by nginx's figure in the same run ` +
      `(the two-nginx mesh hop for the mesh rows). CPU is utime + stime from /proc/<pid>/stat ÷ requests.`,
    '',
    markdownOf(oneHopTable(report), report.baseline === undefined ? 1 : 2),
    '',
    markdownOf(meshTable(report), report.baseline === undefined ? 1 : 2),
    ...notesBelow(report).map((n) => `\n${n}`),
    ...(t === undefined
      ? []
      : [
          '',
          `Telemetry on: ${t.spansReceived} spans in ${t.exportRequests} OTLP exports received ` +
            `(${t.rejectedExports} rejected), ${t.scrapes} /metrics scrapes, ${t.accessLogLines} access-log lines.`,
        ]),
    '',
    markdownOf(goalsTable(report), 2),
  ].join('\n');
}

/** Lines under the tables: why a path was skipped, what the CPU and PSS figures are made of. */
export function notesBelow(report: BenchReport): string[] {
  return report.paths.flatMap((p) => {
    if (p.skipped !== undefined) return [`${p.id} skipped: ${p.skipped}`];
    const notes: string[] = [];
    const l = p.latency;
    if (l !== undefined && l.achievedRps < 0.95 * l.targetRps) {
      notes.push(
        `${p.id}: hey reached only ${Math.round(l.achievedRps)} of ${l.targetRps} req/s (responses too slow for the fixed rate)`,
      );
    }
    const other = Object.entries(l?.statuses ?? {}).filter(([code]) => code !== '200');
    if (other.length > 0)
      notes.push(
        `${p.id}: non-200 responses at the fixed rate: ${other.map(([c, n]) => `${n}× ${c}`).join(', ')}`,
      );
    if ((p.throughput?.errors ?? 0) > 0)
      notes.push(`${p.id}: ${p.throughput?.errors ?? 0} errors during the throughput rounds`);
    const c = p.cost;
    if (c === undefined || c.processes.length === 0) return notes;
    const sum = (f: (x: ProcessCost) => number): string =>
      c.processes.reduce((s, x) => s + f(x), 0).toFixed(1);
    const parts = c.processes
      .map(
        (x) =>
          `${c.processes.some((y) => y.side !== 'proxy') ? `${x.side.toUpperCase()} ` : ''}${x.role} ` +
          `${us(x.cpuUsPerRequest)} µs ${x.pssMb.toFixed(1)} MB`,
      )
      .join(', ');
    return [
      ...notes,
      `${p.id}: ${parts} (PSS; of it anonymous ${sum((x) => x.pssAnonMb)} MB; ` +
        `private ${sum((x) => x.privateMb)} MB, RSS ${sum((x) => x.rssMb)} MB; ` +
        `${c.requests} requests, ${c.samples} memory samples)`,
    ];
  });
}

function fmtLoad(v: unknown): string {
  return Array.isArray(v) ? v.map((x) => Number(x).toFixed(2)).join(' ') : '–';
}

/** Percentile keys as they appear in the JSON ("50", "99.9"). */
export const PERCENTILE_KEYS: readonly string[] = PERCENTILES.map(String);
