import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SectionLimiter } from '../../../proxy/src/policy/ratelimit.js';
import { createLogger } from '../../../proxy/src/log.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { rateLimitLayer } from '../../../proxy/src/policy/ratelimit.js';
import { sample, scrape } from '../harness.js';
import {
  inboundPolicy,
  send,
  startMisbehavingBackend,
  startStageListener,
  startTrafficEngine,
} from './traffic-helpers.js';
import type { MisbehavingBackend, TrafficEngine } from './traffic-helpers.js';

describe('token bucket (pure, clock passed in)', () => {
  it('burst, then refill from the clock; Retry-After is whole seconds rounded up', () => {
    const l = new SectionLimiter({ requestsPerSecond: 0.5, burst: 2 }, 10, 0);
    expect(l.take(undefined, 0)).toBe(0);
    expect(l.take(undefined, 0)).toBe(0);
    expect(l.take(undefined, 0)).toBe(2); // one token every 2 s
    expect(l.take(undefined, 1500)).toBe(1); // 0.75 token: 0.5 s more, shown as 1 s
    expect(l.take(undefined, 2000)).toBe(0);
  });

  it('a config update applies at once; tokens already spent stay spent', () => {
    const l = new SectionLimiter({ requestsPerSecond: 1, burst: 1 }, 10, 0);
    expect(l.take(undefined, 0)).toBe(0);
    expect(l.take(undefined, 0)).toBe(1);
    l.configure({ requestsPerSecond: 100, burst: 5 });
    expect(l.take(undefined, 0)).toBe(1); // still empty at the same instant
    expect(l.take(undefined, 10)).toBe(0); // 100/s: a token per 10 ms
  });

  it('per-source buckets are bounded: a flood of addresses cannot grow them, the least recent go first', () => {
    const l = new SectionLimiter({ requestsPerSecond: 1, burst: 1 }, 100, 0);
    expect(l.take('10.0.0.1', 0)).toBe(0);
    expect(l.take('10.0.0.1', 0)).toBe(1);
    for (let i = 0; i < 50; i++) l.take(`10.1.0.${i}`, 0);
    // still among the 100 most recent: its spent bucket is kept
    expect(l.take('10.0.0.1', 0)).toBe(1);
    for (let i = 0; i < 10_000; i++) l.take(`10.2.${i >> 8}.${i & 255}`, 0);
    expect(l.buckets).toBe(100);
    // evicted by the flood: it starts again like a new source
    expect(l.take('10.0.0.1', 0)).toBe(0);
  });
});

describe('rate limit layer over real sockets', () => {
  let backend: MisbehavingBackend;
  let perSource: TrafficEngine;
  let global: TrafficEngine;
  let now = 0;
  beforeAll(async () => {
    backend = await startMisbehavingBackend();
    const clock = { now: () => now };
    perSource = await startTrafficEngine(
      backend.port,
      inboundPolicy({ rateLimit: { requestsPerSecond: 1, burst: 2, per: 'identity' } }),
      clock,
    );
    global = await startTrafficEngine(
      backend.port,
      inboundPolicy({ rateLimit: { requestsPerSecond: 1, burst: 2, per: 'global' } }),
      clock,
    );
  });
  afterAll(async () => {
    await perSource.engine.close();
    await global.engine.close();
    await backend.close();
  });

  it('per identity (plaintext: per source address): one source spent does not limit another', async () => {
    const port = perSource.port('inbound');
    const a = { localAddress: '127.0.0.1' };
    expect((await send(port, '/a', a)).status).toBe(200);
    expect((await send(port, '/a', a)).status).toBe(200);
    const refused = await send(port, '/a', a);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers['x-remora-error']).toBe('RMR_RATE_LIMITED');
    expect(backend.hits('/a')).toBe(2);
    expect((await send(port, '/a', { localAddress: '127.0.0.2' })).status).toBe(200);
    now += 1000;
    expect((await send(port, '/a', a)).status).toBe(200);
    const text = await scrape(perSource.port('metrics'));
    expect(sample(text, 'remora_rate_limited_total', { direction: 'inbound' })).toBe(1);
    // The local answer is counted like any other response.
    expect(sample(text, 'remora_requests_total', { direction: 'inbound', status_code: '429' })).toBe(1);
  });

  it('global: one bucket for every source', async () => {
    const port = global.port('inbound');
    expect((await send(port, '/g', { localAddress: '127.0.0.1' })).status).toBe(200);
    expect((await send(port, '/g', { localAddress: '127.0.0.3' })).status).toBe(200);
    const r = await send(port, '/g', { localAddress: '127.0.0.2' });
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('1');
    expect(backend.hits('/g')).toBe(2);
  });

  it('a POST refused with its body unread gets its 429 and the backend never sees it', async () => {
    const port = global.port('inbound');
    const r = await send(port, '/post', { method: 'POST', body: 'z'.repeat(50_000) });
    expect(r.status).toBe(429);
    expect(backend.hits('/post')).toBe(0);
  });
});

describe('rate limit per verified identity (mTLS connections)', () => {
  it('one bucket per peer identity, whatever address it comes from; plaintext peers by address', async () => {
    const backend = await startMisbehavingBackend();
    const policy = inboundPolicy({ rateLimit: { requestsPerSecond: 1, burst: 1, per: 'identity' } });
    // .1 and .2 present the same workload identity (as the tunnel server records it after
    // verifying the certificate); .3 is plaintext.
    const ids: Record<string, string> = {
      '127.0.0.1': 'spiffe://cluster.local/ns/shop/sa/web',
      '127.0.0.2': 'spiffe://cluster.local/ns/shop/sa/web',
    };
    const px = await startStageListener({
      layers: (m) => [
        rateLimitLayer({
          policy,
          direction: 'inbound',
          metrics: PolicyMetrics.of(m.registry),
          log: createLogger('silent'),
          now: () => 0,
        }),
      ],
      upstreamFor: () => `127.0.0.1:${backend.port}`,
      identityOf: (s) => ids[s.remoteAddress ?? ''],
    });
    try {
      expect((await send(px.port, '/id', { localAddress: '127.0.0.1' })).status).toBe(200);
      // Another address, the same identity: the same (spent) bucket.
      expect((await send(px.port, '/id', { localAddress: '127.0.0.2' })).status).toBe(429);
      // Plaintext: its own bucket, by address.
      expect((await send(px.port, '/id', { localAddress: '127.0.0.3' })).status).toBe(200);
      expect((await send(px.port, '/id', { localAddress: '127.0.0.3' })).status).toBe(429);
      expect(backend.hits('/id')).toBe(2);
    } finally {
      await px.close();
      await backend.close();
    }
  });
});
