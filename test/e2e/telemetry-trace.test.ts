// One request across two meshed pods makes one trace: in real network namespaces with real
// iptables capture, the app in pod A calls the app in pod B; A's sidecar (outbound, CLIENT span)
// and B's sidecar (inbound, SERVER span) export to an OTLP sink in a third pod, and the decoded
// spans link caller → A client span → B server span → what B's app received.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, OTEL_ENV } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { SPAN_KIND, decodeExportTraceRequest } from '../helpers/otlp-receiver.js';
import type { DecodedSpan } from '../helpers/otlp-receiver.js';
import { Harness, eventually } from './harness/index.js';
import type { Identity, Pod, Proc } from './harness/index.js';
import { runInit, startProxy } from './harness/remora.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv', 'ss'],
});

const AGENT = fileURLToPath(new URL('./telemetry-agent.mjs', import.meta.url));
const APP: Identity = { uid: 1000, gid: 1000 };
const APP_PORT = 8080;
const SINK_PORT = 4318;
const CALLER_TRACE = '5b8efff798038103d269b633813fc60c';
const CALLER_SPAN = 'eee19b7ec3c1b174';

describe.skipIf(skip !== undefined)(`one trace across two sidecars in namespaces ${skip ?? ''}`, () => {
  let h: Harness;
  let a: Pod;
  let b: Pod;
  let c: Pod;
  let sink: Proc;

  function spans(): DecodedSpan[] {
    const out: DecodedSpan[] = [];
    for (const line of sink.output().split('\n')) {
      if (!line.startsWith('{"otlp"')) continue;
      const { otlp } = JSON.parse(line) as { otlp: string };
      out.push(...decodeExportTraceRequest(Buffer.from(otlp, 'base64')));
    }
    return out;
  }

  async function agent(pod: Pod, command: string, args: string[], as?: Identity): Promise<Proc> {
    const p = h.spawn(pod, process.execPath, [AGENT, command, ...args], {
      as,
      label: `telemetry ${command}`,
    });
    await p.waitForLine(/^listening \d+/);
    return p;
  }

  beforeAll(async () => {
    h = Harness.create();
    a = h.addPod('a');
    b = h.addPod('b');
    c = h.addPod('c');
    // The collector lives in a pod without a sidecar, so exporting spans is never itself traced.
    sink = await agent(c, 'otlp-sink', [String(SINK_PORT)]);
    const otel = (workload: string): Record<string, string> => ({
      [OTEL_ENV.endpoint]: `http://${c.ip}:${SINK_PORT}`,
      [OTEL_ENV.bspScheduleDelay]: '100',
      [ENV.traceSampling]: '1',
      [ENV.workload]: workload,
      [ENV.podNamespace]: 'shop',
      [ENV.serviceAccount]: workload,
    });
    await runInit(h, a);
    await runInit(h, b);
    await startProxy(h, a, otel('frontend'));
    await startProxy(h, b, otel('reviews'));
    await agent(b, 'trace-app', [String(APP_PORT)], APP);
  });
  afterAll(() => h?.teardown());

  it('A client span is the parent of B server span, which is the parent the app in B sees', async () => {
    const r = await h.exec(
      a,
      process.execPath,
      [AGENT, 'trace-client', `http://${b.ip}:${APP_PORT}/reviews/1`, `00-${CALLER_TRACE}-${CALLER_SPAN}-01`],
      { as: APP },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const reply = JSON.parse(r.stdout) as { status: number; body: string };
    expect(reply.status).toBe(200);
    const seenByApp = JSON.parse(reply.body) as { traceparent: string };

    const trace = await eventually(
      'both sidecars exported their span',
      () => Promise.resolve(spans().filter((s) => s.traceId === CALLER_TRACE)),
      (s) => s.length >= 2,
      15_000,
    );
    const client = trace.find((s) => s.kind === SPAN_KIND.client);
    const server = trace.find((s) => s.kind === SPAN_KIND.server);
    expect(trace).toHaveLength(2);
    expect(client).toMatchObject({
      parentSpanId: CALLER_SPAN,
      attributes: {
        'remora.direction': 'outbound',
        'remora.source.workload': 'frontend',
        'server.address': b.ip,
        'server.port': APP_PORT,
      },
      resource: { 'service.name': 'frontend' },
    });
    expect(server).toMatchObject({
      parentSpanId: client?.spanId,
      attributes: {
        'remora.direction': 'inbound',
        'remora.destination.workload': 'reviews',
        'remora.destination.identity': 'spiffe://cluster.local/ns/shop/sa/reviews',
        'http.response.status_code': 200,
        'url.path': '/reviews/1',
      },
      resource: { 'service.name': 'reviews' },
    });
    expect(seenByApp.traceparent).toBe(`00-${CALLER_TRACE}-${server?.spanId}-01`);
  });
});
