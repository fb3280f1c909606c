/**
 * The two measurements of `npm run bench`, each alternating the paths round by round:
 * throughput (wrk, one-hop paths) and the fixed 1k req/s run (hey), during which every proxy
 * process's CPU (utime + stime, /proc/<pid>/stat) and PSS (/proc/<pid>/smaps_rollup) are read.
 */
import type { Member, Target } from './paths.js';
import { commandOf, descendants, readProcStat, readSmaps } from './procs.js';
import type { Processes } from './procs.js';
import { PERCENTILE_KEYS } from './report.js';
import type { Cost, Latency, ProcessCost, Throughput } from './report.js';
import { cpuUsPerRequest, mean, median, parseHeyCsv, parseWrk, percentile } from './tools.js';
import type { SmapsRollup } from './tools.js';

export interface Settings {
  readonly warmupSec: number;
  readonly throughputSec: number;
  readonly rounds: number;
  readonly latencySec: number;
  readonly latencyRounds: number;
  /** A hey run per path before the latency rounds (mesh tunnels, TLS sessions, JIT). */
  readonly latencyWarmupSec: number;
  /**
   * wrk for this long on each path that had no throughput rounds (the mesh paths) before its
   * latency warm-up: an engine's JIT settles after ~15,000 requests (docs/performance.md,
   * "Counting instructions"), which the 1k req/s warm-up alone does not reach.
   */
  readonly jitWarmupSec: number;
  readonly wrkThreads: number;
  readonly wrkConnections: number;
  readonly heyConcurrency: number;
  /** Per hey worker: concurrency × this = the fixed rate. */
  readonly heyRatePerWorker: number;
  /** How often telemetry-on sidecars' /metrics are scraped (Prometheus: 15-30 s). */
  readonly scrapeEverySec: number;
}

/** Seconds between PSS samples during the fixed-rate runs (reading smaps_rollup walks the page tables). */
export const MEMORY_SAMPLE_S = 1;
const MEMORY_SAMPLE_MS = MEMORY_SAMPLE_S * 1000;

/** wrk on every target: a warm-up, then rounds with the order rotating; req/s per round. */
export async function measureThroughput(
  procs: Processes,
  targets: readonly Target[],
  s: Settings,
  log: (msg: string) => void,
): Promise<Map<string, Throughput>> {
  const wrkArgs = (url: string, sec: number): string[] => [
    `-t${s.wrkThreads}`,
    `-c${s.wrkConnections}`,
    `-d${sec}s`,
    '--latency',
    url,
  ];
  if (s.warmupSec > 0) {
    for (const t of targets) {
      log(`warm-up ${t.id} (${s.warmupSec} s)`);
      await runWrk(procs, wrkArgs(t.url, s.warmupSec));
    }
  }
  const rounds = new Map(targets.map((t) => [t.id, { rps: [] as number[], errors: 0 }]));
  for (let r = 0; r < s.rounds; r++) {
    for (const t of rotate(targets, r)) {
      const w = await runWrk(procs, wrkArgs(t.url, s.throughputSec));
      const acc = rounds.get(t.id)!;
      acc.rps.push(w.requestsPerSec);
      acc.errors += w.errors;
      const errors = w.errors > 0 ? ` (${w.errors} errors)` : '';
      log(`round ${r + 1}/${s.rounds} ${t.id.padEnd(22)} ${Math.round(w.requestsPerSec)} req/s${errors}`);
    }
  }
  return new Map(
    [...rounds].map(([id, acc]) => [
      id,
      { roundsRps: acc.rps, medianRps: median(acc.rps), errors: acc.errors },
    ]),
  );
}

/** Round r runs the targets starting at the r-th: A B C, B C A, C A B, ... */
export function rotate<T>(items: readonly T[], r: number): T[] {
  return items.map((_, i) => items[(i + r) % items.length]!);
}

/**
 * wrk on each target for `jitWarmupSec` (targets without throughput rounds): the engines' JIT
 * tiers up before CPU is counted, as in a sidecar that has run for a while.
 */
export async function warmUpJit(
  procs: Processes,
  targets: readonly Target[],
  s: Settings,
  log: (msg: string) => void,
): Promise<void> {
  if (s.jitWarmupSec <= 0) return;
  for (const t of targets) {
    const w = await runWrk(procs, [
      `-t${s.wrkThreads}`,
      `-c${s.wrkConnections}`,
      `-d${s.jitWarmupSec}s`,
      t.url,
    ]);
    log(`warm-up ${t.id}: wrk ${s.jitWarmupSec} s, ${w.requests} requests`);
  }
}

async function runWrk(procs: Processes, args: string[]): Promise<ReturnType<typeof parseWrk>> {
  const r = await procs.run('wrk', 'wrk', args);
  if (r.code !== 0)
    throw new Error(`wrk ${args.join(' ')} exited ${String(r.code)}:\n${r.stderr}${r.stdout}`);
  return parseWrk(r.stdout);
}

/** A process of a target, as named in the figures. */
interface Proc {
  readonly key: string;
  readonly side: string;
  readonly role: string;
  readonly pid: number;
}

/** The processes of a member now: its root and its descendants, with their roles. */
export function roleOf(kind: Member['kind'], isRoot: boolean, name: string): string {
  if (kind === 'remora') return isRoot ? 'supervisor' : 'engine';
  if (kind === 'nginx') return isRoot ? 'nginx master' : 'nginx worker';
  return isRoot ? name : `${name} child`;
}

function processesOf(t: Target): Proc[] {
  return t.members.flatMap((m) =>
    [m.proc.pid, ...descendants(m.proc.pid)].map((pid) => {
      const role = roleOf(m.kind, pid === m.proc.pid, m.proc.name);
      return { key: `${m.side}/${role}`, side: m.side, role, pid };
    }),
  );
}

function ownTicks(pid: number): number | undefined {
  const st = readProcStat(pid);
  return st === undefined ? undefined : st.utime + st.stime;
}

interface CostAcc {
  requests: number;
  samples: number;
  ticks: Map<string, number>;
  commands: Map<string, string>;
  /** The sample with the largest PSS sum: kB per key. */
  best: { pssKb: number; mem: Map<string, SmapsRollup> } | undefined;
}

/**
 * hey at the fixed rate on every target: one warm-up run each, then `latencyRounds` rounds with
 * the order rotating; the latencies of all rounds pooled, and each proxy process's CPU over the
 * same seconds divided by the requests served.
 */
export async function measureLatency(
  procs: Processes,
  targets: readonly Target[],
  s: Settings,
  log: (msg: string) => void,
): Promise<Map<string, { latency: Latency; cost?: Cost }>> {
  const rate = s.heyConcurrency * s.heyRatePerWorker;
  const hey = async (url: string, sec: number): Promise<string> => {
    const args = [
      '-z',
      `${sec}s`,
      '-q',
      String(s.heyRatePerWorker),
      '-c',
      String(s.heyConcurrency),
      '-o',
      'csv',
      url,
    ];
    const r = await procs.run('hey', 'hey', args);
    if (r.code !== 0) throw new Error(`hey ${args.join(' ')} exited ${String(r.code)}:\n${r.stderr}`);
    return r.stdout;
  };
  if (s.latencyWarmupSec > 0) {
    for (const t of targets) {
      log(`warm-up ${t.id} at ${rate} req/s (${s.latencyWarmupSec} s)`);
      await hey(t.url, s.latencyWarmupSec);
    }
  }
  const lat = new Map(
    targets.map((t) => [t.id, { ms: [] as number[], statuses: {} as Record<string, number> }]),
  );
  const costs = new Map<string, CostAcc>(
    targets.map((t) => [
      t.id,
      { requests: 0, samples: 0, ticks: new Map(), commands: new Map(), best: undefined },
    ]),
  );
  for (let r = 0; r < s.latencyRounds; r++) {
    for (const t of rotate(targets, r)) {
      const ps = processesOf(t);
      const acc = costs.get(t.id)!;
      for (const p of ps) acc.commands.set(p.key, commandOf(p.pid));
      const t0 = new Map(ps.map((p) => [p.pid, ownTicks(p.pid)]));
      const sample = (): void => {
        if (ps.length === 0) return;
        const mem = new Map<string, SmapsRollup>();
        for (const p of ps) {
          const m = readSmaps(p.pid);
          if (m !== undefined) mem.set(p.key, addSmaps(mem.get(p.key), m));
        }
        const sum = [...mem.values()].reduce((a, b) => a + b.pssKb, 0);
        acc.samples++;
        if (acc.best === undefined || sum > acc.best.pssKb) acc.best = { pssKb: sum, mem };
      };
      const timer = ps.length === 0 ? undefined : setInterval(sample, MEMORY_SAMPLE_MS);
      let csv: string;
      try {
        csv = await hey(t.url, s.latencySec);
      } finally {
        if (timer !== undefined) clearInterval(timer);
      }
      for (const p of ps) {
        const a = t0.get(p.pid);
        const b = ownTicks(p.pid);
        if (a !== undefined && b !== undefined) acc.ticks.set(p.key, (acc.ticks.get(p.key) ?? 0) + (b - a));
      }
      sample();
      const h = parseHeyCsv(csv);
      const l = lat.get(t.id)!;
      l.ms.push(...h.latenciesMs);
      for (const [code, n] of Object.entries(h.statuses)) l.statuses[code] = (l.statuses[code] ?? 0) + n;
      acc.requests += h.latenciesMs.length;
      const cpu = [...acc.ticks.values()].reduce((x, y) => x + y, 0);
      log(
        `latency round ${r + 1}/${s.latencyRounds} ${t.id.padEnd(22)} p50 ${percentile(
          h.latenciesMs.slice().sort((x, y) => x - y),
          50,
        ).toFixed(2)} ms` +
          (ps.length === 0 ? '' : `, CPU so far ${cpuUsPerRequest(cpu, acc.requests).toFixed(0)} µs/req`),
      );
    }
  }
  const out = new Map<string, { latency: Latency; cost?: Cost }>();
  for (const t of targets) {
    const l = lat.get(t.id)!;
    const sorted = l.ms.sort((a, b) => a - b);
    out.set(t.id, {
      latency: latencyOf(sorted, l.statuses, rate, s.latencySec * s.latencyRounds),
      ...(t.members.length === 0 ? {} : { cost: costOf(costs.get(t.id)!) }),
    });
  }
  return out;
}

/** The latency figures of `sorted` (ms, ascending) over `seconds` of a fixed `rate`. */
export function latencyOf(
  sorted: readonly number[],
  statuses: Readonly<Record<string, number>>,
  rate: number,
  seconds: number,
): Latency {
  // hey's resolution is 0.1 ms; rounding to µs only removes float noise (0.30000000000000004).
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  const percentilesMs: Record<string, number> = {};
  for (const k of PERCENTILE_KEYS) percentilesMs[k] = round(percentile(sorted, Number(k)));
  return {
    targetRps: rate,
    achievedRps: sorted.length / seconds,
    requests: sorted.length,
    statuses,
    percentilesMs,
    meanMs: round(mean(sorted)),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

function costOf(acc: CostAcc): Cost {
  const mb = (kb: number | undefined): number => Number(((kb ?? 0) / 1024).toFixed(1));
  const keys = [...new Set([...acc.commands.keys()])];
  const processes: ProcessCost[] = keys.map((key) => {
    const [side = '', role = ''] = key.split('/');
    const m = acc.best?.mem.get(key);
    return {
      side,
      role,
      command: acc.commands.get(key) ?? '?',
      cpuUsPerRequest: Number(cpuUsPerRequest(acc.ticks.get(key) ?? 0, acc.requests).toFixed(1)),
      pssMb: mb(m?.pssKb),
      pssAnonMb: mb(m?.pssAnonKb),
      privateMb: mb(m?.privateKb),
      rssMb: mb(m?.rssKb),
    };
  });
  return { requests: acc.requests, samples: acc.samples, processes };
}

/** Two processes of one role (several engines) summed. */
function addSmaps(a: SmapsRollup | undefined, b: SmapsRollup): SmapsRollup {
  if (a === undefined) return b;
  return {
    rssKb: a.rssKb + b.rssKb,
    pssKb: a.pssKb + b.pssKb,
    pssAnonKb: a.pssAnonKb + b.pssAnonKb,
    pssFileKb: a.pssFileKb + b.pssFileKb,
    privateKb: a.privateKb + b.privateKb,
  };
}
