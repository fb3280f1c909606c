/**
 * The latency-percentile chart, hand-written SVG (no dependency, opens in any browser): one
 * line per path, percentiles evenly spaced along x, milliseconds on a linear y axis.
 */
import type { BenchReport, PathName, Tree } from './report.js';
import { PERCENTILE_KEYS } from './report.js';

const COLORS: Readonly<Record<PathName, string>> = {
  direct: '#555555',
  remora: '#d95f02',
  'remora-telemetry': '#e6ab02',
  nginx: '#1b9e77',
  'http-proxy': '#7570b3',
  'mesh-remora': '#e7298a',
  'mesh-remora-telemetry': '#a6761d',
  'mesh-nginx': '#66a61e',
};
/** Direct dashed, http-proxy dotted; a baseline tree's run of a path is dotted in the path's colour. */
function dashOf(path: PathName, tree: Tree): string {
  if (tree === 'baseline') return '1 3';
  return path === 'direct' ? '6 4' : path === 'http-proxy' ? '2 3' : '';
}

const W = 800;
const H = 560;
/** Up to 12 series (8 paths, 4 of them twice with --baseline) fit beside the plot. */
const LEGEND_STEP = 38;
const M = { left: 70, right: 230, top: 60, bottom: 60 };

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A log-scale latency axis: whole 1-2-5 steps around the data, so that p50 (tenths of a
 * millisecond) and p99.9 (tens of milliseconds) are both readable on one chart.
 */
export function logScale(values: readonly number[]): { min: number; max: number; ticks: number[] } {
  const finite = values.filter((v) => Number.isFinite(v) && v > 0);
  if (finite.length === 0) return { min: 0.1, max: 1, ticks: [0.1, 0.2, 0.5, 1] };
  const steps = [1, 2, 5];
  const all: number[] = [];
  for (let e = -3; e <= 5; e++) for (const m of steps) all.push(Number((m * 10 ** e).toPrecision(1)));
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const min = [...all].reverse().find((t) => t <= lo) ?? all[0] ?? 0.001;
  const max = all.find((t) => t >= hi && t > min) ?? all[all.length - 1] ?? 1e5;
  return { min, max, ticks: all.filter((t) => t >= min && t <= max) };
}

function num(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/0+$/, '').replace(/\.$/, '');
}

export function latencySvg(report: BenchReport): string {
  const series = report.paths.flatMap((p) => {
    const pc = p.latency?.percentilesMs;
    if (pc === undefined) return [];
    const values = PERCENTILE_KEYS.map((k) => pc[k]);
    if (values.some((v) => v === undefined || !Number.isFinite(v))) return [];
    return [
      {
        id: p.id,
        path: p.path,
        dash: dashOf(p.path, p.tree),
        values: values as number[],
        p50: pc['50'] ?? 0,
        p99: pc['99'] ?? 0,
      },
    ];
  });
  const axis = logScale(series.flatMap((s) => s.values));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (i: number): number =>
    M.left + (PERCENTILE_KEYS.length === 1 ? 0 : (i * plotW) / (PERCENTILE_KEYS.length - 1));
  const span = Math.log10(axis.max) - Math.log10(axis.min);
  // Below the axis minimum (a 0.0 ms reading at hey's 0.1 ms resolution) sits on the axis.
  const y = (v: number): number =>
    M.top + plotH - ((Math.log10(Math.max(v, axis.min)) - Math.log10(axis.min)) / span) * plotH;
  const rate = series.length > 0 ? report.paths.find((p) => p.latency)?.latency?.targetRps : undefined;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>Remora benchmark: latency percentiles per path</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${M.left}" y="24" font-size="16" font-weight="bold">Latency at ${rate === undefined ? '–' : rate} req/s, HTTP/1.1 keep-alive</text>`,
    `<text x="${M.left}" y="42" fill="#555555">${escapeXml(`${report.startedAt}${report.quick ? ' (quick run: too short to quote)' : ''}, ${String(report.method.latency)}, ${String(report.machine.cpus)} cores, other load ~${String(report.machine.otherCpuCores ?? '?')} cores`)}</text>`,
  );
  for (const v of axis.ticks) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${M.left}" y1="${yy}" x2="${M.left + plotW}" y2="${yy}" stroke="#e0e0e0"/>`,
      `<text x="${M.left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">${num(v)}</text>`,
    );
  }
  PERCENTILE_KEYS.forEach((k, i) => {
    const xx = x(i).toFixed(1);
    out.push(
      `<line x1="${xx}" y1="${M.top}" x2="${xx}" y2="${M.top + plotH}" stroke="#f0f0f0"/>`,
      `<text x="${xx}" y="${M.top + plotH + 18}" text-anchor="middle">p${k}</text>`,
    );
  });
  out.push(
    `<line x1="${M.left}" y1="${M.top + plotH}" x2="${M.left + plotW}" y2="${M.top + plotH}" stroke="#000000"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}" stroke="#000000"/>`,
    `<text x="${M.left + plotW / 2}" y="${H - 16}" text-anchor="middle">percentile</text>`,
    `<text transform="translate(20 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>`,
  );
  for (const s of series) {
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    const dash = s.dash === '' ? '' : ` stroke-dasharray="${s.dash}"`;
    out.push(`<polyline points="${pts}" fill="none" stroke="${COLORS[s.path]}" stroke-width="2.5"${dash}/>`);
    s.values.forEach((v, i) => {
      out.push(
        `<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3.5" fill="${COLORS[s.path]}"><title>${escapeXml(`${s.id} p${PERCENTILE_KEYS[i] ?? ''}: ${v.toFixed(2)} ms`)}</title></circle>`,
      );
    });
  }
  const lx = M.left + plotW + 20;
  out.push(`<text x="${lx}" y="${M.top}" font-weight="bold">path (p50 / p99 ms)</text>`);
  series.forEach((s, i) => {
    const ly = M.top + 22 + i * LEGEND_STEP;
    const dash = s.dash === '' ? '' : ` stroke-dasharray="${s.dash}"`;
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${COLORS[s.path]}" stroke-width="2.5"${dash}/>`,
      `<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${escapeXml(s.id)}</text>`,
      `<text x="${lx + 30}" y="${ly + 15}" dominant-baseline="middle" fill="#555555">${s.p50.toFixed(2)} / ${s.p99.toFixed(2)}</text>`,
    );
  });
  if (series.length === 0) {
    out.push(
      `<text x="${M.left + plotW / 2}" y="${M.top + plotH / 2}" text-anchor="middle">no latency measured</text>`,
    );
  }
  out.push('</svg>', '');
  return out.join('\n');
}
