import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { RetryBudget, RouteRetry, grpcStatusBits, repeatable } from '../../../proxy/src/policy/retry.js';
import { sample, scrape } from '../harness.js';
import { inboundPolicy, send, startMisbehavingBackend, startTrafficEngine } from './traffic-helpers.js';
import type { MisbehavingBackend, TrafficEngine } from './traffic-helpers.js';

describe('retry decisions (pure)', () => {
  it.each([
    ['connect-failure', 'POST', false, false, true],
    ['connect-failure', 'POST', true, false, true],
    ['connect-failure', 'PUT', true, true, false],
    ['5xx', 'GET', false, false, true],
    ['5xx', 'DELETE', false, false, true],
    ['5xx', 'POST', false, false, false],
    ['5xx', 'PATCH', false, false, false],
    ['5xx', 'PUT', true, false, false],
    ['reset', 'HEAD', false, false, true],
    ['reset', 'POST', false, false, false],
    // a gRPC call (always a POST with a body): again only when its message was kept whole
    ['grpc-status', 'POST', true, false, true],
    ['grpc-status', 'POST', true, true, false],
  ] as const)('%s %s (body %s, body read %s) → %s', (reason, method, hasBody, bodyRead, want) => {
    expect(repeatable(reason, method, hasBody, bodyRead)).toBe(want);
  });

  it('budget: percent of the window’s requests plus the floor, then the window slides', () => {
    let now = 0;
    const b = new RetryBudget(20, 1, () => now);
    // floor: 1 per second over 10 s = 10 retries with no traffic at all
    let granted = 0;
    for (let i = 0; i < 20; i++) if (b.tryRetry()) granted++;
    expect(granted).toBe(10);
    for (let i = 0; i < 50; i++) b.request();
    granted = 0;
    for (let i = 0; i < 20; i++) if (b.tryRetry()) granted++;
    expect(granted).toBe(10); // 20 % of 50
    // 10 s later every slot has fallen out of the window: the floor is back, the 50 requests gone.
    now = 10_000;
    granted = 0;
    for (let i = 0; i < 20; i++) if (b.tryRetry()) granted++;
    expect(granted).toBe(10);
  });

  it('a route’s retry: attempts, the `on` list and the budget; backoff is capped full jitter', () => {
    const m = PolicyMetrics.of(new Registry());
    const r = new RouteRetry(
      { attempts: 1, on: ['5xx'], backoffMs: 10, maxBackoffMs: 40 },
      { direction: 'outbound', metrics: m, now: () => 0, minRetriesPerSecond: 10 },
    );
    expect(r.shouldRetry('5xx', 1, 'GET', false, false)).toBe(true);
    expect(r.shouldRetry('5xx', 2, 'GET', false, false)).toBe(false); // attempts used up
    expect(r.shouldRetry('reset', 1, 'GET', false, false)).toBe(false); // not in `on`
    for (let n = 1; n <= 8; n++) {
      const d = r.backoff(n);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(40, 10 * 2 ** (n - 1)));
    }
  });
});

describe('retries on gRPC statuses (pure)', () => {
  it('retries only the statuses named, within attempts; naming them turns the reason on', () => {
    expect(grpcStatusBits(['UNAVAILABLE', 'RESOURCE_EXHAUSTED'])).toBe((1 << 14) | (1 << 8));
    expect(grpcStatusBits(undefined)).toBe(0);
    const m = PolicyMetrics.of(new Registry());
    const o = { direction: 'outbound' as const, metrics: m, now: () => 0, minRetriesPerSecond: 10 };
    // `on` lists only connect failures: the statuses named still retry.
    const r = new RouteRetry({ attempts: 1, on: ['connect-failure'], grpcStatus: ['UNAVAILABLE'] }, o);
    expect(r.grpcStatuses).toBe(1 << 14);
    expect(r.shouldRetry('grpc-status', 1, 'POST', true, false, 14)).toBe(true);
    expect(r.shouldRetry('grpc-status', 2, 'POST', true, false, 14)).toBe(false); // attempts
    expect(r.shouldRetry('grpc-status', 1, 'POST', true, false, 13)).toBe(false); // not named
    expect(r.shouldRetry('grpc-status', 1, 'POST', true, true, 14)).toBe(false); // message gone
    expect(r.shouldRetry('grpc-status', 1, 'POST', true, false, 0)).toBe(false); // OK
    // Without grpcStatus a route never retries on a status.
    const plain = new RouteRetry({ attempts: 2 }, o);
    expect(plain.grpcStatuses).toBe(0);
    expect(plain.shouldRetry('grpc-status', 1, 'POST', true, false, 14)).toBe(false);
  });
});

describe('retries in the forwarder, over real sockets', () => {
  let backend: MisbehavingBackend;
  let px: TrafficEngine;
  beforeAll(async () => {
    backend = await startMisbehavingBackend();
    px = await startTrafficEngine(
      backend.port,
      inboundPolicy({
        routes: [
          { match: { paths: [{ prefix: '/always-503/budget' }] }, retries: { attempts: 1, backoffMs: 1 } },
          { retries: { attempts: 2, backoffMs: 1, maxBackoffMs: 5 } },
        ],
      }),
      // A frozen clock and a floor of 1 retry/s: the budget is exact (10 + 20 % of the requests).
      { now: () => 0, minRetriesPerSecond: 1 },
    );
  });
  afterAll(async () => {
    await px.engine.close();
    await backend.close();
  });

  const retries = async (reason: string) =>
    sample(await scrape(px.port('metrics')), 'remora_retries_total', {
      direction: 'inbound',
      reason,
    }) ?? 0;

  it('a GET answered 503 once is retried and the client gets the 200', async () => {
    const r = await send(px.port('inbound'), '/503-once/a');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok\n');
    expect(backend.hits('/503-once/a')).toBe(2);
    expect(await retries('5xx')).toBe(1);
  });

  it('a GET whose first connection is reset is retried', async () => {
    const r = await send(px.port('inbound'), '/reset-once/a');
    expect(r.status).toBe(200);
    expect(backend.hits('/reset-once/a')).toBe(2);
    expect(await retries('reset')).toBe(1);
  });

  it('when every attempt fails, the last attempt’s answer goes to the client', async () => {
    const r = await send(px.port('inbound'), '/always-503/last');
    expect(r.status).toBe(503);
    expect(r.body).toBe('unavailable\n');
    expect(backend.hits('/always-503/last')).toBe(3); // the first + attempts: 2
  });

  it('a request whose body was streamed upstream is never retried, even an idempotent PUT', async () => {
    const r = await send(px.port('inbound'), '/503-once/post', { method: 'POST', body: 'x'.repeat(10_000) });
    expect(r.status).toBe(503);
    expect(backend.hits('/503-once/post')).toBe(1);
    const put = await send(px.port('inbound'), '/503-once/put', { method: 'PUT', body: 'y'.repeat(10_000) });
    expect(put.status).toBe(503);
    expect(backend.hits('/503-once/put')).toBe(1);
  });

  it('a spent budget stops the retries: the backend sees exactly the budget’s share', async () => {
    const before = await retries('5xx');
    // Requests so far on this route: none (the other tests took the catch-all route).
    const n = 50;
    for (let i = 0; i < n; i++)
      expect((await send(px.port('inbound'), '/always-503/budget')).status).toBe(503);
    // floor 1/s × 10 s = 10, plus 20 % of 50 = 10
    expect(backend.hits('/always-503/budget')).toBe(n + 20);
    expect((await retries('5xx')) - before).toBe(20);
    const text = await scrape(px.port('metrics'));
    expect(sample(text, 'remora_retry_budget_exhausted_total', { direction: 'inbound' })).toBe(30);
  });
});
