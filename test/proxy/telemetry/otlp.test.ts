// Traces through the real remora-proxy binary (explicit mode on loopback) into a real OTLP/HTTP
// receiver that decodes the protobuf: span kinds, attributes, and the parent/child links between
// the caller, the proxy's span and what the upstream app receives.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, METRICS, OTEL_ENV } from '../../../proxy/src/contract.js';
import { SPAN_KIND, formatTraceTree, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import type { DecodedSpan, OtlpReceiver } from '../../helpers/otlp-receiver.js';
import { closedPort, get, metric, startRecordingApp, startSidecar } from './sidecar.js';
import type { RecordingApp, Sidecar } from './sidecar.js';

const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';

function traceparent(v: unknown): { traceId: string; parentId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(v));
  if (!m) throw new Error(`not a traceparent: ${String(v)}`);
  return { traceId: m[1] as string, parentId: m[2] as string, flags: m[3] as string };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

/** Writes `raw` to a new connection and resolves with everything read until the server closes. */
function rawExchange(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.write(raw));
    s.setTimeout(10_000, () => s.destroy(new Error('raw exchange timed out')));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

const WORKLOAD_ENV = (workload: string): Record<string, string> => ({
  [ENV.workload]: workload,
  [ENV.podNamespace]: 'shop',
  [ENV.podName]: `${workload}-0`,
  [ENV.serviceAccount]: workload,
});

/** A receiver, a recording app behind both directions, and a sidecar tracing into it. */
async function tracedSidecar(
  sampling: string,
): Promise<{ rx: OtlpReceiver; app: RecordingApp; proxy: Sidecar }> {
  const rx = await startOtlpReceiver();
  const app = await startRecordingApp();
  const proxy = await startSidecar({
    ...WORKLOAD_ENV('reviews'),
    [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
    [ENV.outboundTarget]: `127.0.0.1:${app.port}`,
    [OTEL_ENV.endpoint]: rx.url,
    [OTEL_ENV.bspScheduleDelay]: '50',
    [ENV.traceSampling]: sampling,
  });
  return { rx, app, proxy };
}

describe('traces through remora-proxy (real OTLP/HTTP receiver)', () => {
  let rx: OtlpReceiver;
  let app: RecordingApp;
  let proxy: Sidecar;

  beforeAll(async () => {
    ({ rx, app, proxy } = await tracedSidecar('1'));
  });
  afterAll(async () => {
    await proxy?.stop();
    await app?.close();
    await rx?.close();
  });

  it('inbound: a SERVER span whose parent is the caller traceparent; the app gets the proxy span as parent', async () => {
    app.received.length = 0;
    const r = await get(`http://127.0.0.1:${proxy.ports.inbound}/reviews/1?user=alice`, {
      TraceParent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      tracestate: 'congo=t61rcWkgMzE',
      'user-agent': 'remora-test/1',
    });
    expect(r.status).toBe(200);
    const up = traceparent(app.received[0]?.traceparent);
    expect(up.traceId).toBe(CALLER_TRACE);
    expect(up.parentId).not.toBe(CALLER_SPAN);
    expect(app.received[0]?.tracestate).toBe('congo=t61rcWkgMzE');
    // Exactly one traceparent reached the app, not the caller's plus ours.
    expect(typeof app.received[0]?.traceparent).toBe('string');

    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === up.parentId));
    const span = spans.find((x) => x.spanId === up.parentId) as DecodedSpan;
    expect(span).toMatchObject({
      traceId: CALLER_TRACE,
      parentSpanId: CALLER_SPAN,
      kind: SPAN_KIND.server,
      name: 'GET',
    });
    expect(span.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/reviews/1',
      'url.scheme': 'http',
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'server.port': proxy.ports.inbound,
      'network.peer.address': '127.0.0.1',
      'network.protocol.version': '1.1',
      'user_agent.original': 'remora-test/1',
      'remora.direction': 'inbound',
      'remora.destination.workload': 'reviews',
      'remora.destination.namespace': 'shop',
      'remora.destination.identity': 'spiffe://cluster.local/ns/shop/sa/reviews',
    });
    expect(span.resource).toMatchObject({ 'service.name': 'reviews', 'k8s.namespace.name': 'shop' });
    expect(rx.rejected).toBe(0);
  });

  it('outbound without a traceparent: a root CLIENT span, created header sent upstream, 5xx marked error', async () => {
    app.received.length = 0;
    const r = await get(`http://127.0.0.1:${proxy.ports.outbound}/status/503`);
    expect(r.status).toBe(503);
    const up = traceparent(app.received[0]?.traceparent);
    expect(up.flags).toBe('01');
    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === up.parentId));
    const span = spans.find((x) => x.spanId === up.parentId) as DecodedSpan;
    expect(span).toMatchObject({
      traceId: up.traceId,
      parentSpanId: '',
      kind: SPAN_KIND.client,
      statusCode: 2,
    });
    expect(span.attributes).toMatchObject({
      'remora.direction': 'outbound',
      'remora.source.workload': 'reviews',
      'http.response.status_code': 503,
    });
  });

  it('B3 multi-header input continues the caller trace', async () => {
    app.received.length = 0;
    await get(`http://127.0.0.1:${proxy.ports.inbound}/b3`, {
      'X-B3-TraceId': CALLER_TRACE,
      'X-B3-SpanId': CALLER_SPAN,
      'X-B3-ParentSpanId': '1111111111111111',
      'X-B3-Sampled': '1',
    });
    const up = traceparent(app.received[0]?.traceparent);
    expect(up.traceId).toBe(CALLER_TRACE);
    expect(app.received[0]?.['x-b3-spanid']).toBe(up.parentId);
    // Replaced in place whatever the caller's case, and the stale parent id is gone.
    expect(app.received[0]?.['x-b3-traceid']).toBe(CALLER_TRACE);
    expect(app.received[0]?.['x-b3-parentspanid']).toBeUndefined();
    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === up.parentId));
    expect(spans.find((x) => x.spanId === up.parentId)?.parentSpanId).toBe(CALLER_SPAN);
  });

  it('counts exported spans in the proxy registry', async () => {
    await eventually(
      'exported spans counted',
      async () => (await metric(proxy, METRICS.traceSpansExported)) >= 3,
    );
    expect(await metric(proxy, METRICS.traceSpansDropped)).toBe(0);
  });
});

describe('unsampled requests (REMORA_TRACE_SAMPLING=0, parent-based): propagated, never exported', () => {
  let rx: OtlpReceiver;
  let app: RecordingApp;
  let proxy: Sidecar;

  beforeAll(async () => {
    ({ rx, app, proxy } = await tracedSidecar('0'));
  });
  afterAll(async () => {
    await proxy?.stop();
    await app?.close();
    await rx?.close();
  });

  it("an unsampled caller: the app gets the caller's trace id, a new parent id, flags 00 and the tracestate", async () => {
    app.received.length = 0;
    const r = await get(`http://127.0.0.1:${proxy.ports.inbound}/u/1`, {
      traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-00`,
      tracestate: 'congo=t61rcWkgMzE',
    });
    expect(r.status).toBe(200);
    const up = traceparent(app.received[0]?.traceparent);
    expect(up).toMatchObject({ traceId: CALLER_TRACE, flags: '00' });
    expect(up.parentId).not.toBe(CALLER_SPAN);
    expect(up.parentId).not.toBe('0000000000000000');
    expect(app.received[0]?.tracestate).toBe('congo=t61rcWkgMzE');
  });

  it('no caller context: a fresh trace with flags 00 on both directions, no tracestate invented', async () => {
    app.received.length = 0;
    await get(`http://127.0.0.1:${proxy.ports.inbound}/u/2`);
    await get(`http://127.0.0.1:${proxy.ports.outbound}/u/3`);
    const ids = app.received.map((h) => traceparent(h.traceparent));
    expect(ids).toHaveLength(2);
    for (const t of ids) {
      expect(t.flags).toBe('00');
      expect(t.traceId).not.toBe('00000000000000000000000000000000');
    }
    expect(ids[0]?.traceId).not.toBe(ids[1]?.traceId);
    expect(app.received.every((h) => h.tracestate === undefined)).toBe(true);
  });

  it("a caller's repeated traceparent and a stale B3 set beside it reach the app as one fresh traceparent and no B3", async () => {
    app.received.length = 0;
    const head = await rawExchange(
      proxy.ports.inbound,
      'GET /u/4 HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n' +
        `traceparent: 00-${CALLER_TRACE}-${CALLER_SPAN}-00\r\n` +
        `TraceParent: 00-${CALLER_TRACE}-1111111111111111-00\r\n` +
        'X-B3-TraceId: 2222222222222222\r\nX-B3-SpanId: 3333333333333333\r\n\r\n',
    );
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    const h = app.received[0];
    // node:http joins repeated fields it does not know with ", ": a string means exactly one.
    expect(typeof h?.traceparent).toBe('string');
    // Two traceparent fields are no valid context (W3C Trace Context §3.2): a fresh trace.
    expect(traceparent(h?.traceparent)).toMatchObject({ flags: '00' });
    expect(traceparent(h?.traceparent).traceId).not.toBe(CALLER_TRACE);
    expect(h?.['x-b3-traceid']).toBeUndefined();
    expect(h?.['x-b3-spanid']).toBeUndefined();
  });

  it('a sampled caller is still followed (parent-based): its span is exported; the unsampled ones never are', async () => {
    app.received.length = 0;
    await get(`http://127.0.0.1:${proxy.ports.inbound}/u/5`, {
      traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
    });
    const up = traceparent(app.received[0]?.traceparent);
    expect(up.flags).toBe('01');
    const spans = await rx.waitFor((s) => s.some((x) => x.spanId === up.parentId));
    // The export that carried the sampled span came after every unsampled request above.
    expect(spans.map((x) => x.attributes['url.path'])).toEqual(['/u/5']);
    await eventually(
      'one span counted as exported',
      async () => (await metric(proxy, METRICS.traceSpansExported)) === 1,
    );
    expect(rx.spans).toHaveLength(1);
  });
});

describe('two sidecars chained on loopback: one trace', () => {
  it('client → A outbound (CLIENT) → B inbound (SERVER) → app: A client span is the parent of B server span', async () => {
    const rx = await startOtlpReceiver();
    const app = await startRecordingApp();
    let a: Sidecar | undefined;
    let b: Sidecar | undefined;
    try {
      b = await startSidecar({
        ...WORKLOAD_ENV('ratings'),
        [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
        [OTEL_ENV.endpoint]: rx.url,
        [OTEL_ENV.bspScheduleDelay]: '50',
      });
      a = await startSidecar({
        ...WORKLOAD_ENV('reviews'),
        [ENV.outboundTarget]: `127.0.0.1:${b.ports.inbound}`,
        [OTEL_ENV.endpoint]: rx.url,
        [OTEL_ENV.bspScheduleDelay]: '50',
      });
      const r = await get(`http://127.0.0.1:${a.ports.outbound}/ratings/7`, {
        traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      });
      expect(r.status).toBe(200);
      const atApp = traceparent(app.received[0]?.traceparent);
      const spans = await rx.waitFor((s) => s.filter((x) => x.traceId === CALLER_TRACE).length >= 2);
      const trace = spans.filter((x) => x.traceId === CALLER_TRACE);
      const client = trace.find((x) => x.kind === SPAN_KIND.client);
      const server = trace.find((x) => x.kind === SPAN_KIND.server);
      expect(client).toMatchObject({ parentSpanId: CALLER_SPAN, resource: { 'service.name': 'reviews' } });
      expect(server).toMatchObject({ parentSpanId: client?.spanId, resource: { 'service.name': 'ratings' } });
      expect(atApp).toMatchObject({ traceId: CALLER_TRACE, parentId: server?.spanId });
      const tree = formatTraceTree(spans, CALLER_TRACE).split('\n');
      expect(tree).toHaveLength(3);
      expect(tree[1]).toMatch(/^└─ reviews client GET \/ratings\/7 200 [\d.]+ ms$/);
      expect(tree[2]).toMatch(/^ {3}└─ ratings server GET \/ratings\/7 200 [\d.]+ ms$/);
    } finally {
      await a?.stop();
      await b?.stop();
      await app.close();
      await rx.close();
    }
  });
});

describe('collector down', () => {
  it('traffic flows, every span is accounted for as dropped, none exported', async () => {
    const app = await startRecordingApp();
    const port = await closedPort();
    const proxy = await startSidecar({
      ...WORKLOAD_ENV('reviews'),
      [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
      [OTEL_ENV.endpoint]: `http://127.0.0.1:${port}`,
      [OTEL_ENV.bspMaxQueueSize]: '16',
      [OTEL_ENV.bspMaxExportBatchSize]: '8',
      [OTEL_ENV.bspScheduleDelay]: '20',
      [OTEL_ENV.bspExportTimeout]: '500',
      [ENV.accessLog]: 'off',
    });
    try {
      const n = 300;
      for (let i = 0; i < n; i++) {
        const r = await get(`http://127.0.0.1:${proxy.ports.inbound}/x/${i}`);
        expect(r.status).toBe(200);
      }
      expect(app.received).toHaveLength(n);
      await eventually(
        'all spans dropped',
        async () => (await metric(proxy, METRICS.traceSpansDropped)) === n,
      );
      expect(await metric(proxy, METRICS.traceSpansExported)).toBe(0);
    } finally {
      await proxy.stop();
      await app.close();
    }
  });
});

describe('access log through the proxy', () => {
  it("trace_id, written unescaped, is only ever hex: a caller's malformed W3C or B3 ids (quotes, backslashes, braces) start a trace of the proxy's own", async () => {
    const { rx, app, proxy } = await tracedSidecar('0');
    try {
      const hostile = ['"', '\\', '}', '+', 'g'].map((c) => `${c}${CALLER_TRACE.slice(1)}`);
      const sent: Record<string, string>[] = [
        ...hostile.map((id) => ({ traceparent: `00-${id}-${CALLER_SPAN}-01` })),
        ...hostile.map((id) => ({ b3: `${id}-${CALLER_SPAN}-1` })),
        ...hostile.map((id) => ({ 'x-b3-traceid': id, 'x-b3-spanid': CALLER_SPAN, 'x-b3-sampled': '1' })),
        // a valid B3 id is followed: hex, JSON-safe as it is
        { b3: `${CALLER_TRACE}-${CALLER_SPAN}-1` },
      ];
      // (A control character never gets this far: the parser answers 400, with no access line.)
      for (const h of sent) await get(`http://127.0.0.1:${proxy.ports.inbound}/t`, h);
      await eventually(
        'access lines',
        async () => proxy.logs().filter((l) => l.log === 'access').length >= sent.length,
      );
      const lines = proxy.logs().filter((l) => l.log === 'access');
      expect(proxy.logs().filter((l) => 'raw' in l)).toEqual([]);
      expect(lines).toHaveLength(sent.length);
      for (const l of lines.slice(0, -1)) {
        expect(l.trace_id).toMatch(/^[0-9a-f]{32}$/);
        expect(l.trace_id).not.toContain(CALLER_TRACE.slice(1));
      }
      expect(lines.at(-1)?.trace_id).toBe(CALLER_TRACE);
    } finally {
      await proxy.stop();
      await app.close();
      await rx.close();
    }
  });

  it('one JSON line per request with trace_id, status, bytes; none with REMORA_ACCESS_LOG=off', async () => {
    const app = await startRecordingApp();
    const proxy = await startSidecar({
      ...WORKLOAD_ENV('reviews'),
      [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
    });
    try {
      await get(`http://127.0.0.1:${proxy.ports.inbound}/items?q=secret`, {
        traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      });
      await eventually('access line', async () => proxy.logs().some((l) => l.log === 'access'));
      const line = proxy.logs().find((l) => l.log === 'access');
      expect(line).toMatchObject({
        type: 'http',
        direction: 'inbound',
        method: 'GET',
        path: '/items',
        status: 200,
        upstream: `127.0.0.1:${app.port}`,
        trace_id: CALLER_TRACE,
        level: 'info',
      });
      // Body bytes (the app's `ok`), as Envoy counts them; no request body.
      expect(line).toMatchObject({ bytes_sent: 2, bytes_received: 0 });
      expect(JSON.stringify(proxy.logs())).not.toContain('secret');
    } finally {
      await proxy.stop();
    }
    const quiet = await startSidecar({
      [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
      [ENV.accessLog]: 'off',
    });
    try {
      await get(`http://127.0.0.1:${quiet.ports.inbound}/items`);
      expect(app.received.length).toBe(2);
      await sleep(200);
      expect(quiet.logs().some((l) => l.log === 'access')).toBe(false);
    } finally {
      await quiet.stop();
      await app.close();
    }
  });
});
