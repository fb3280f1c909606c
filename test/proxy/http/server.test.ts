import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { rawExchange, sample, scrape, startBackend, startEngine, until } from '../harness.js';
import type { Backend, TestEngine } from '../harness.js';

describe('bad input from the client: 400 and close, never forwarded, never a crash', () => {
  let backend: Backend;
  let px: TestEngine;
  beforeAll(async () => {
    backend = await startBackend();
    px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${backend.port}`, [ENV.maxHeaders]: '20' });
  });
  afterAll(async () => {
    await px.engine.close();
    await backend.close();
  });

  const cases: [string, string, number, string][] = [
    ['malformed request line', 'GET /a b HTTX/1.1\r\nHost: x\r\n\r\n', 400, 'RMR_BAD_REQUEST'],
    ['bad header line', 'GET / HTTP/1.1\r\nHost x\r\n\r\n', 400, 'RMR_BAD_REQUEST'],
    [
      'Content-Length together with Transfer-Encoding',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
      'RMR_BAD_REQUEST',
    ],
    [
      'duplicate Content-Length',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello',
      400,
      'RMR_BAD_REQUEST',
    ],
    [
      'conflicting Content-Length values',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
      400,
      'RMR_BAD_REQUEST',
    ],
    [
      'bad chunk size',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
      400,
      'RMR_BAD_REQUEST',
    ],
    [
      'oversized header block',
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'RMR_HEADERS_TOO_LARGE',
    ],
    [
      'too many header fields',
      `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 30 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
      431,
      'RMR_TOO_MANY_HEADERS',
    ],
  ];

  it.each(cases.map(([name, bytes, status, code]) => [name, status, code, bytes] as const))(
    '%s → %d %s, connection closed, nothing reaches the backend',
    async (_name, status, code, bytes) => {
      const before = backend.received.length;
      const out = await rawExchange(px.port('inbound'), bytes);
      expect(out).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(out.toLowerCase()).toContain(`x-remora-error: ${code.toLowerCase()}`);
      expect(out.toLowerCase()).toContain('connection: close');
      // rawExchange returned because the proxy closed the connection (not the 2 s timeout).
      expect(backend.received.length).toBe(before);
    },
  );

  it('a bad chunk after the body started streaming aborts the upstream request, never completes it', async () => {
    const s = net.connect(px.port('inbound'), '127.0.0.1');
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    s.on('error', () => undefined);
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.write('POST /echo-late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await until(
      () => backend.received.at(-1)?.url === '/echo-late' && backend.received.at(-1)?.bodyBytes === 5,
      'the first chunk upstream',
    );
    s.write('zz\r\nbad\r\n0\r\n\r\n');
    await closed;
    await until(() => backend.received.at(-1)?.aborted === true, 'the upstream request to be aborted');
    expect(backend.received.at(-1)?.complete).toBe(false);
    // Either the 400 or the start of the echoed response, never a completed exchange.
    expect(got).not.toMatch(/0\r\n\r\n$/);
  });

  it('still serves good requests after all that', async () => {
    const out = await rawExchange(
      px.port('inbound'),
      'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    const text = await scrape(px.port('metrics'));
    expect(
      sample(text, 'remora_requests_total', { direction: 'inbound', status_code: '400' }),
    ).toBeGreaterThanOrEqual(6);
    expect(sample(text, 'remora_requests_total', { direction: 'inbound', status_code: '431' })).toBe(2);
  });
});

describe('upstream failures get a status and an x-remora-error code', () => {
  it('refused → 503 RMR_UPSTREAM_CONNECT', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${port}` });
    try {
      const out = await rawExchange(
        px.port('inbound'),
        'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      );
      expect(out).toMatch(/^HTTP\/1\.1 503 /);
      expect(out.toLowerCase()).toContain('x-remora-error: rmr_upstream_connect');
      expect(
        px.logs.some(
          (l) => l.event === 'upstream_error' && l.code === 'RMR_UPSTREAM_CONNECT' && l.level === 'warn',
        ),
      ).toBe(true);
    } finally {
      await px.engine.close();
    }
  });

  it('reset before the response → 502 RMR_UPSTREAM_RESET', async () => {
    const backend = await startBackend();
    const px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${backend.port}` });
    try {
      const out = await rawExchange(
        px.port('inbound'),
        'GET /reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      );
      expect(out).toMatch(/^HTTP\/1\.1 502 /);
      expect(out.toLowerCase()).toContain('x-remora-error: rmr_upstream_reset');
    } finally {
      await px.engine.close();
      await backend.close();
    }
  });
});

describe('client aborts', () => {
  let backend: Backend;
  let px: TestEngine;
  beforeAll(async () => {
    backend = await startBackend();
    px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${backend.port}` });
  });
  afterAll(async () => {
    await px.engine.close();
    await backend.close();
  });

  async function activeGauge(): Promise<number | undefined> {
    return sample(await scrape(px.port('metrics')), 'remora_tcp_connections_active', {
      direction: 'inbound',
    });
  }

  it('mid-body: the upstream request is aborted and no socket leaks', async () => {
    const s = net.connect(px.port('inbound'), '127.0.0.1');
    s.on('error', () => undefined);
    s.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n');
    s.write(Buffer.alloc(10_000, 1));
    await until(() => backend.received.at(-1)?.bodyBytes === 10_000, 'the first body bytes upstream');
    expect(backend.openSockets()).toBe(1);
    s.destroy();
    await until(() => backend.received.at(-1)?.aborted === true, 'the upstream request to be aborted');
    // undici opens one replacement connection while discarding the aborted request; it sits idle
    // in the pool and closes at the 4 s keep-alive timeout, so "no leak" means back to zero.
    await until(() => backend.openSockets() === 0, 'the backend to see its socket closed', 8000);
    await until(() => px.engine.activeConnections() === 0, 'the proxy to forget the client');
    expect(backend.received.at(-1)?.complete).toBe(false);
    expect(await activeGauge()).toBe(0);
  });

  it('mid-response: the upstream exchange is torn down too', async () => {
    const s = net.connect(px.port('inbound'), '127.0.0.1');
    s.on('error', () => undefined);
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    s.write('GET /drip HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => got.includes('chunk0'), 'the first chunk');
    s.destroy();
    await until(() => backend.openSockets() === 0, 'the backend socket to close', 8000);
    await until(() => px.engine.activeConnections() === 0, 'the proxy to forget the client');
    expect(await activeGauge()).toBe(0);
  });
});
