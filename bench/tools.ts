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
  const rank = Math.ceil((p / 100) * sorted.length);
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
