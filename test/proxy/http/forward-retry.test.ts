/**
 * The forwarder's retries across endpoints: the listener's HTTP stage with the route layer and
 * the forwarder, over a dispatcher source that hands out a different real upstream per call (as
 * the mesh's endpoint choice does), so a retry is seen taking another endpoint.
 */
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwarder } from '../../../proxy/src/http/forward.js';
import { compose } from '../../../proxy/src/http/layer.js';
import { Pools } from '../../../proxy/src/http/pools.js';
import { createHttpStage } from '../../../proxy/src/http/server.js';
import type { HttpStage } from '../../../proxy/src/http/server.js';
import { createLogger } from '../../../proxy/src/log.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { routeLayer } from '../../../proxy/src/policy/route.js';
import { kConn } from '../../../proxy/src/tcp/connection.js';
import type { SocketWithConn } from '../../../proxy/src/tcp/connection.js';
import { sample } from '../harness.js';
import { inboundPolicy, send, startMisbehavingBackend } from '../policy/traffic-helpers.js';
import type { MisbehavingBackend } from '../policy/traffic-helpers.js';

let good: MisbehavingBackend;
let bad: MisbehavingBackend;
let closedPort: number;
let listener: net.Server;
let stage: HttpStage;
const metrics = new ProxyMetrics();
const pools = new Pools();
/** which origin each `get` call handed out, in order */
const handedOut: number[] = [];
/** the origins the next `get` calls hand out; the good backend once it is empty */
const plan: number[] = [];

beforeAll(async () => {
  good = await startMisbehavingBackend();
  bad = await startMisbehavingBackend({ always503: true });
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));

  const log = createLogger('silent');
  const policy = inboundPolicy({ routes: [{ retries: { attempts: 1, backoffMs: 1 } }] });
  const route = routeLayer({
    policy,
    direction: 'inbound',
    metrics: PolicyMetrics.of(metrics.registry),
    log,
  });
  const source = {
    get: (_key: string): Pool => {
      const port = plan.shift() ?? good.port;
      handedOut.push(port);
      return pools.get(`127.0.0.1:${port}`);
    },
  };
  stage = createHttpStage({
    direction: 'inbound',
    handler: compose(
      [route],
      forwarder({ pools: source, metrics: metrics.inbound, log, draining: () => false }),
    ),
    metrics: metrics.inbound,
    log,
    pools,
    maxHeaderBytes: 16_384,
    maxHeaders: 100,
    draining: () => false,
  });
  listener = net.createServer((s: Socket) => {
    (s as SocketWithConn)[kConn] = {
      direction: 'inbound',
      // A service name: only the dispatcher source knows its endpoints.
      destination: { host: 'svc.test', port: 80 },
      destinationKey: 'svc.test:80',
      peerAddress: s.remoteAddress ?? '',
      peerPort: s.remotePort ?? 0,
      protocol: 'http1',
    };
    stage.serve(s);
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  stage.close();
  await new Promise((r) => listener.close(r));
  await pools.close();
  await good.close();
  await bad.close();
});

const port = () => (listener.address() as AddressInfo).port;
const retries = (reason: string) =>
  sample(metrics.registry.render(), 'remora_retries_total', { direction: 'inbound', reason }) ?? 0;

describe('a retry picks its upstream again', () => {
  it('a GET refused by one endpoint (connect failure) is answered by the next', async () => {
    handedOut.length = 0;
    plan.push(closedPort);
    const r = await send(port(), '/get');
    expect(r.status).toBe(200);
    expect(handedOut).toEqual([closedPort, good.port]);
    expect(good.hits('/get')).toBe(1);
    expect(retries('connect-failure')).toBe(1);
  });

  it('a POST whose body was never read is retried after a connect failure, with its whole body', async () => {
    handedOut.length = 0;
    plan.push(closedPort);
    const body = 'p'.repeat(20_000);
    const r = await send(port(), '/echo-post', { method: 'POST', body });
    expect(r.status).toBe(200);
    expect(handedOut).toEqual([closedPort, good.port]);
    expect(good.bodyBytes('/echo-post')).toBe(body.length);
  });

  it('a 503 from one endpoint is dropped and the next endpoint answers', async () => {
    handedOut.length = 0;
    plan.push(bad.port);
    const r = await send(port(), '/flaky-endpoint');
    expect(r.status).toBe(200);
    expect(handedOut).toEqual([bad.port, good.port]);
    expect(bad.hits('/flaky-endpoint')).toBe(1);
    expect(good.hits('/flaky-endpoint')).toBe(1);
    expect(retries('5xx')).toBe(1);
  });
});
