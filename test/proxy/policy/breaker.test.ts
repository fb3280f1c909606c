/**
 * Circuit breaking with real sockets: an engine's outbound listener reaches a discovery service
 * through the mesh (one plain endpoint on loopback) under an outbound policy section; the
 * upstream holds its answers so requests stay in flight. And the plain-destination view
 * (`Pools.outbound`) through undici's own request API (it speaks the same dispatch contract).
 */
import { Dispatcher, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CircuitOpenError } from '../../../proxy/src/errors.js';
import type { DispatchHandler } from '../../../proxy/src/http/dispatch.js';
import { Pools } from '../../../proxy/src/http/pools.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { METRICS } from '../../../proxy/src/contract.js';
import { sample, scrape, testPoolsOptions, until } from '../harness.js';
import { TestPolicy, get, outboundPolicy, startMeshProxy, startUpstream } from './upstreams.js';
import type { MeshProxy, Upstream } from './upstreams.js';

const SERVICE = '127.0.0.210:80';

async function circuitOpen(px: MeshProxy, limit: string): Promise<number | undefined> {
  return sample(await scrape(px.metricsPort), METRICS.circuitOpen, { direction: 'outbound', limit });
}

describe('circuit breaker on a discovery service (mesh, plain endpoint)', () => {
  let up: Upstream;
  let px: MeshProxy;
  const policy = new TestPolicy();

  beforeAll(async () => {
    up = await startUpstream();
    px = await startMeshProxy(SERVICE, [up.port], policy);
  });
  afterEach(() => up.release());
  afterAll(async () => {
    await px.close();
    await up.close();
  });

  it('maxRequests 2: the third concurrent request gets 503 RMR_CIRCUIT_OPEN, the upstream sees 2', async () => {
    policy.set(outboundPolicy(SERVICE, { circuitBreaker: { maxRequests: 2 } }));
    const before = up.hits.length;
    up.holding = true;
    const first = [get(px.outboundPort), get(px.outboundPort)];
    await until(() => up.held === 2, 'two requests held upstream');
    const third = await get(px.outboundPort);
    expect(third).toEqual({ status: 503, code: 'RMR_CIRCUIT_OPEN' });
    up.release();
    expect((await Promise.all(first)).map((a) => a.status)).toEqual([200, 200]);
    expect(up.hits.length - before).toBe(2);
    expect(await circuitOpen(px, 'max_requests')).toBe(1);
    // The two finished requests gave their slots back: the next one goes through.
    expect((await get(px.outboundPort)).status).toBe(200);
  });

  it('maxPendingRequests 1 with maxConnections 1: one waits, the next is refused, the waiting one is served', async () => {
    policy.set(outboundPolicy(SERVICE, { circuitBreaker: { maxConnections: 1, maxPendingRequests: 1 } }));
    const before = up.hits.length;
    up.holding = true;
    const r1 = get(px.outboundPort);
    await until(() => up.held === 1, 'first request held upstream');
    // One of the two waits for the only connection, the other finds the queue full; which one
    // is which depends on arrival order, so count them.
    const rest = [get(px.outboundPort), get(px.outboundPort)];
    const refused = await Promise.race(rest);
    expect(refused).toEqual({ status: 503, code: 'RMR_CIRCUIT_OPEN' });
    up.release();
    const all = [await r1, ...(await Promise.all(rest))];
    expect(all.filter((a) => a.status === 200)).toHaveLength(2);
    expect(all.filter((a) => a.code === 'RMR_CIRCUIT_OPEN')).toHaveLength(1);
    expect(up.hits.length - before).toBe(2);
    expect(await circuitOpen(px, 'max_pending_requests')).toBe(1);
  });

  it('maxConnections 2: six concurrent requests share two upstream connections, none refused', async () => {
    policy.set(outboundPolicy(SERVICE, { circuitBreaker: { maxConnections: 2 } }));
    const accepted = up.accepted;
    const before = up.hits.length;
    up.holding = true;
    const six = Array.from({ length: 6 }, () => get(px.outboundPort));
    await until(() => up.held === 2, 'two requests held upstream');
    up.release();
    expect((await Promise.all(six)).map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(up.hits.length - before).toBe(6);
    // A new limit is a new pool (pools are keyed by limit): exactly two new sockets.
    expect(up.accepted - accepted).toBe(2);
  });

  it('a changed maxConnections reaches the next requests: a new pool with the new limit', async () => {
    policy.set(outboundPolicy(SERVICE, { circuitBreaker: { maxConnections: 3 } }));
    const accepted = up.accepted;
    up.holding = true;
    const five = Array.from({ length: 5 }, () => get(px.outboundPort));
    await until(() => up.held === 3, 'three requests held upstream');
    up.release();
    expect((await Promise.all(five)).map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(up.accepted - accepted).toBe(3);
  });

  it('a section for another destination leaves this one alone', async () => {
    policy.set(outboundPolicy('127.0.0.211:80', { circuitBreaker: { maxRequests: 1 } }));
    up.holding = true;
    const three = Array.from({ length: 3 }, () => get(px.outboundPort));
    await until(() => up.held === 3, 'three requests held upstream');
    up.release();
    expect((await Promise.all(three)).map((a) => a.status)).toEqual([200, 200, 200]);
  });

  it('no policy at all: no limit', async () => {
    policy.current = undefined;
    up.holding = true;
    const four = Array.from({ length: 4 }, () => get(px.outboundPort));
    await until(() => up.held === 4, 'four requests held upstream');
    up.release();
    expect((await Promise.all(four)).map((a) => a.status)).toEqual([200, 200, 200, 200]);
  });
});

/** undici's request API over one `Pools.outbound` destination. */
class OutboundOf extends Dispatcher {
  constructor(
    private readonly pools: Pools,
    private readonly key: string,
  ) {
    super();
  }
  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // undici's request API passes its classic callback handler: the contract of http/dispatch.ts.
    return this.pools.outbound.get(this.key).dispatch(opts as never, handler as never);
  }
}

describe('circuit breaker on a plain destination (Pools.outbound)', () => {
  let up: Upstream;
  let pools: Pools;
  let metrics: PolicyMetrics;
  const policy = new TestPolicy();

  beforeAll(async () => {
    up = await startUpstream();
    pools = new Pools(testPoolsOptions());
    metrics = PolicyMetrics.of(new Registry());
    pools.usePolicy(policy, metrics);
  });
  afterAll(async () => {
    await pools.close();
    await up.close();
  });

  it('without a policy source the outbound view is the pools themselves (the code that ran before)', async () => {
    const plain = new Pools(testPoolsOptions());
    expect(plain.outbound).toBe(plain);
    await plain.close();
  });

  it('without a section the outbound view hands out the plain pool (no wrapper)', () => {
    policy.current = undefined;
    expect(pools.outbound.get(up.key)).toBe(pools.get(up.key));
    policy.set(outboundPolicy('127.0.0.212:80', { circuitBreaker: { maxRequests: 1 } }));
    expect(pools.outbound.get(up.key)).toBe(pools.get(up.key));
  });

  it('maxRequests 1: a second concurrent request is refused with CircuitOpenError', async () => {
    policy.set(outboundPolicy(up.key, { circuitBreaker: { maxRequests: 1 } }));
    const d = new OutboundOf(pools, up.key);
    up.holding = true;
    const first = request(`http://${up.key}/a`, { dispatcher: d });
    await until(() => up.held === 1, 'first request held upstream');
    const err = await request(`http://${up.key}/b`, { dispatcher: d }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CircuitOpenError);
    expect((err as CircuitOpenError).code).toBe('RMR_CIRCUIT_OPEN');
    expect((err as CircuitOpenError).limit).toBe('max_requests');
    up.release();
    const r = await first;
    expect(r.statusCode).toBe(200);
    await r.body.dump();
    expect(metrics.circuitOpen.child('outbound', 'max_requests').value).toBe(1);
    const again = await request(`http://${up.key}/c`, { dispatcher: d });
    expect(again.statusCode).toBe(200);
    await again.body.dump();
  });

  it("a handler of the dispatch contract (the forwarder's) is counted and refused the same way", async () => {
    policy.set(outboundPolicy(up.key, { circuitBreaker: { maxRequests: 1 } }));
    const before = metrics.circuitOpen.child('outbound', 'max_requests').value;
    const run = (): Promise<{ status: number; error: Error | undefined }> =>
      new Promise((resolve) => {
        let status = 0;
        const handler: DispatchHandler = {
          onHeaders: (code) => {
            status = code;
            return true;
          },
          onData: () => true,
          onComplete: () => resolve({ status, error: undefined }),
          onError: (error) => resolve({ status, error }),
        };
        pools.outbound.get(up.key).dispatch({ path: '/n', method: 'GET' }, handler);
      });
    up.holding = true;
    const first = run();
    await until(() => up.held === 1, 'first request held upstream');
    const second = await run();
    expect(second.error).toBeInstanceOf(CircuitOpenError);
    up.release();
    expect(await first).toEqual({ status: 200, error: undefined });
    expect(metrics.circuitOpen.child('outbound', 'max_requests').value).toBe(before + 1);
    expect((await run()).status).toBe(200);
  });
});
