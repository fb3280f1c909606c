/**
 * Limits a hostile client cannot outlast (issue 10, item 12), with real sockets against a real
 * engine: the per-listener connection cap (tcp/cap.ts) and the request-head timeout
 * (http/server.ts). The metrics-snapshot coalescing lives in the supervisor's tests.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../proxy/src/config/config.js';
import { ConfigError } from '../../proxy/src/errors.js';
import { ENV, METRICS } from '../../proxy/src/contract.js';
import { rawExchange, sample, scrape, startBackend, startEngine, until } from './harness.js';
import type { Backend, TestEngine } from './harness.js';

const GET = 'GET /hello HTTP/1.1\r\nHost: app\r\n\r\n';

/** A keep-alive client connection that has had one answer (so it is surely accepted and held). */
async function heldConnection(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    let got = '';
    s.on('data', function onData(c: Buffer) {
      got += c.toString('latin1');
      if (got.includes('hello world\n')) {
        s.off('data', onData);
        resolve();
      }
    });
    s.once('close', () => reject(new Error(`closed before an answer: ${JSON.stringify(got)}`)));
    s.write(GET);
  });
  return s;
}

/** What a fresh connection sees: the bytes it got and whether the proxy closed it. */
function probe(port: number): Promise<{ bytes: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(GET));
    let bytes = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve({ bytes, closed: false });
    }, 5000);
    s.on('data', (c: Buffer) => {
      bytes += c.toString('latin1');
      if (bytes.includes('hello world\n')) {
        clearTimeout(t);
        s.destroy();
        resolve({ bytes, closed: false });
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve({ bytes, closed: true });
    });
  });
}

describe('connection cap per listener (REMORA_MAX_CONNECTIONS)', () => {
  let backend: Backend;
  let px: TestEngine;
  const held: net.Socket[] = [];
  beforeAll(async () => {
    backend = await startBackend();
    px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${backend.port}`, [ENV.maxConnections]: '3' });
  });
  afterEach(() => {
    for (const s of held.splice(0)) s.destroy();
  });
  afterAll(async () => {
    await px.engine.close();
    await backend.close();
  });

  it('unbounded connections exhausted the proxy: the N+1th is closed at accept, counted, and the N held ones keep working', async () => {
    const port = px.port('inbound');
    for (let i = 0; i < 3; i++) held.push(await heldConnection(port));
    const before = sample(await scrape(px.port('metrics')), METRICS.connectionsOverCap, {
      listener: 'inbound',
    });

    const over = await probe(port);
    expect(over).toEqual({ bytes: '', closed: true });
    expect(
      sample(await scrape(px.port('metrics')), METRICS.connectionsOverCap, { listener: 'inbound' }),
    ).toBe((before ?? 0) + 1);
    expect(px.logs.some((l) => l.event === 'connections_over_cap' && l.listener === 'inbound')).toBe(true);

    // The held connections are untouched: one more request on one of them is answered.
    const first = held[0] as net.Socket;
    const again = new Promise<string>((resolve) => {
      let got = '';
      first.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        if (got.includes('hello world\n')) resolve(got);
      });
    });
    first.write(GET);
    expect(await again).toMatch(/^HTTP\/1\.1 200 /);

    // Below the cap again (one closed), a new connection is served.
    (held.pop() as net.Socket).destroy();
    await until(() => px.engine.activeConnections() < 3, 'a held connection to close');
    const after = await probe(port);
    expect(after.bytes).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('each listener counts its own connections: a full inbound does not close outbound', async () => {
    const outbound = await startEngine({
      [ENV.outboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.maxConnections]: '1',
    });
    try {
      held.push(await heldConnection(outbound.port('inbound')));
      expect((await probe(outbound.port('inbound'))).closed).toBe(true);
      expect((await probe(outbound.port('outbound'))).bytes).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      for (const s of held.splice(0)) s.destroy();
      await outbound.engine.close();
    }
  });
});

describe('request-head timeout (REMORA_REQUEST_HEAD_TIMEOUT_MS)', () => {
  let backend: Backend;
  let px: TestEngine;
  beforeAll(async () => {
    backend = await startBackend();
    px = await startEngine({
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.requestHeadTimeoutMs]: '1000',
    });
  });
  afterAll(async () => {
    await px.engine.close();
    await backend.close();
  });

  it('a head trickled one byte at a time was held for 90 s and then got a 400: now 408 RMR_REQUEST_HEAD_TIMEOUT and close, nothing forwarded', async () => {
    const received = backend.received.length;
    const reply = await new Promise<{ text: string; sentBytes: number }>((resolve) => {
      const s = net.connect(px.port('inbound'), '127.0.0.1');
      let text = '';
      let sentBytes = 0;
      // The request line at once (so detection says HTTP), then a header a byte per 100 ms.
      const trickle = 'X-Slow: ' + 'a'.repeat(1000);
      let i = 0;
      const timer = setInterval(() => {
        if (s.writable && i < trickle.length) {
          s.write(trickle[i++] as string);
          sentBytes += 1;
        }
      }, 100);
      s.on('connect', () => s.write('GET /slow HTTP/1.1\r\nHost: app\r\n'));
      s.on('data', (c: Buffer) => (text += c.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(timer);
        resolve({ text, sentBytes });
      });
    });
    expect(reply.text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(reply.text.toLowerCase()).toContain('x-remora-error: rmr_request_head_timeout');
    expect(reply.text.toLowerCase()).toContain('connection: close');
    // It was cut while it still trickled, not when it ran out of bytes to send.
    expect(reply.sentBytes).toBeLessThan(1008);
    expect(backend.received.length).toBe(received);
    expect(sample(await scrape(px.port('metrics')), METRICS.requestsTotal, { status_code: '408' })).toBe(1);
  });

  it('a whole head sent at once is unaffected', async () => {
    expect(
      await rawExchange(px.port('inbound'), 'GET /ok HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n'),
    ).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('limits config: bad values are refused with the variable named', () => {
  it.each([
    [ENV.maxConnections, '0', /REMORA_MAX_CONNECTIONS: not a connection count/],
    [ENV.maxConnections, 'many', /REMORA_MAX_CONNECTIONS: not a connection count/],
    [ENV.requestHeadTimeoutMs, '5', /REMORA_REQUEST_HEAD_TIMEOUT_MS: not a timeout in ms \(100\.\.300000\)/],
    [ENV.requestHeadTimeoutMs, '10s', /REMORA_REQUEST_HEAD_TIMEOUT_MS: not a timeout in ms/],
  ])('%s=%s', (name, value, message) => {
    let err: unknown;
    try {
      parseConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).errors.join('\n')).toMatch(message);
  });

  it('defaults: 16384 connections per listener, 15 s for a request head', () => {
    const c = parseConfig({});
    expect(c.maxConnections).toBe(16_384);
    expect(c.requestHeadTimeoutMs).toBe(15_000);
  });
});
