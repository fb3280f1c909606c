/**
 * Parsers for the load tools' output (wrk's text report, hey's CSV) and the statistics drawn
 * from them. Pure functions: the tests feed them recorded output and broken output.
 */

export interface WrkResult {
  readonly requestsPerSec: number;
  readonly requests: number;
  readonly durationSec: number;
  /** Responses outside 2xx/3xx plus socket errors: a path that errors is not measured fairly. */
  readonly errors: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number };
}

const UNIT_TO_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function toMs(value: string, unit: string): number {
  const factor = UNIT_TO_MS[unit];
  if (factor === undefined) throw new Error(`wrk: unknown time unit "${unit}"`);
  return Number(value) * factor;
}

/** Parses `wrk --latency` output; throws with the output when it is not a wrk report. */
export function parseWrk(output: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),/m.exec(output);
  if (
    rps?.[1] === undefined ||
    total?.[1] === undefined ||
    total[2] === undefined ||
    total[3] === undefined
  ) {
    throw new Error(`not a wrk report (no "Requests/sec" / "N requests in"):\n${output.slice(0, 2000)}`);
  }
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  let errors = Number(non2xx?.[1] ?? 0);
  if (sock !== null) errors += sock.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const pct = (p: number): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
    return m?.[1] === undefined || m[2] === undefined ? Number.NaN : toMs(m[1], m[2]);
  };
  return {
    requestsPerSec: Number(rps[1]),
    requests: Number(total[1]),
    durationSec: toMs(total[2], total[3]) / 1000,
    errors,
    latencyMs: { p50: pct(50), p90: pct(90), p99: pct(99) },
  };
}

export interface HeyResult {
  /** Latency of every successful request in milliseconds, sorted ascending. */
  readonly latenciesMs: readonly number[];
  /** Count per HTTP status code; requests that failed at the socket level are not in hey's CSV. */
  readonly statuses: Readonly<Record<string, number>>;
}

/** Parses `hey -o csv` output (one row per successful request). */
export function parseHeyCsv(csv: string): HeyResult {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0]?.split(',') ?? [];
  const timeCol = header.indexOf('response-time');
  const statusCol = header.indexOf('status-code');
  if (timeCol < 0 || statusCol < 0) {
    throw new Error(`not hey CSV output (no "response-time,...,status-code" header):\n${csv.slice(0, 500)}`);
  }
  const latenciesMs: number[] = [];
  const statuses: Record<string, number> = {};
  for (let i = 1; i < lines.length; i++) {
    const cols = (lines[i] ?? '').split(',');
    const t = Number(cols[timeCol]);
    const status = cols[statusCol];
    if (!Number.isFinite(t) || status === undefined || status === '') {
      throw new Error(`hey CSV line ${i + 1} is malformed: "${lines[i] ?? ''}"`);
    }
    latenciesMs.push(t * 1000);
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  latenciesMs.sort((a, b) => a - b);
  return { latenciesMs, statuses };
}

/** Nearest-rank percentile of ascending `sorted` values; NaN when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  // The epsilon keeps float error from moving the rank up one (0.999 × 1000 = 999.0000000000001).
  const rank = Math.ceil((p / 100) * sorted.length - 1e-9);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  const hi = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? hi : ((sorted[mid - 1] ?? Number.NaN) + hi) / 2;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((s, v) => s + v, 0) / values.length;
}

/** The percentiles the report and the chart show. */
export const PERCENTILES = Object.freeze([50, 75, 90, 95, 99, 99.9] as const);
export type Percentile = (typeof PERCENTILES)[number];

/** The fields of `/proc/<pid>/stat` the bench reads (clock ticks for the times). */
export interface ProcStat {
  /** The command name (field 2), without its parentheses. */
  readonly comm: string;
  readonly ppid: number;
  /** User and system CPU of the process itself, all its threads (fields 14 and 15). */
  readonly utime: number;
  readonly stime: number;
  /** Of its reaped children (fields 16 and 17). */
  readonly cutime: number;
  readonly cstime: number;
}

/**
 * Parses one `/proc/<pid>/stat` line. The command name may hold spaces and parentheses, so the
 * fields are counted from its last ')'; throws on text that is not a stat line.
 */
export function parseProcStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const f =
    close < 0
      ? []
      : text
          .slice(close + 2)
          .trim()
          .split(' ');
  // f[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
  const nums = [f[1], f[11], f[12], f[13], f[14]].map((v) => (v === undefined ? Number.NaN : Number(v)));
  if (open < 0 || close < open || nums.some((n) => !Number.isInteger(n) || n < 0))
    throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(text.slice(0, 200))}`);
  const [ppid, utime, stime, cutime, cstime] = nums as [number, number, number, number, number];
  return { comm: text.slice(open + 1, close), ppid, utime, stime, cutime, cstime };
}

/** The figures of `/proc/<pid>/smaps_rollup` the bench reports, in kB. */
export interface SmapsRollup {
  readonly rssKb: number;
  /** Proportional set size: each shared page divided among the processes mapping it. */
  readonly pssKb: number;
  /** PSS of anonymous memory (heaps, stacks) and of file-backed pages (the node binary, libraries). */
  readonly pssAnonKb: number;
  readonly pssFileKb: number;
  /** Pages only this process maps (USS): Private_Clean + Private_Dirty. */
  readonly privateKb: number;
}

/**
 * Parses `/proc/<pid>/smaps_rollup`; throws when there is no `Pss:` line. Pss_Anon and Pss_File
 * (Linux 5.10+) are 0 on kernels without them.
 */
export function parseSmapsRollup(text: string): SmapsRollup {
  const field = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  };
  const pssKb = field('Pss');
  if (pssKb === undefined)
    throw new Error(`no "Pss: N kB" line in smaps_rollup: ${JSON.stringify(text.slice(0, 200))}`);
  return {
    rssKb: field('Rss') ?? 0,
    pssKb,
    pssAnonKb: field('Pss_Anon') ?? 0,
    pssFileKb: field('Pss_File') ?? 0,
    privateKb: (field('Private_Clean') ?? 0) + (field('Private_Dirty') ?? 0),
  };
}

/**
 * CPU µs per request from a clock-tick delta (`hz` ticks per second, USER_HZ = 100 on Linux);
 * NaN when no request was served, so that a figure never divides by zero into Infinity.
 */
export function cpuUsPerRequest(ticks: number, requests: number, hz = 100): number {
  return requests > 0 && ticks >= 0 ? (ticks * 1e6) / hz / requests : Number.NaN;
}
