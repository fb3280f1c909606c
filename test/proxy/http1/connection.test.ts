/**
 * The upstream connection sketch (proxy/src/http1/connection.ts) against a real raw TCP
 * server on loopback: keep-alive reuse, chunked with trailers, close-delimited, a malformed
 * response, a reset mid-body, backpressure.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamPool } from '../../../proxy/src/http1/connection.js';
import type { ExchangeHandler, UpstreamConnection } from '../../../proxy/src/http1/connection.js';
import { LIMITS } from './drive.js';

const ANSWERS: Record<string, string> = {
  '/cl': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  '/chunked':
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n',
  '/close': 'HTTP/1.1 200 OK\r\n\r\nuntil the end',
  '/bad': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok',
  '/big': `HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n${'x'.repeat(300_000)}`,
};

let server: net.Server;
let port = 0;
let connections = 0;
beforeAll(async () => {
  server = net.createServer((s) => {
    connections++;
    let buf = '';
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      let at: number;
      while ((at = buf.indexOf('\r\n\r\n')) !== -1) {
        const path = buf.slice(0, at).split(' ')[1] ?? '';
        buf = buf.slice(at + 4);
        if (path === '/reset') {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', () => s.destroy());
          return;
        }
        s.write(ANSWERS[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        if (path === '/close') s.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

interface Result {
  status: number;
  body: string;
  trailers: string[];
  error?: { code?: string; message: string };
}

function exchange(pool: UpstreamPool, path: string, pauseEvery = 0): Promise<Result> {
  return new Promise((resolve) => {
    const res: Result = { status: 0, body: '', trailers: [] };
    const ref: { conn?: UpstreamConnection } = {};
    let reads = 0;
    const h: ExchangeHandler = {
      onHead: (head) => (res.status = head.status),
      onData: (b, s, e) => {
        res.body += b.toString('latin1', s, e);
        if (pauseEvery > 0 && ++reads % pauseEvery === 0) {
          setTimeout(() => ref.conn?.resume(), 1);
          return false;
        }
        return true;
      },
      onEnd: (t) => {
        res.trailers = t.toArray();
        resolve(res);
      },
      onError: (err) => {
        res.error = { code: (err as { code?: string }).code, message: err.message };
        resolve(res);
      },
    };
    ref.conn = pool.request(Buffer.from(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`), 'GET', h);
  });
}

describe('UpstreamPool on the codec (a raw TCP server on loopback)', () => {
  it('keeps the connection alive across exchanges, skips 1xx, hands over trailers', async () => {
    const pool = new UpstreamPool({ host: '127.0.0.1', port, limits: LIMITS, maxIdle: 4 });
    const before = connections;
    expect(await exchange(pool, '/cl')).toEqual({ status: 200, body: 'hello', trailers: [] });
    expect(await exchange(pool, '/chunked')).toEqual({ status: 200, body: 'abc', trailers: ['X-T', '1'] });
    expect(await exchange(pool, '/cl')).toMatchObject({ status: 200, body: 'hello' });
    expect(connections - before).toBe(1);
    pool.close();
  });

  it('a close-delimited body ends at the close, and that connection is not reused', async () => {
    const pool = new UpstreamPool({ host: '127.0.0.1', port, limits: LIMITS, maxIdle: 4 });
    const before = connections;
    expect(await exchange(pool, '/close')).toEqual({ status: 200, body: 'until the end', trailers: [] });
    expect(await exchange(pool, '/cl')).toMatchObject({ body: 'hello' });
    expect(connections - before).toBe(2);
    pool.close();
  });

  it('a malformed response fails the exchange with its RMR_HTTP1_* code and closes the connection', async () => {
    const pool = new UpstreamPool({ host: '127.0.0.1', port, limits: LIMITS, maxIdle: 4 });
    const r = await exchange(pool, '/bad');
    expect(r.error?.code).toBe('RMR_HTTP1_FRAMING');
    await new Promise((ok) => setTimeout(ok, 20));
    expect(pool.size).toBe(0);
    pool.close();
  });

  it('a reset in the middle of the body is an error, never a complete response', async () => {
    const pool = new UpstreamPool({ host: '127.0.0.1', port, limits: LIMITS, maxIdle: 4 });
    const r = await exchange(pool, '/reset');
    expect(r.error?.code).toMatch(/^RMR_(HTTP1_INCOMPLETE|UPSTREAM_RESET)$/);
    expect(r.body).toBe('abc');
    pool.close();
  });

  it('backpressure: a handler that pauses on every read still gets every byte, in order', async () => {
    const pool = new UpstreamPool({ host: '127.0.0.1', port, limits: LIMITS, maxIdle: 4 });
    const r = await exchange(pool, '/big', 1);
    expect(r.error).toBeUndefined();
    expect(r.body.length).toBe(300_000);
    expect(/^x+$/.test(r.body)).toBe(true);
    pool.close();
  });

  it('a body whose last bytes came in a paused read still ends on resume (it hung once)', async () => {
    const pool = new UpstreamPool({ host: '127.0.0.1', port, limits: LIMITS, maxIdle: 4 });
    try {
      expect(await exchange(pool, '/cl', 1)).toEqual({ status: 200, body: 'hello', trailers: [] });
    } finally {
      pool.close();
    }
  });

  it('a refused connection is RMR_UPSTREAM_CONNECT', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const p = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const pool = new UpstreamPool({ host: '127.0.0.1', port: p, limits: LIMITS, maxIdle: 4 });
    expect((await exchange(pool, '/cl')).error?.code).toBe('RMR_UPSTREAM_CONNECT');
    pool.close();
  });
});
