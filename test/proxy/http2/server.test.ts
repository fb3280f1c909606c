/**
 * The HTTP/2 stage on its own (proxy/src/http2/server.ts), fed real sockets from a listener as
 * the stack feeds it: an idle connection is let go with GOAWAY, one with a stream open is not.
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttp2Stage } from '../../../proxy/src/http2/server.js';
import type { Http2Stage } from '../../../proxy/src/http2/server.js';
import type { Handler, RequestContext } from '../../../proxy/src/http/layer.js';
import { createLogger } from '../../../proxy/src/log.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { kConn } from '../../../proxy/src/tcp/connection.js';
import type { SocketWithConn } from '../../../proxy/src/tcp/connection.js';

let listener: net.Server;
let stage: Http2Stage;
const held: RequestContext[] = [];

beforeAll(async () => {
  const metrics = new ProxyMetrics().inbound;
  // The innermost handler of this test holds every request (never answers) until released.
  const handler: Handler = (ctx) => void held.push(ctx);
  stage = createHttp2Stage({
    direction: 'inbound',
    handler,
    metrics,
    log: createLogger('warn', new Writable({ write: (_c, _e, cb) => cb() })),
    maxHeaderBytes: 16 * 1024,
    maxHeaders: 100,
    draining: () => false,
    idleTimeoutMs: 300,
  });
  listener = net.createServer((s: Socket) => {
    (s as SocketWithConn)[kConn] = {
      direction: 'inbound',
      destination: { host: '127.0.0.1', port: 9 },
      destinationKey: '127.0.0.1:9',
      peerAddress: s.remoteAddress ?? '',
      peerPort: s.remotePort ?? 0,
      peerIdentity: undefined,
      protocol: 'http2',
      peer: metrics,
    };
    s.pause();
    stage.serve(s);
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  stage.close();
  await new Promise<void>((r) => listener.close(() => r()));
});

function connect(): http2.ClientHttp2Session {
  const s = http2.connect(`http://127.0.0.1:${(listener.address() as AddressInfo).port}`);
  s.on('error', () => undefined);
  return s;
}

describe('HTTP/2 stage', () => {
  it('closes a connection with no stream after the idle timeout, with GOAWAY NO_ERROR', async () => {
    const s = connect();
    const code = await new Promise<number>((r) => s.once('goaway', (c: number) => r(c)));
    expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await new Promise<void>((r) => (s.closed ? r() : s.once('close', () => r())));
  });

  it('keeps a connection whose stream is still open past the idle timeout', async () => {
    const s = connect();
    let goaway = false;
    s.once('goaway', () => (goaway = true));
    const req = s.request({ ':method': 'GET', ':path': '/held' });
    req.on('error', () => undefined);
    req.end();
    const before = held.length;
    await new Promise((r) => setTimeout(r, 900)); // three idle timeouts, the stream open
    expect(held.length).toBe(before + 1);
    expect(goaway).toBe(false);
    // Answer it now through the seam, as a forwarder would.
    const ctx = held.at(-1) as RequestContext;
    ctx.response.writeHead(200, '', ['content-type', 'text/plain']);
    ctx.response.end('late\n');
    const [status, body] = await new Promise<[number, string]>((resolve) => {
      let b = '';
      let st = 0;
      req.on('response', (h) => (st = Number(h[':status'])));
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => resolve([st, b]));
    });
    expect(status).toBe(200);
    expect(body).toBe('late\n');
    s.close();
  });
});

describe('HTTP/2 stage: trailers of a plain (non-gRPC) HTTP/2 answer', () => {
  it('passes the trailers after a streamed body', async () => {
    const s = connect();
    const req = s.request({ ':method': 'GET', ':path': '/trailers' });
    req.on('error', () => undefined);
    req.end();
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (held.some((c) => c.path === '/trailers')) {
          clearInterval(t);
          r();
        }
      }, 10);
    });
    const ctx = held.find((c) => c.path === '/trailers') as RequestContext;
    ctx.response.writeHead(200, '', ['content-type', 'text/plain']);
    ctx.response.write(Buffer.from('part one\n'));
    ctx.response.end(undefined, ['x-checksum', 'abc123']);
    const got = await new Promise<{ body: string; trailers: http2.IncomingHttpHeaders }>((resolve) => {
      let body = '';
      let trailers: http2.IncomingHttpHeaders = {};
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('trailers', (t) => (trailers = t));
      req.on('end', () => resolve({ body, trailers }));
    });
    expect(got.body).toBe('part one\n');
    expect(got.trailers['x-checksum']).toBe('abc123');
    s.close();
  });
});
