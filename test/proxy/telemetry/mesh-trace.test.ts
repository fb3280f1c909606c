// One trace through the mTLS mesh tunnel: two remora-proxy sidecars (real supervisor + engine
// processes, explicit mode on loopback) get certificates from a real identity CA; A's outbound reaches B's app
// through B's tunnel. B's SERVER span is the child of A's CLIENT span and names the caller's
// verified identity; A's CLIENT span names the identity B proved; the app sees B's span as its
// parent. When B cannot prove the identity discovery names, A's span names none.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { ENV, METRICS, OTEL_ENV } from '../../../proxy/src/contract.js';
import { renderTraceSvg, traceRows } from '../../../demo/trace-svg.js';
import { sample } from '../harness.js';
import { SPAN_KIND, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import type { OtlpReceiver } from '../../helpers/otlp-receiver.js';
import { get, startRecordingApp, startSidecar } from './sidecar.js';
import type { RecordingApp, Sidecar } from './sidecar.js';

const TD = 'telemetry.test';
const ID_A = `spiffe://${TD}/ns/shop/sa/frontend`;
const ID_B = `spiffe://${TD}/ns/shop/sa/reviews`;
const TOKENS = new Map([
  ['token-a-0123456789abcdef', { namespace: 'shop', serviceAccount: 'frontend' }],
  ['token-b-0123456789abcdef', { namespace: 'shop', serviceAccount: 'reviews' }],
]);
const SERVICE = '127.0.0.210:80';
/** A second service whose endpoint is B under an identity B cannot prove. */
const WRONG_SERVICE = '127.0.0.211:80';
const ID_WRONG = `spiffe://${TD}/ns/billing/sa/ledger`;
const CALLER_TRACE = '6e0c63257de34c926f9efcd03899f0e5';
const CALLER_SPAN = '1b4e28ba2fa1d283';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Where the hop's picture and /metrics excerpts go: REMORA_TELEMETRY_EXAMPLES (docs), else nowhere. */
function writeExample(name: string, content: string): void {
  const out = process.env.REMORA_TELEMETRY_EXAMPLES;
  if (out !== undefined && out !== '') writeFileSync(join(out, name), content);
}

async function metricsText(s: Sidecar): Promise<string> {
  return (await get(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body;
}

/** The request-count lines with a named peer, for the docs excerpt. */
function peerLines(text: string): string {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${METRICS.requestsTotal}{`) && l.includes('status_code="200"'))
    .map((l) => `${l}\n`)
    .join('');
}

/** The tunnel port, listed by the supervisor when mTLS is on. */
function tunnelPort(s: Sidecar): number {
  const port = (s.ports as unknown as Record<string, number | undefined>).tunnel;
  if (port === undefined) throw new Error(`no tunnel port in ${JSON.stringify(s.ports)}`);
  return port;
}

describe('trace through the mTLS mesh tunnel (real CA, two engines)', () => {
  let dir: string;
  let ca: CaServer;
  let rx: OtlpReceiver;
  let app: RecordingApp;
  const sidecars: Sidecar[] = [];
  /** the two sidecars of the first test, for the metrics and the picture of that hop */
  let hop: { a: Sidecar; b: Sidecar } | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'remora-tel-mesh-'));
    const root = newRoot(TD);
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    ca = await startCaServer({
      host: '127.0.0.1',
      port: 0,
      ca: root,
      trustDomain: TD,
      reviewer: staticTokenReviewer(TOKENS),
      ttlSeconds: 3600,
      logger: pino({ level: 'silent' }),
      namespace: 'remora-system',
      serviceAccount: 'remora-injector',
    });
    rx = await startOtlpReceiver();
    app = await startRecordingApp();
  });

  afterAll(async () => {
    for (const s of sidecars) await s.stop();
    await app?.close();
    await rx?.close();
    await ca?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function meshEnv(name: string, token: string, workload: string): Record<string, string> {
    const tokenFile = join(dir, `${name}.token`);
    writeFileSync(tokenFile, token);
    return {
      [ENV.caAddress]: `127.0.0.1:${ca.port}`,
      [ENV.caBundleFile]: join(dir, 'bundle.pem'),
      [ENV.tokenFile]: tokenFile,
      [ENV.trustDomain]: TD,
      [ENV.workload]: workload,
      // The service account the token stands for: the proxy's own identity label.
      [ENV.serviceAccount]: workload,
      [ENV.podNamespace]: 'shop',
      [OTEL_ENV.endpoint]: rx.url,
      [OTEL_ENV.bspScheduleDelay]: '50',
    };
  }

  it('B server span: child of A client span, source identity = A verified identity', async () => {
    const b = await startSidecar(meshEnv('b', 'token-b-0123456789abcdef', 'reviews'));
    sidecars.push(b);
    const disc = join(dir, 'discovery.json');
    writeFileSync(
      disc,
      JSON.stringify({
        services: {
          [SERVICE]: {
            endpoints: [
              {
                ip: '127.0.0.1',
                port: app.port,
                meshed: true,
                identity: ID_B,
                tunnelPort: tunnelPort(b),
                service: 'reviews.shop',
                workload: 'reviews',
                namespace: 'shop',
              },
            ],
          },
          [WRONG_SERVICE]: {
            endpoints: [
              {
                ip: '127.0.0.1',
                port: app.port,
                meshed: true,
                identity: ID_WRONG,
                tunnelPort: tunnelPort(b),
              },
            ],
          },
        },
      }),
    );
    const a = await startSidecar({
      ...meshEnv('a', 'token-a-0123456789abcdef', 'frontend'),
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: SERVICE,
    });
    sidecars.push(a);
    hop = { a, b };

    // Both need their certificate first: retry until the call goes through.
    let status = 0;
    const end = Date.now() + 15_000;
    while (status !== 200 && Date.now() < end) {
      const r = await get(`http://127.0.0.1:${a.ports.outbound}/reviews/9`, {
        traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      }).catch(() => ({ status: 0 }));
      status = r.status;
      if (status !== 200) await sleep(200);
    }
    expect(status, JSON.stringify([...a.logs(), ...b.logs()].slice(-20))).toBe(200);
    const last = app.received.at(-1);
    expect(last?.['x-remora-peer-identity']).toBe(ID_A);

    const spans = await rx.waitFor((s) => {
      const t = s.filter(
        (x) => x.traceId === CALLER_TRACE && x.attributes['http.response.status_code'] === 200,
      );
      return t.some((x) => x.kind === SPAN_KIND.server) && t.some((x) => x.kind === SPAN_KIND.client);
    });
    const ok = spans.filter(
      (x) => x.traceId === CALLER_TRACE && x.attributes['http.response.status_code'] === 200,
    );
    const server = ok.find((x) => x.kind === SPAN_KIND.server);
    const client = ok.find((x) => x.spanId === server?.parentSpanId);
    expect(client).toMatchObject({
      kind: SPAN_KIND.client,
      resource: { 'service.name': 'frontend' },
      attributes: {
        'remora.direction': 'outbound',
        'remora.destination.identity': ID_B,
        'remora.destination.namespace': 'shop',
      },
    });
    expect(server?.attributes).toMatchObject({
      'remora.direction': 'inbound',
      'remora.source.identity': ID_A,
      'remora.source.namespace': 'shop',
      'remora.destination.workload': 'reviews',
    });
    expect(String(last?.traceparent)).toBe(`00-${CALLER_TRACE}-${server?.spanId}-01`);
  });

  it("both sides' /metrics name each other (supervisor + engine processes, peer labels from mTLS and discovery)", async () => {
    if (hop === undefined) throw new Error('the first test did not start the hop');
    const [ma, mb] = [await metricsText(hop.a), await metricsText(hop.b)];
    // A: outbound to B, named by discovery.
    expect(
      sample(ma, METRICS.requestsTotal, {
        direction: 'outbound',
        status_code: '200',
        source_workload: 'frontend',
        source_namespace: 'shop',
        source_identity: ID_A,
        destination_service: 'reviews.shop',
        destination_workload: 'reviews',
        destination_namespace: 'shop',
        destination_identity: ID_B,
      }),
    ).toBeGreaterThanOrEqual(1);
    // B: inbound from A, named by the identity A proved (no discovery on B: the service account).
    expect(
      sample(mb, METRICS.requestsTotal, {
        direction: 'inbound',
        status_code: '200',
        source_workload: 'frontend',
        source_namespace: 'shop',
        source_identity: ID_A,
        destination_workload: 'reviews',
        destination_namespace: 'shop',
        destination_identity: ID_B,
      }),
    ).toBeGreaterThanOrEqual(1);
    writeExample('metrics-a.txt', peerLines(ma));
    writeExample('metrics-b.txt', peerLines(mb));
  });

  it('the trace renders as a picture: one bar per span on a time axis, services and identities as labels', () => {
    const spans = rx.spans.filter(
      (x) => x.traceId === CALLER_TRACE && x.attributes['http.response.status_code'] === 200,
    );
    const rows = traceRows(spans, CALLER_TRACE);
    const client = rows.find((r) => r.span.kind === SPAN_KIND.client);
    const server = rows.find((r) => r.span.kind === SPAN_KIND.server);
    expect(client).toMatchObject({ depth: 0, service: 'frontend', identities: `${ID_A} → ${ID_B}` });
    expect(server).toMatchObject({ depth: 1, service: 'reviews', identities: `${ID_A} → ${ID_B}` });
    // Times come from two processes' clocks: only their own durations are compared, not the
    // two spans' positions (a skew of a millisecond would move them).
    expect(client!.durationMs).toBeGreaterThan(0);
    expect(server!.durationMs).toBeGreaterThan(0);
    const svg = renderTraceSvg(spans, CALLER_TRACE, 'GET /reviews/9: frontend → reviews over mTLS');
    const groups = [
      ...svg.matchAll(
        /<g class="span" data-span-id="([0-9a-f]+)" data-parent-span-id="([0-9a-f]*)" data-service="([^"]+)" data-kind="([a-z]+)">/g,
      ),
    ];
    expect(groups.map((g) => [g[1], g[3], g[4]])).toEqual([
      [client!.span.spanId, 'frontend', 'client'],
      [server!.span.spanId, 'reviews', 'server'],
    ]);
    // B's span is drawn as the child of A's.
    expect(groups[1]?.[2]).toBe(groups[0]?.[1]);
    expect(svg).toContain(ID_A);
    expect(svg).toContain(ID_B);
    expect(svg.match(/<rect x=/g)?.length).toBe(rows.length);
    writeExample('trace.svg', svg);
  });

  it('A client span names no destination identity when B cannot prove the one discovery gave', async () => {
    // Another caller with A's identity whose outbound target is the service discovery says B
    // serves as ID_WRONG: the tunnel's identity check fails, the app gets 502.
    const c = await startSidecar({
      ...meshEnv('c', 'token-a-0123456789abcdef', 'frontend'),
      [ENV.discoveryFile]: join(dir, 'discovery.json'),
      [ENV.outboundTarget]: WRONG_SERVICE,
    });
    sidecars.push(c);
    const trace = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const r = await get(`http://127.0.0.1:${c.ports.outbound}/ledger`, {
      traceparent: `00-${trace}-${CALLER_SPAN}-01`,
    });
    expect(r.status).toBe(502);
    const spans = await rx.waitFor((s) => s.some((x) => x.traceId === trace && x.kind === SPAN_KIND.client));
    const client = spans.find((x) => x.traceId === trace && x.kind === SPAN_KIND.client);
    expect(client?.attributes).toMatchObject({
      'remora.direction': 'outbound',
      'http.response.status_code': 502,
    });
    expect(client?.attributes['error.type']).toBeDefined();
    expect(client?.attributes).not.toHaveProperty('remora.destination.identity');
    expect(client?.attributes).not.toHaveProperty('remora.destination.namespace');
    expect(c.logs().some((l) => l.event === 'tls_handshake_failed' && l.reason === 'identity_mismatch')).toBe(
      true,
    );
  });

  it('under an outbound circuit breaker and outlier detection (the breaker picks the endpoint), the client span names B too', async () => {
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'apiVersion: remora.dev/v1',
        'kind: PolicySet',
        'policies:',
        '  - name: guarded',
        '    outbound:',
        `      - destinations: ["${SERVICE}"]`,
        '        circuitBreaker: { maxRequests: 100 }',
        '        outlierDetection: { consecutive5xx: 5 }',
        '',
      ].join('\n'),
    );
    const d = await startSidecar({
      ...meshEnv('d', 'token-a-0123456789abcdef', 'frontend'),
      [ENV.discoveryFile]: join(dir, 'discovery.json'),
      [ENV.outboundTarget]: SERVICE,
      [ENV.policyFile]: policy,
    });
    sidecars.push(d);
    const trace = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
    const r = await get(`http://127.0.0.1:${d.ports.outbound}/reviews/10`, {
      traceparent: `00-${trace}-${CALLER_SPAN}-01`,
    });
    expect(r.status, JSON.stringify(d.logs().slice(-10))).toBe(200);
    const spans = await rx.waitFor((s) => s.some((x) => x.traceId === trace && x.kind === SPAN_KIND.client));
    const client = spans.find((x) => x.traceId === trace && x.kind === SPAN_KIND.client);
    expect(client?.attributes).toMatchObject({
      'http.response.status_code': 200,
      'remora.destination.identity': ID_B,
      'remora.destination.namespace': 'shop',
    });
  });
});
