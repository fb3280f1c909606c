import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample, scrape, until } from '../harness.js';
import { inboundPolicy, send, startMisbehavingBackend, startTrafficEngine } from './traffic-helpers.js';
import type { MisbehavingBackend, TrafficEngine } from './traffic-helpers.js';

describe('timeout layer: per-route request and idle timeouts over real sockets', () => {
  let backend: MisbehavingBackend;
  let px: TrafficEngine;
  beforeAll(async () => {
    backend = await startMisbehavingBackend();
    px = await startTrafficEngine(
      backend.port,
      inboundPolicy({
        routes: [
          { match: { paths: [{ prefix: '/stall/request' }] }, timeoutMs: 300 },
          { match: { paths: [{ prefix: '/stall/idle' }] }, idleTimeoutMs: 300 },
          { match: { paths: [{ prefix: '/head-stall' }] }, timeoutMs: 20_000, idleTimeoutMs: 300 },
          {
            match: { paths: [{ prefix: '/always-503/timed' }] },
            timeoutMs: 300,
            retries: { attempts: 5, backoffMs: 1000, maxBackoffMs: 1000 },
          },
          // 800 ms in all, a chunk every 100 ms: longer than the idle timeout, never idle that long.
          { match: { paths: [{ prefix: '/slow-drip' }] }, idleTimeoutMs: 400 },
        ],
      }),
    );
  });
  afterAll(async () => {
    await px.engine.close();
    await backend.close();
  });

  it('a backend that accepts and never answers: 504 RMR_REQUEST_TIMEOUT, and the upstream socket is closed', async () => {
    const r = await send(px.port('inbound'), '/stall/request');
    expect(r.status).toBe(504);
    expect(r.headers['x-remora-error']).toBe('RMR_REQUEST_TIMEOUT');
    expect(r.body).toMatch(/did not complete within 300 ms/);
    expect(backend.hits('/stall/request')).toBe(1);
    // The aborted exchange took its upstream connection with it: nothing left at the backend.
    await until(() => backend.openSockets() === 0, 'the upstream socket to close');
    const text = await scrape(px.port('metrics'));
    expect(sample(text, 'remora_requests_total', { direction: 'inbound', status_code: '504' })).toBe(1);
    expect(px.layerLogs.find((l) => l.event === 'request_timeout')?.code).toBe('RMR_REQUEST_TIMEOUT');
  });

  it('no byte before the head for idleTimeoutMs: 504 RMR_IDLE_TIMEOUT', async () => {
    const r = await send(px.port('inbound'), '/stall/idle');
    expect(r.status).toBe(504);
    expect(r.headers['x-remora-error']).toBe('RMR_IDLE_TIMEOUT');
    await until(() => backend.openSockets() === 0, 'the upstream socket to close');
  });

  it('idle after the response head was sent: the client connection is cut, the upstream aborted', async () => {
    const r = await send(px.port('inbound'), '/head-stall');
    expect(r.status).toBe(200);
    expect(r.cut).toBe(true);
    expect(r.body).toBe('first chunk\n');
    await until(() => backend.openSockets() === 0, 'the upstream socket to close');
  });

  it('the request timeout covers retries and their backoff: 504, no retry sent after it', async () => {
    const r = await send(px.port('inbound'), '/always-503/timed');
    expect(r.status).toBe(504);
    expect(r.headers['x-remora-error']).toBe('RMR_REQUEST_TIMEOUT');
    const hits = backend.hits('/always-503/timed');
    expect(hits).toBeGreaterThanOrEqual(1);
    // A retry scheduled before the timeout must not go out after it (backoff ≤ 1 s).
    await new Promise((r) => setTimeout(r, 1200));
    expect(backend.hits('/always-503/timed')).toBe(hits);
  });

  it('a response that keeps moving is not idle, and a path without a route has no timeout', async () => {
    const r = await send(px.port('inbound'), '/slow-drip');
    expect(r.status).toBe(200);
    expect(r.cut).toBe(false);
    expect(r.body).toBe([0, 1, 2, 3, 4, 5, 6, 7].map((i) => `drip${i}\n`).join(''));
    const plain = await send(px.port('inbound'), '/plain');
    expect(plain.status).toBe(200);
    expect(plain.headers['x-remora-error']).toBeUndefined();
  });
});
