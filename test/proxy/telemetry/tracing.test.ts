import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTelemetryConfig } from '../../../proxy/src/telemetry/config.js';
import type { TelemetryInput, TracingConfig } from '../../../proxy/src/telemetry/config.js';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import type { Sampler } from '@opentelemetry/sdk-trace-base';
import { ATTR, HexIds, Tracing, rootBound, w3cParent } from '../../../proxy/src/telemetry/tracing.js';
import type { HttpRequestInfo, OutgoingHeaders } from '../../../proxy/src/telemetry/tracing.js';
import { SPAN_KIND, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import type { OtlpReceiver } from '../../helpers/otlp-receiver.js';

const BASE: TelemetryInput = {
  accessLog: true,
  accessLogSample: 1,
  traceSampling: 1,
  podName: 'reviews-7d9f-abcde',
  podNamespace: 'shop',
  serviceAccount: 'reviews',
  workload: 'reviews',
  otel: {},
};

function tracingConfig(otel: TelemetryInput['otel'], extra: Partial<TelemetryInput> = {}): TracingConfig {
  const { config, errors } = parseTelemetryConfig({ ...BASE, ...extra, otel });
  expect(errors).toEqual([]);
  if (config.tracing === undefined) throw new Error('tracing unexpectedly off');
  return config.tracing;
}

const INFO: HttpRequestInfo = {
  method: 'GET',
  path: '/items/42?token=secret',
  scheme: 'http',
  httpVersion: '1.1',
  serverAddress: 'reviews.shop',
  serverPort: 9080,
  peerAddress: '10.0.0.7',
  userAgent: 'curl/8.0',
};

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

function parseTraceparent(v: unknown): { traceId: string; parentId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(v));
  if (!m) throw new Error(`not a traceparent: ${String(v)}`);
  return { traceId: m[1] as string, parentId: m[2] as string, flags: m[3] as string };
}

describe('Tracing (real OTLP/HTTP receiver)', () => {
  let rx: OtlpReceiver;
  let tracing: Tracing;

  beforeAll(async () => {
    rx = await startOtlpReceiver();
    tracing = new Tracing(
      tracingConfig({ endpoint: rx.url, bspScheduleDelay: '50' }),
      parseTelemetryConfig(BASE).config.workload,
    );
  });
  afterAll(async () => {
    await tracing.shutdown();
    await rx.close();
  });

  it('continues the caller W3C trace in a SERVER span and makes itself the upstream parent', async () => {
    const t = tracing.startServer(
      { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, tracestate: 'vendor=abc' },
      INFO,
      { workload: 'frontend', namespace: 'shop', identity: 'spiffe://cluster.local/ns/shop/sa/frontend' },
    );
    const out: OutgoingHeaders = { traceparent: 'stale', host: 'x' };
    tracing.inject(t, out);
    tracing.end(t, 200);
    const tp = parseTraceparent(out.traceparent);
    expect(tp.traceId).toBe(CALLER_TRACE);
    expect(tp.flags).toBe('01');
    expect(out.tracestate).toBe('vendor=abc');

    await tracing.forceFlush();
    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === tp.parentId));
    const span = spans.find((x) => x.spanId === tp.parentId);
    expect(span).toMatchObject({
      traceId: CALLER_TRACE,
      parentSpanId: CALLER_SPAN,
      kind: SPAN_KIND.server,
      name: 'GET',
      statusCode: 0,
      traceState: 'vendor=abc',
    });
    expect(span?.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/items/42',
      'url.scheme': 'http',
      'http.response.status_code': 200,
      'server.address': 'reviews.shop',
      'server.port': 9080,
      'network.peer.address': '10.0.0.7',
      'network.protocol.version': '1.1',
      'user_agent.original': 'curl/8.0',
      [ATTR.direction]: 'inbound',
      [ATTR.sourceWorkload]: 'frontend',
      [ATTR.sourceIdentity]: 'spiffe://cluster.local/ns/shop/sa/frontend',
      [ATTR.destinationWorkload]: 'reviews',
      [ATTR.destinationNamespace]: 'shop',
      [ATTR.destinationIdentity]: 'spiffe://cluster.local/ns/shop/sa/reviews',
    });
    expect(JSON.stringify(span?.attributes)).not.toContain('secret');
    expect(span?.resource).toMatchObject({ 'service.name': 'reviews', 'k8s.pod.name': 'reviews-7d9f-abcde' });
  });

  it('starts a new trace when the request carries none, and marks 5xx as an error', async () => {
    const t = tracing.startClient(
      {},
      { ...INFO, method: 'POST' },
      { workload: 'ratings', namespace: 'shop' },
    );
    const out: OutgoingHeaders = {};
    tracing.inject(t, out);
    tracing.end(t, 503, undefined, undefined, 2);
    const tp = parseTraceparent(out.traceparent);
    expect(out.tracestate).toBeUndefined();
    await tracing.forceFlush();
    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === tp.parentId));
    const span = spans.find((x) => x.spanId === tp.parentId);
    expect(span).toMatchObject({
      traceId: tp.traceId,
      parentSpanId: '',
      kind: SPAN_KIND.client,
      statusCode: 2,
    });
    expect(span?.attributes).toMatchObject({
      [ATTR.direction]: 'outbound',
      [ATTR.sourceWorkload]: 'reviews',
      [ATTR.destinationWorkload]: 'ratings',
      'error.type': '503',
      [ATTR.retries]: 2, // the request was retried twice
    });
  });

  it('accepts B3 single-header input and rewrites the b3 header with the proxy span as parent', async () => {
    const t = tracing.startServer({ b3: `${CALLER_TRACE}-${CALLER_SPAN}-1` }, INFO);
    const out: OutgoingHeaders = { b3: `${CALLER_TRACE}-${CALLER_SPAN}-1` };
    tracing.inject(t, out);
    tracing.end(t, 200);
    const tp = parseTraceparent(out.traceparent);
    expect(tp.traceId).toBe(CALLER_TRACE);
    expect(out.b3).toBe(`${CALLER_TRACE}-${tp.parentId}-1`);
    await tracing.forceFlush();
    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === tp.parentId));
    expect(spans.find((x) => x.spanId === tp.parentId)?.parentSpanId).toBe(CALLER_SPAN);
  });

  it('accepts B3 multi-header input and drops the stale X-B3-ParentSpanId', async () => {
    const headers = {
      'x-b3-traceid': CALLER_TRACE,
      'x-b3-spanid': CALLER_SPAN,
      'x-b3-parentspanid': '1111111111111111',
      'x-b3-sampled': '1',
    };
    const t = tracing.startServer(headers, INFO);
    const out: OutgoingHeaders = { ...headers };
    tracing.inject(t, out);
    tracing.end(t, 204);
    const tp = parseTraceparent(out.traceparent);
    expect(out['x-b3-traceid']).toBe(CALLER_TRACE);
    expect(out['x-b3-spanid']).toBe(tp.parentId);
    expect(out['x-b3-parentspanid']).toBeUndefined();
    await tracing.forceFlush();
    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === tp.parentId));
    expect(spans.find((x) => x.spanId === tp.parentId)?.parentSpanId).toBe(CALLER_SPAN);
  });

  it('follows an unsampled caller: propagates flags 00 and exports nothing', async () => {
    const before = tracing.stats();
    const t = tracing.startServer({ traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-00` }, INFO);
    const out: OutgoingHeaders = {};
    tracing.inject(t, out);
    tracing.end(t, 200);
    const tp = parseTraceparent(out.traceparent);
    expect(tp).toMatchObject({ traceId: CALLER_TRACE, flags: '00' });
    expect(tp.parentId).not.toBe(CALLER_SPAN);
    await tracing.forceFlush();
    expect(tracing.stats().exported).toBe(before.exported);
    expect(rx.spans.some((s) => s.spanId === tp.parentId)).toBe(false);
  });

  it('a malformed traceparent starts a fresh trace instead of failing the request', () => {
    const t = tracing.startServer({ traceparent: '00-zz-not-valid' }, INFO);
    const out: OutgoingHeaders = {};
    tracing.inject(t, out);
    tracing.end(t, 200);
    const tp = parseTraceparent(out.traceparent);
    expect(tp.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(tp.traceId).not.toBe('0'.repeat(32));
  });
});

describe('Tracing sampling', () => {
  it('samples about the configured ratio of root traces (REMORA_TRACE_SAMPLING)', async () => {
    const rx = await startOtlpReceiver({ discard: true });
    const tracing = new Tracing(
      tracingConfig({ endpoint: rx.url }, { traceSampling: 0.1 }),
      parseTelemetryConfig(BASE).config.workload,
    );
    try {
      let sampled = 0;
      for (let i = 0; i < 2000; i++) {
        const t = tracing.startServer({}, INFO);
        if (t.span.isRecording()) sampled++;
        tracing.end(t, 200);
      }
      // Trace-id ratio sampling is a hash over random ids: binomial(2000, 0.1) stays in 120..280.
      expect(sampled).toBeGreaterThan(120);
      expect(sampled).toBeLessThan(280);
      // A sampled parent is always followed, whatever the ratio.
      const t = tracing.startServer({ traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` }, INFO);
      expect(t.span.isRecording()).toBe(true);
      tracing.end(t, 200);
    } finally {
      await tracing.shutdown();
      await rx.close();
    }
  });
});

describe('Tracing decides sampling before the SDK does', () => {
  it("decides as the SDK's TraceIdRatioBasedSampler on each root span's own trace id, exports that trace id, and never reuses one", async () => {
    const rx = await startOtlpReceiver();
    const tracing = new Tracing(
      tracingConfig({ endpoint: rx.url, bspScheduleDelay: '50' }, { traceSampling: 0.1 }),
      parseTelemetryConfig(BASE).config.workload,
    );
    const ratio = new TraceIdRatioBasedSampler(0.1);
    try {
      const ids = new Set<string>();
      const recorded: string[] = [];
      for (let i = 0; i < 2000; i++) {
        const t = tracing.startServer({}, INFO);
        const c = t.span.spanContext();
        ids.add(c.traceId);
        const want = ratio.shouldSample(ROOT_CONTEXT, c.traceId).decision;
        expect(t.span.isRecording()).toBe(want === SamplingDecision.RECORD_AND_SAMPLED);
        expect(tracing.traceparent(t).endsWith(t.span.isRecording() ? '-01' : '-00')).toBe(true);
        if (t.span.isRecording()) recorded.push(c.traceId);
        tracing.end(t, 200);
      }
      expect(ids.size).toBe(2000);
      expect(recorded.length).toBeGreaterThan(120);
      await tracing.forceFlush();
      const spans = await rx.waitFor((s) => s.length >= recorded.length);
      expect(spans.map((x) => x.traceId).sort()).toEqual([...recorded].sort());
    } finally {
      await tracing.shutdown();
      await rx.close();
    }
  });

  it("decides a root span as the SDK's samplers would at every ratio and sampler setting, a caller's flag or trace id as they would", async () => {
    const rx = await startOtlpReceiver({ discard: true });
    const settings: [sampler: string | undefined, arg: string | undefined, reference: Sampler][] = [
      [undefined, undefined, new TraceIdRatioBasedSampler(0.01)],
      ['traceidratio', '0.3', new TraceIdRatioBasedSampler(0.3)],
      ['parentbased_traceidratio', '0.999', new TraceIdRatioBasedSampler(0.999)],
      ['traceidratio', '0.0000001', new TraceIdRatioBasedSampler(0.0000001)],
      ['always_on', undefined, new AlwaysOnSampler()],
      ['always_off', undefined, new AlwaysOffSampler()],
      ['parentbased_always_off', undefined, new AlwaysOffSampler()],
    ];
    try {
      for (const [sampler, arg, reference] of settings) {
        const extra = sampler === undefined ? { traceSampling: 0.01 } : {};
        const otel = { endpoint: rx.url, sampler, samplerArg: arg };
        const tracing = new Tracing(tracingConfig(otel, extra), parseTelemetryConfig(BASE).config.workload);
        try {
          let sampled = 0;
          for (let i = 0; i < 3000; i++) {
            const t = tracing.startServer({}, INFO);
            const want = reference.shouldSample(ROOT_CONTEXT, t.span.spanContext().traceId, 'GET', 1, {}, []);
            expect(t.span.isRecording(), `${sampler} ${arg}`).toBe(
              want.decision === SamplingDecision.RECORD_AND_SAMPLED,
            );
            if (t.span.isRecording()) sampled++;
            tracing.end(t, 200);
          }
          // Both outcomes seen where the ratio makes both likely: the decision is not constant.
          if (arg === '0.3') expect(sampled).toBeGreaterThan(700);
          if (arg === '0.3') expect(sampled).toBeLessThan(1100);
          // A caller: parent-based settings follow its flag; the others decide on its trace id.
          const parentBased = sampler === undefined || sampler.startsWith('parentbased');
          for (const flags of ['00', '01']) {
            const id = CALLER_TRACE.slice(0, 24) + (flags === '00' ? 'ffffffff' : '00000000');
            const t = tracing.startServer({ traceparent: `00-${id}-${CALLER_SPAN}-${flags}` }, INFO);
            const want = parentBased
              ? flags === '01'
              : reference.shouldSample(ROOT_CONTEXT, id, 'GET', 1, {}, []).decision ===
                SamplingDecision.RECORD_AND_SAMPLED;
            expect(t.span.isRecording(), `${sampler} caller ${flags}`).toBe(want);
            expect(t.span.spanContext().traceId).toBe(id);
            tracing.end(t, 200);
          }
        } finally {
          await tracing.shutdown();
        }
      }
    } finally {
      await rx.close();
    }
  });

  it('reads a traceparent and tracestate exactly as the W3C propagator extracts them (valid, malformed, future versions)', () => {
    const propagator = new W3CTraceContextPropagator();
    const getter: TextMapGetter<Record<string, string>> = {
      get: (c, k) => c[k],
      keys: (c) => Object.keys(c),
    };
    const T = CALLER_TRACE;
    const S = CALLER_SPAN;
    const cases = [
      `00-${T}-${S}-01`,
      `00-${T}-${S}-00`,
      `00-${T}-${S}-ff`,
      ` 00-${T}-${S}-01`,
      `00-${T}-${S}-01 `,
      `  00-${T}-${S}-01`,
      `\t00-${T}-${S}-01`,
      `00-${T}-${S}-01-extra`,
      `01-${T}-${S}-01-extra`,
      `cc-${T}-${S}-09-what-ever`,
      `ff-${T}-${S}-01`,
      `00-${'0'.repeat(32)}-${S}-01`,
      `00-${T}-${'0'.repeat(16)}-01`,
      `00-${T.toUpperCase()}-${S}-01`,
      `00-${T}-${S}-0`,
      `00-${T}-${S}-01, 00-${T}-${S}-01`,
      `00-${T}a-${S}-01`,
      `0-${T}-${S}-01`,
      '',
      'garbage',
      `00_${T}_${S}_01`,
    ];
    const states = [undefined, '', 'vendor=abc', 'a=1,b=2', 'bad key=1,ok=2', ' , , x=y ,'];
    for (const tp of cases) {
      for (const ts of states) {
        const carrier: Record<string, string> = { traceparent: tp };
        if (ts !== undefined) carrier.tracestate = ts;
        const theirs = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, carrier, getter));
        const ours = w3cParent(tp, ts);
        expect({ tp, ts, c: ours && { ...ours, traceState: ours.traceState?.serialize() } }).toEqual({
          tp,
          ts,
          c: theirs && { ...theirs, traceState: theirs.traceState?.serialize() },
        });
      }
    }
  });
});

describe('Tracing with a collector that accepts but never answers', () => {
  it('each export gives up at OTEL_BSP_EXPORT_TIMEOUT and its spans are counted as dropped', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((sock) => {
      sockets.add(sock);
      sock.resume(); // read the export, never answer
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const tracing = new Tracing(
      tracingConfig({
        endpoint: `http://127.0.0.1:${port}`,
        bspMaxQueueSize: '50',
        bspMaxExportBatchSize: '10',
        bspScheduleDelay: '10',
        bspExportTimeout: '300',
      }),
      parseTelemetryConfig(BASE).config.workload,
    );
    try {
      for (let i = 0; i < 30; i++) tracing.end(tracing.startServer({}, INFO), 200);
      await tracing.forceFlush();
      expect(tracing.stats()).toEqual({ exported: 0, dropped: 30, queued: 0 });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('Tracing with the collector down', () => {
  it('keeps at most OTEL_BSP_MAX_QUEUE_SIZE spans, counts every drop and never throws', async () => {
    // A port that was just free: connecting to it is refused.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const tracing = new Tracing(
      tracingConfig({
        endpoint: `http://127.0.0.1:${port}`,
        bspMaxQueueSize: '100',
        bspMaxExportBatchSize: '50',
        bspScheduleDelay: '20',
        bspExportTimeout: '1000',
      }),
      parseTelemetryConfig(BASE).config.workload,
    );
    const total = 5000;
    for (let i = 0; i < total; i++) {
      const t = tracing.startServer({}, INFO);
      tracing.inject(t, {});
      tracing.end(t, 200);
      expect(tracing.stats().queued).toBeLessThanOrEqual(100);
    }
    await tracing.forceFlush();
    const s = tracing.stats();
    expect(s.exported).toBe(0);
    expect(s.queued).toBe(0);
    // Every span was either dropped at the full queue or dropped by a failed export.
    expect(s.dropped).toBe(total);
    await tracing.shutdown();
  });
});

describe('HexIds (the random trace and span ids)', () => {
  it('gives lower-case hex ids of the right length, never repeated, digits uniform, across many pool refills', () => {
    const ids = new HexIds();
    const traces = new Set<string>();
    const spans = new Set<string>();
    const counts = new Array<number>(16).fill(0);
    const n = 10_000; // 10,000 × 48 digits = 240 KB of hex: ~117 refills of the 2 KiB pool
    for (let i = 0; i < n; i++) {
      const t = ids.traceId();
      const s = ids.spanId();
      expect(t).toMatch(/^[0-9a-f]{32}$/);
      expect(s).toMatch(/^[0-9a-f]{16}$/);
      traces.add(t);
      spans.add(s);
      for (const ch of t + s) counts[parseInt(ch, 16)]!++;
    }
    expect(traces.size).toBe(n);
    expect(spans.size).toBe(n);
    // 480,000 digits, 30,000 expected each (σ ≈ 168): 5 % off is ~9σ, never by chance.
    for (const c of counts) expect(Math.abs(c - 30_000)).toBeLessThan(1_500);
  });

  it("tells each trace id's word: its four 8-digit groups XORed, what the SDK's ratio sampler compares with rootBound", () => {
    const ids = new HexIds();
    const ratios = [0.5, 0.01, 0.9999, 1e-9];
    const samplers = ratios.map((r) => new TraceIdRatioBasedSampler(r));
    let high = 0;
    for (let i = 0; i < 20_000; i++) {
      const id = ids.traceId();
      ids.spanId(); // interleaved, as the tracer draws them
      let want = 0;
      for (let g = 0; g < 32; g += 8) want = (want ^ parseInt(id.slice(g, g + 8), 16)) >>> 0;
      expect(ids.lastTraceWord()).toBe(want);
      if (want >= 0x80000000) high++;
      for (let k = 0; k < ratios.length; k++) {
        const sdk =
          samplers[k]!.shouldSample(ROOT_CONTEXT, id).decision === SamplingDecision.RECORD_AND_SAMPLED;
        expect(want < rootBound(ratios[k]!)).toBe(sdk);
      }
    }
    // The top bit set on about half the words: the unsigned reading matters.
    expect(high).toBeGreaterThan(9_000);
    expect(high).toBeLessThan(11_000);
    expect(rootBound(0)).toBe(0);
    expect(rootBound(Number.NaN)).toBe(0);
    expect(rootBound(1)).toBe(2 ** 32);
  });

  it('the tracer uses them: sampled and unsampled root spans get distinct valid ids', async () => {
    const rx = await startOtlpReceiver({ discard: true });
    const tracing = new Tracing(
      tracingConfig({ endpoint: rx.url }, { traceSampling: 0.5 }),
      parseTelemetryConfig(BASE).config.workload,
    );
    try {
      const seen = new Set<string>();
      let sampled = 0;
      for (let i = 0; i < 500; i++) {
        const t = tracing.startServer({}, INFO);
        const c = t.span.spanContext();
        expect(c.traceId).toMatch(/^[0-9a-f]{32}$/);
        expect(c.spanId).toMatch(/^[0-9a-f]{16}$/);
        seen.add(c.traceId);
        if (t.span.isRecording()) sampled++;
        tracing.end(t, 200);
      }
      expect(seen.size).toBe(500);
      expect(sampled).toBeGreaterThan(150);
      expect(sampled).toBeLessThan(350);
    } finally {
      await tracing.shutdown();
      await rx.close();
    }
  });
});
