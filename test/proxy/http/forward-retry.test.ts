/**
 * The forwarder's retries across endpoints: the listener's HTTP stage with the route layer and
 * the forwarder, over a dispatcher source that hands out a different real upstream per call (as
 * the mesh's endpoint choice does), so a retry is seen taking another endpoint.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../proxy/src/log.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { routeLayer } from '../../../proxy/src/policy/route.js';
import { sample } from '../harness.js';
import {
  inboundPolicy,
  send,
  startMisbehavingBackend,
  startStageListener,
} from '../policy/traffic-helpers.js';
import type { MisbehavingBackend, StageListener } from '../policy/traffic-helpers.js';

let good: MisbehavingBackend;
let bad: MisbehavingBackend;
let closedPort: number;
let px: StageListener;
/** the upstream ports the next dispatches go to; the good backend once it is empty */
const plan: number[] = [];

beforeAll(async () => {
  good = await startMisbehavingBackend();
  bad = await startMisbehavingBackend({ always503: true });
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const policy = inboundPolicy({ routes: [{ retries: { attempts: 1, backoffMs: 1 } }] });
  px = await startStageListener({
    layers: (m) => [
      routeLayer({
        policy,
        direction: 'inbound',
        metrics: PolicyMetrics.of(m.registry),
        log: createLogger('silent'),
      }),
    ],
    upstreamFor: () => `127.0.0.1:${plan.shift() ?? good.port}`,
  });
});

afterAll(async () => {
  await px.close();
  await good.close();
  await bad.close();
});

const retries = (reason: string) =>
  sample(px.metrics.registry.render(), 'remora_retries_total', { direction: 'inbound', reason }) ?? 0;
const origins = (...ports: number[]) => ports.map((p) => `127.0.0.1:${p}`);

describe('a retry picks its upstream again', () => {
  it('a GET refused by one endpoint (connect failure) is answered by the next', async () => {
    px.handedOut.length = 0;
    plan.push(closedPort);
    const r = await send(px.port, '/get');
    expect(r.status).toBe(200);
    expect(px.handedOut).toEqual(origins(closedPort, good.port));
    expect(good.hits('/get')).toBe(1);
    expect(retries('connect-failure')).toBe(1);
  });

  it('a POST whose body was never read is retried after a connect failure, with its whole body', async () => {
    px.handedOut.length = 0;
    plan.push(closedPort);
    const body = 'p'.repeat(20_000);
    const r = await send(px.port, '/echo-post', { method: 'POST', body });
    expect(r.status).toBe(200);
    expect(px.handedOut).toEqual(origins(closedPort, good.port));
    expect(good.bodyBytes('/echo-post')).toBe(body.length);
  });

  it('a 503 from one endpoint is dropped and the next endpoint answers', async () => {
    px.handedOut.length = 0;
    plan.push(bad.port);
    const r = await send(px.port, '/flaky-endpoint');
    expect(r.status).toBe(200);
    expect(px.handedOut).toEqual(origins(bad.port, good.port));
    expect(bad.hits('/flaky-endpoint')).toBe(1);
    expect(good.hits('/flaky-endpoint')).toBe(1);
    expect(retries('5xx')).toBe(1);
  });
});
