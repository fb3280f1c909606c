/**
 * Renders one trace, as an OTLP receiver decoded it (otlp.ts), as an SVG picture: a row per
 * span, indented by depth, a bar on a shared time axis, the span's service, kind, route, status
 * and duration beside it, and the identities the proxies verified (`remora.source.identity`,
 * `remora.destination.identity`) under it. Pure: spans in, SVG text out (docs/telemetry.md).
 */
import type { AttrValue, DecodedSpan } from './otlp.js';

const KIND: Readonly<Record<number, string>> = {
  1: 'internal',
  2: 'server',
  3: 'client',
  4: 'producer',
  5: 'consumer',
};
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#e15759', '#9c755f'];

const ROW = 44;
const LABEL_W = 480;
const BAR_W = 520;
const TOP = 58;
const PAD = 16;

/** One drawn row, exposed for tests and for other renderers. */
export interface TraceRow {
  readonly span: DecodedSpan;
  readonly depth: number;
  /** offset from the trace's first start and duration, in milliseconds */
  readonly startMs: number;
  readonly durationMs: number;
  readonly service: string;
  readonly identities: string;
}

/** The spans of `traceId` in drawing order: depth-first by parent, siblings by start time. */
export function traceRows(spans: readonly DecodedSpan[], traceId: string): TraceRow[] {
  const inTrace = spans.filter((s) => s.traceId === traceId);
  if (inTrace.length === 0) return [];
  const ids = new Set(inTrace.map((s) => s.spanId));
  const children = new Map<string, DecodedSpan[]>();
  for (const s of inTrace) {
    // A parent that was not exported (the caller's own span) makes this span a root.
    const parent = ids.has(s.parentSpanId) ? s.parentSpanId : '';
    const list = children.get(parent);
    if (list === undefined) children.set(parent, [s]);
    else list.push(s);
  }
  const t0 = inTrace.reduce(
    (m, s) => (s.startTimeUnixNano < m ? s.startTimeUnixNano : m),
    inTrace[0]!.startTimeUnixNano,
  );
  const rows: TraceRow[] = [];
  const walk = (parent: string, depth: number): void => {
    const kids = [...(children.get(parent) ?? [])].sort((a, b) =>
      a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1,
    );
    for (const s of kids) {
      rows.push({
        span: s,
        depth,
        startMs: Number(s.startTimeUnixNano - t0) / 1e6,
        durationMs: Number(s.endTimeUnixNano - s.startTimeUnixNano) / 1e6,
        service: text(s.resource['service.name']) ?? '?',
        identities: identities(s.attributes),
      });
      walk(s.spanId, depth + 1);
    }
  };
  walk('', 0);
  return rows;
}

function text(v: AttrValue | undefined): string | undefined {
  return v === undefined ? undefined : String(v);
}

function identities(a: Record<string, AttrValue>): string {
  const src = text(a['remora.source.identity']);
  const dst = text(a['remora.destination.identity']);
  if (src === undefined && dst === undefined) return '';
  return `${src ?? 'unknown'} → ${dst ?? 'unknown'}`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A round step for the time axis: about five ticks over `total` milliseconds. */
function tickStep(total: number): number {
  const raw = total / 5;
  const p = 10 ** Math.floor(Math.log10(raw > 0 ? raw : 1));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export function renderTraceSvg(spans: readonly DecodedSpan[], traceId: string, title?: string): string {
  const rows = traceRows(spans, traceId);
  const total = Math.max(0.001, ...rows.map((r) => r.startMs + r.durationMs));
  const scale = BAR_W / total;
  const width = PAD + LABEL_W + BAR_W + PAD;
  const height = TOP + rows.length * ROW + PAD;
  const colors = new Map<string, string>();
  for (const r of rows)
    if (!colors.has(r.service)) colors.set(r.service, PALETTE[colors.size % PALETTE.length] as string);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${PAD}" y="22" font-size="15" font-weight="bold">${esc(title ?? `trace ${traceId}`)}</text>`,
  ];
  // Time axis with ticks and grid lines.
  const step = tickStep(total);
  const x0 = PAD + LABEL_W;
  for (let t = 0; t <= total + 1e-9; t += step) {
    const x = x0 + t * scale;
    out.push(
      `<line class="tick" x1="${x.toFixed(1)}" y1="${TOP - 14}" x2="${x.toFixed(1)}" y2="${height - PAD}" stroke="#dddddd"/>`,
      `<text x="${x.toFixed(1)}" y="${TOP - 18}" text-anchor="middle" fill="#555555">${esc(`${Number(t.toFixed(3))} ms`)}</text>`,
    );
  }
  rows.forEach((r, i) => {
    const y = TOP + i * ROW;
    const s = r.span;
    const status = text(s.attributes['http.response.status_code']) ?? '-';
    const path = text(s.attributes['url.path']) ?? '';
    const indent = PAD + r.depth * 14;
    const color = colors.get(r.service) as string;
    const error = s.statusCode === 2;
    const bx = x0 + r.startMs * scale;
    const bw = Math.max(2, r.durationMs * scale);
    out.push(
      `<g class="span" data-span-id="${esc(s.spanId)}" data-parent-span-id="${esc(s.parentSpanId)}" data-service="${esc(r.service)}" data-kind="${esc(KIND[s.kind] ?? String(s.kind))}">`,
      `<text x="${indent}" y="${y + 16}" font-weight="bold" fill="${color}">${esc(`${r.service} · ${KIND[s.kind] ?? s.kind}`)}</text>`,
      `<text x="${indent + 150}" y="${y + 16}">${esc(`${s.name} ${path} → ${status}`)}</text>`,
      `<text x="${indent}" y="${y + 32}" font-size="10" fill="#555555">${esc(r.identities)}</text>`,
      `<rect x="${bx.toFixed(1)}" y="${y + 6}" width="${bw.toFixed(1)}" height="16" rx="3" fill="${color}"${error ? ' stroke="#d62728" stroke-width="2"' : ''}/>`,
      `<text x="${Math.min(bx + bw + 4, width - PAD - 60).toFixed(1)}" y="${y + 36}" font-size="10" fill="#333333">${esc(`${r.durationMs.toFixed(2)} ms${error ? ' ERROR' : ''}`)}</text>`,
      `</g>`,
    );
  });
  out.push('</svg>', '');
  return out.join('\n');
}
