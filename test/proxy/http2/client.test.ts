/**
 * The HTTP/2 upstream client (proxy/src/http2/client.ts) against a real grpc-js server: the
 * dispatch contract the forwarder uses, with raw gRPC frames.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import type { DispatchHandler, DispatchOptions } from '../../../proxy/src/http/dispatch.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H2Origin } from '../../../proxy/src/http2/client.js';
import { classify } from '../../../proxy/src/rescue.js';
import { UpstreamConnectError, UpstreamResetError } from '../../../proxy/src/errors.js';
import { closedPort } from '../policy/upstreams.js';
import { startGrpcServer } from '../../helpers/grpc.js';
import type { GrpcPeer } from '../../helpers/grpc.js';

function frame(msg: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

interface Outcome {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  trailers: Record<string, string> | null;
  error: Error | undefined;
}

function run(origin: H2Origin, opts: Partial<DispatchOptions>, pauseFirst = false): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: null, error: undefined };
    const chunks: Buffer[] = [];
    let resume: (() => void) | undefined;
    origin.dispatch(
      { path: '/', method: 'POST', headers: [], body: null, ...opts } as DispatchOptions,
      {
        onConnect: () => undefined,
        onHeaders: (status, raw, r) => {
          out.status = status;
          for (let i = 0; i < raw.length; i += 2) out.headers[String(raw[i])] = String(raw[i + 1]);
          resume = r;
          return true;
        },
        onData: (c) => {
          chunks.push(c);
          if (pauseFirst && chunks.length === 1) {
            setTimeout(() => resume?.(), 50);
            return false;
          }
          return true;
        },
        onComplete: (t) => {
          if (t !== null) {
            out.trailers = {};
            for (let i = 0; i < t.length; i += 2) out.trailers[String(t[i])] = String(t[i + 1]);
          }
          out.body = Buffer.concat(chunks);
          resolve(out);
        },
        onError: (e) => {
          out.error = e;
          resolve(out);
        },
      } as DispatchHandler,
    );
  });
}

// No `te`: the client adds `te: trailers` for gRPC itself (the HTTP core drops `te`).
const GRPC = ['content-type', 'application/grpc'];

describe('HTTP/2 upstream client', () => {
  let peer: GrpcPeer;
  let origin: H2Origin;
  beforeAll(async () => {
    peer = await startGrpcServer();
    origin = new H2Origin(`127.0.0.1:${peer.port}`, { connectTimeout: 2000, idleTimeout: 10_000 });
  });
  afterAll(async () => {
    await origin.destroy();
    await peer.close();
  });

  it('carries a unary call: headers, the message, trailers with grpc-status', async () => {
    const o = await run(origin, {
      path: '/remora.test.Echo/Unary',
      headers: [...GRPC, 'x-echo-a', 'one', 'Connection', 'close', 'host', 'svc.example'],
      body: frame(Buffer.from('hello')),
    });
    expect(o.error).toBeUndefined();
    expect(o.status).toBe(200);
    expect(o.headers['x-echo-a']).toBe('one');
    expect(o.body.subarray(5).toString()).toBe('hello');
    expect(o.trailers?.['grpc-status']).toBe('0');
    expect(o.trailers?.['x-trailer-a']).toBe('one');
    expect(peer.calls.at(-1)?.host).toBe('svc.example');
  });

  it('reuses one session for many streams', async () => {
    await Promise.all(
      Array.from({ length: 20 }, () =>
        run(origin, { path: '/remora.test.Echo/Unary', headers: GRPC, body: frame(Buffer.from('x')) }),
      ),
    );
    expect(origin.stats.connected).toBe(1);
    expect(origin.stats.running).toBe(0);
  });

  it('carries a trailers-only answer (a chosen status) as headers that end the stream', async () => {
    const o = await run(origin, {
      path: '/remora.test.Echo/Unary',
      headers: [...GRPC, 'x-status', '5', 'x-message', 'nope'],
      body: frame(Buffer.from('x')),
    });
    expect(o.status).toBe(200);
    const status = o.trailers?.['grpc-status'] ?? o.headers['grpc-status'];
    expect(status).toBe('5');
  });

  it('streams a request body piped from a Readable and honours paused reads', async () => {
    const body = new PassThrough();
    const p = run(origin, { path: '/remora.test.Echo/Chat', headers: GRPC, body }, true);
    for (let i = 0; i < 10; i++) body.write(frame(Buffer.alloc(1000, i)));
    body.end();
    const o = await p;
    expect(o.error).toBeUndefined();
    expect(o.body.length).toBe(10 * 1005);
    expect(o.trailers?.['grpc-status']).toBe('0');
  });

  it('fails an unreachable origin with an error classified as a connect failure', async () => {
    const dead = new H2Origin(`127.0.0.1:${await closedPort()}`, { connectTimeout: 2000, idleTimeout: 1000 });
    const o = await run(dead, {
      path: '/remora.test.Echo/Unary',
      headers: GRPC,
      body: frame(Buffer.from('x')),
    });
    expect(o.error).toBeDefined();
    expect(classify(o.error, 'x')).toBeInstanceOf(UpstreamConnectError);
    await dead.destroy();
  });

  it('opens a new session after GOAWAY; the stream in flight on the old one finishes', async () => {
    let sessions = 0;
    const server = http2.createServer();
    server.on('session', (sess) => {
      sessions++;
      // Every session says GOAWAY after its first stream started: no new stream on it.
      sess.once('stream', () => setImmediate(() => sess.goaway()));
    });
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      setTimeout(() => stream.end('done'), 30);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const o = new H2Origin(`127.0.0.1:${(server.address() as AddressInfo).port}`, {
      connectTimeout: 2000,
      idleTimeout: 1000,
    });
    const first = run(o, { method: 'GET', path: '/a' });
    await new Promise((r) => setTimeout(r, 15));
    const second = await run(o, { method: 'GET', path: '/b' });
    const a = await first;
    expect(a.error).toBeUndefined();
    expect(a.body.toString()).toBe('done');
    expect(second.error).toBeUndefined();
    expect(second.body.toString()).toBe('done');
    expect(sessions).toBe(2);
    await o.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('reports an upstream RST_STREAM as a reset', async () => {
    const server = http2.createServer();
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond({ ':status': 200 });
      stream.write('partial');
      // destroy with an error: RST_STREAM INTERNAL_ERROR (close(code) after the peer's END_STREAM ends gracefully)
      setTimeout(() => stream.destroy(new Error('upstream fails mid-answer')), 10);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const o = new H2Origin(`127.0.0.1:${(server.address() as AddressInfo).port}`, {
      connectTimeout: 2000,
      idleTimeout: 1000,
    });
    const r = await run(o, { method: 'GET', path: '/' });
    expect(r.status).toBe(200);
    expect(classify(r.error, 'x')).toBeInstanceOf(UpstreamResetError);
    expect((r.error as { rstCode?: number }).rstCode).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await o.destroy();
    await new Promise<void>((r2) => server.close(() => r2()));
  });

  it('closes a session once no stream has run for idleTimeout, not while one is open', async () => {
    const peer2 = await startGrpcServer();
    const o = new H2Origin(`127.0.0.1:${peer2.port}`, { connectTimeout: 2000, idleTimeout: 300 });
    try {
      // A long call: its stream stays open over three idle timeouts, the session with it.
      const body = new PassThrough();
      const p = run(o, { path: '/remora.test.Echo/Chat', headers: GRPC, body });
      body.write(frame(Buffer.from('a')));
      await new Promise((r) => setTimeout(r, 900));
      expect(o.stats.connected).toBe(1);
      const ended = Date.now(); // the stream finishes after this: idle from then on
      body.end();
      const r = await p;
      expect(r.trailers?.['grpc-status']).toBe('0');
      // Nothing runs now: the session goes within a few idle timeouts.
      const t0 = Date.now();
      while (o.stats.connected > 0 && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 50));
      expect(o.stats.connected).toBe(0);
      expect(Date.now() - ended).toBeGreaterThanOrEqual(300); // not before its idle timeout
      // The next request opens a new session.
      const again = await run(o, {
        path: '/remora.test.Echo/Unary',
        headers: GRPC,
        body: frame(Buffer.from('b')),
      });
      expect(again.trailers?.['grpc-status']).toBe('0');
    } finally {
      await o.destroy();
      await peer2.close();
    }
  });
});
