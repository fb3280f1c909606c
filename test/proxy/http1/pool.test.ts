/**
 * The upstream client on the codec (proxy/src/http1/pool.ts, connection.ts) against real
 * sockets: raw-socket backends that answer byte for byte what each case needs, an http backend
 * for bodies, and engines on that client for what the client sees (502/503 codes). Ported from
 * the tests of the fast client it replaced (http/fastpool.ts) and of the codec's sketch.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { CheckedHead } from '../../../proxy/src/http/dispatch.js';
import { filterRequestHeaders, keptRequestLines } from '../../../proxy/src/http/headers.js';
import type { RequestHeadInfo } from '../../../proxy/src/http/headers.js';
import { R_HEAD, RequestReader } from '../../../proxy/src/http1/reader.js';
import { seededPick } from '../../helpers/random.js';
import type { DispatchOptions, Dispatcher } from '../../../proxy/src/http/dispatch.js';
import { Pools } from '../../../proxy/src/http/pools.js';
import { ConnectTimeoutError, clientWheel } from '../../../proxy/src/http1/connection.js';
import { EncodeError } from '../../../proxy/src/http1/encode.js';
import { ClientPool } from '../../../proxy/src/http1/pool.js';
import type { ClientPoolOptions } from '../../../proxy/src/http1/pool.js';
import { UpstreamResetError } from '../../../proxy/src/errors.js';
import { classify, ERROR_HEADER, rescue } from '../../../proxy/src/rescue.js';
import { startBackend, startEngine, until } from '../harness.js';
import type { Backend, TestEngine } from '../harness.js';

/** A request head as the raw backend saw it, and the socket it came on. */
interface Seen {
  head: string;
  path: string;
  method: string;
  socket: Socket;
  /** requests this socket carried before this one */
  before: number;
}

type Route = (s: Seen) => void;

interface RawBackend {
  readonly port: number;
  readonly seen: Seen[];
  accepted(): number;
  open(): number;
  close(): Promise<void>;
}

/** A TCP server that reads bodyless request heads and lets `route` answer each with raw bytes. */
async function rawBackend(route: Route): Promise<RawBackend> {
  const seen: Seen[] = [];
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    let n = 0;
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        const [method = '', path = ''] = head.split(' ');
        const s: Seen = { head, path, method, socket, before: n++ };
        seen.push(s);
        route(s);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    accepted: () => accepted,
    open: () => sockets.size,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Writes `text` in pieces of `size` bytes, a tick apart (a parser must join them). */
function dribble(socket: Socket, text: string, size: number, then?: () => void): void {
  let i = 0;
  const next = (): void => {
    if (socket.destroyed) return;
    if (i >= text.length) {
      then?.();
      return;
    }
    socket.write(text.slice(i, i + size), 'latin1');
    i += size;
    setTimeout(next, 1);
  };
  next();
}

const CHUNKED =
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n' +
  '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 42\r\n\r\n';

function answer(s: Seen): void {
  const w = (t: string): boolean => s.socket.write(t, 'latin1');
  const p = s.path;
  if (p === '/cl') w('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello');
  else if (p === '/chunked') w(CHUNKED);
  else if (p === '/chunked-split') dribble(s.socket, CHUNKED, 3);
  else if (p === '/close') {
    w('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ');
    setTimeout(() => s.socket.end('close'), 20);
  } else if (p === '/head') w('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n');
  else if (p === '/204') w('HTTP/1.1 204 No Content\r\nX-Up: 1\r\n\r\n');
  else if (p === '/304') w('HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n');
  else if (p === '/continue')
    w(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    );
  else if (p === '/ka-short') w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=1\r\n\r\nok');
  else if (p === '/conn-close') w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
  else if (p === '/stale') {
    // The keep-alive race, made deterministic: a reused connection is closed unanswered.
    if (s.before > 0) s.socket.destroy();
    else w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  } else if (p === '/stale-rst') {
    // The same, but a reset (RST): the server's answer, not the keep-alive race.
    if (s.before > 0) s.socket.resetAndDestroy();
    else w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  } else if (p === '/reset-mid') {
    w('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    setTimeout(() => s.socket.destroy(), 20);
  } else if (p === '/reset-first') s.socket.destroy();
  else if (p === '/drip') {
    w('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    const t = setInterval(() => w('6\r\nchunk\n\r\n'), 10);
    s.socket.on('close', () => clearInterval(t));
  } else if (p === '/bad-status') w('HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok');
  else if (p === '/two-cl') w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok');
  else if (p === '/cl-list') w('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok');
  else if (p === '/te-and-cl')
    w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
  else if (p === '/te-gzip') w('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n');
  else if (p === '/bad-chunk')
    w('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n');
  else if (p === '/chunk-no-crlf')
    w('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n');
  else if (p === '/overflow')
    w(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\nok`);
  else if (p === '/many-headers')
    w(`HTTP/1.1 200 OK\r\n${'X-A: 1\r\n'.repeat(300)}Content-Length: 2\r\n\r\nok`);
  else if (p === '/bare-lf') w('HTTP/1.1 200 OK\nContent-Length: 2\n\nok');
  else if (p === '/fold') w('HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\nok');
  else if (p === '/space-colon') w('HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok');
  else if (p === '/101') w('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n');
  else if (p === '/http2') w('HTTP/2 200\r\n\r\n');
  else if (p === '/ka-3') w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=3\r\n\r\nok');
  else if (p === '/big') w(`HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n${'x'.repeat(300_000)}`);
  else if (p === '/ws')
    w('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nfrom-upstream');
  else if (p === '/extra') w('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n');
  else w('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
}

interface Outcome {
  status: number;
  statusText: string;
  headers: string[];
  body: Buffer;
  trailers: string[] | null;
  error: (Error & { code?: string }) | undefined;
  connects: number;
}

/** Dispatches straight to `pool` with a handler of the forwarder's kind; settles at the end. */
function send(
  pool: Dispatcher,
  opts: Partial<DispatchOptions> & { path: string },
  hooks: {
    onData?: (chunk: Buffer, o: Outcome, resume: () => void) => boolean;
    abortAfterHead?: boolean;
  } = {},
): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = {
      status: 0,
      statusText: '',
      headers: [],
      body: Buffer.alloc(0),
      trailers: null,
      error: undefined,
      connects: 0,
    };
    const chunks: Buffer[] = [];
    let resume: () => void = () => undefined;
    let abort: (err?: Error) => void = () => undefined;
    pool.dispatch(
      { method: 'GET', headers: [], body: null, ...opts },
      {
        onConnect(a: (err?: Error) => void) {
          o.connects++;
          abort = a;
        },
        onHeaders(status: number, raw: string[], r: () => void, text: string) {
          o.status = status;
          o.statusText = text;
          // The contract's strings, as received: a copy, so later reads cannot change them.
          for (const f of raw) expect(typeof f).toBe('string');
          o.headers = [...raw];
          resume = r;
          if (hooks.abortAfterHead === true) setTimeout(() => abort(new Error('client went away')), 30);
          return true;
        },
        onData(chunk: Buffer) {
          chunks.push(Buffer.from(chunk));
          return hooks.onData?.(chunk, o, resume) ?? true;
        },
        onComplete(trailers: string[] | null) {
          o.trailers = trailers;
          o.body = Buffer.concat(chunks);
          resolve(o);
        },
        onError(err: Error) {
          o.error = err;
          o.body = Buffer.concat(chunks);
          resolve(o);
        },
      },
    );
  });
}

let raw: RawBackend;
let pool: ClientPool;

function newPool(port: number, connections?: number, more: Partial<ClientPoolOptions> = {}): ClientPool {
  return new ClientPool(`127.0.0.1:${port}`, {
    keepAliveTimeout: 4_000,
    connectTimeout: 2_000,
    connections,
    ...more,
  });
}

beforeAll(async () => {
  raw = await rawBackend(answer);
  pool = newPool(raw.port);
});
afterAll(async () => {
  await pool.destroy();
  await raw.close();
});

describe('ClientPool: response framing', () => {
  it('Content-Length: head, raw header buffers, status text, body', async () => {
    const o = await send(pool, { path: '/cl' });
    expect(o.error).toBeUndefined();
    expect([o.status, o.statusText, o.body.toString()]).toEqual([200, 'OK', 'hello']);
    expect(o.headers).toEqual(['Content-Length', '5', 'X-Up', '1']);
    expect(o.trailers).toEqual([]);
    expect(o.connects).toBe(1);
  });

  it('writes the head in one piece with Host added when absent, and keeps a given Host', async () => {
    await send(pool, { path: '/cl', headers: ['x-a', 'b'] });
    expect(raw.seen.at(-1)?.head).toBe(`GET /cl HTTP/1.1\r\nx-a: b\r\nhost: 127.0.0.1:${raw.port}\r\n\r\n`);
    await send(pool, { path: '/cl', headers: ['Host', 'svc.test'] });
    expect(raw.seen.at(-1)?.head).toBe('GET /cl HTTP/1.1\r\nHost: svc.test\r\n\r\n');
  });

  it('chunked with extensions and trailers, in one write and dribbled 3 bytes at a time', async () => {
    for (const path of ['/chunked', '/chunked-split']) {
      const o = await send(pool, { path });
      expect(o.error).toBeUndefined();
      expect(o.body.toString()).toBe('hello world');
      expect(o.trailers).toEqual(['x-sum', '42']);
    }
  });

  it('close-delimited body: read to EOF, the connection is not reused', async () => {
    const before = raw.accepted();
    const o = await send(pool, { path: '/close' });
    expect(o.error).toBeUndefined();
    expect(o.body.toString()).toBe('until close');
    await send(pool, { path: '/cl' });
    // a new connection for the next request (the idle ones may have been used meanwhile)
    expect(raw.accepted()).toBeGreaterThan(before);
  });

  it('HEAD, 204 and 304 have no body; the next response on the connection is intact', async () => {
    const h = await send(pool, { path: '/head', method: 'HEAD' });
    expect([h.status, h.body.length, h.error]).toEqual([200, 0, undefined]);
    expect(raw.seen.at(-1)?.head).toContain('connection: close\r\n');
    for (const path of ['/204', '/304', '/cl']) {
      const o = await send(pool, { path });
      expect(o.error).toBeUndefined();
      expect(o.body.length).toBe(path === '/cl' ? 5 : 0);
    }
  });

  it('1xx responses (100 Continue, 103) are skipped; the final response is handed on', async () => {
    const o = await send(pool, { path: '/continue' });
    expect([o.status, o.body.toString(), o.error]).toEqual([200, 'ok', undefined]);
  });
});

describe('ClientPool: connections', () => {
  it('reuses one keep-alive connection for sequential requests', async () => {
    const p = newPool(raw.port);
    const before = raw.accepted();
    for (let i = 0; i < 20; i++) expect((await send(p, { path: '/cl' })).status).toBe(200);
    expect(raw.accepted() - before).toBe(1);
    expect(p.stats).toMatchObject({ connected: 1, free: 1, running: 0, pending: 0 });
    await p.destroy();
  });

  it('sequential requests on one connection do not stop and restart the timer wheel (it did once per request)', async () => {
    const p = newPool(raw.port);
    expect((await send(p, { path: '/cl' })).status).toBe(200);
    const starts = clientWheel.starts;
    for (let i = 0; i < 20; i++) expect((await send(p, { path: '/cl' })).status).toBe(200);
    // The connection's timer stayed armed throughout: the interval never stopped.
    expect(clientWheel.starts - starts).toBe(0);
    expect(clientWheel.running).toBe(true);
    await p.destroy();
  });

  it('Connection: close and a Keep-Alive timeout below the 2 s margin are not reused', async () => {
    const p = newPool(raw.port);
    const before = raw.accepted();
    await send(p, { path: '/conn-close' });
    await send(p, { path: '/ka-short' });
    await send(p, { path: '/cl' });
    expect(raw.accepted() - before).toBe(3);
    await p.destroy();
  });

  it('never pipelines: with one connection allowed, requests queue and all complete', async () => {
    const p = newPool(raw.port, 1);
    const before = raw.accepted();
    const all = await Promise.all(Array.from({ length: 5 }, () => send(p, { path: '/chunked-split' })));
    expect(all.map((o) => o.body.toString())).toEqual(Array(5).fill('hello world'));
    expect(raw.accepted() - before).toBe(1);
    await p.destroy();
  });

  it('the stale keep-alive race: a reused connection closed unanswered is retried once on a fresh one', async () => {
    const p = newPool(raw.port);
    const before = raw.accepted();
    expect((await send(p, { path: '/stale' })).status).toBe(200);
    const o = await send(p, { path: '/stale' });
    expect([o.status, o.body.toString(), o.error]).toEqual([200, 'ok', undefined]);
    expect(o.connects).toBe(1); // one onConnect for the handler, however many connections
    expect(raw.accepted() - before).toBe(2);
    expect(raw.seen.filter((s) => s.path === '/stale').length).toBeGreaterThanOrEqual(3);
    await p.destroy();
  });

  it('a reset (RST) of a reused connection is not the race: not resent, a reset for the retry policy (retry.test.ts once counted 0 retries)', async () => {
    const p = newPool(raw.port);
    expect((await send(p, { path: '/stale-rst' })).status).toBe(200);
    const seenBefore = raw.seen.filter((x) => x.path === '/stale-rst').length;
    const o = await send(p, { path: '/stale-rst' });
    expect(o.error?.code).toBe('RMR_UPSTREAM_RESET');
    expect(raw.seen.filter((x) => x.path === '/stale-rst').length - seenBefore).toBe(1);
    await p.destroy();
  });

  it('the race is not retried for a request with a body or a non-idempotent method: a reset', async () => {
    const p = newPool(raw.port);
    await send(p, { path: '/stale' });
    const o = await send(p, { path: '/stale', method: 'POST', body: 'x' });
    expect(o.error?.code).toBe('RMR_UPSTREAM_RESET');
    expect(classify(o.error, 'up')).toBeInstanceOf(UpstreamResetError);
    await send(p, { path: '/stale' });
    const d = await send(p, { path: '/stale', method: 'POST' });
    expect(d.error?.code).toBe('RMR_UPSTREAM_RESET');
    await p.destroy();
  });

  it('a reset mid-body and a close before any byte are resets (RMR_UPSTREAM_RESET)', async () => {
    const mid = await send(pool, { path: '/reset-mid' });
    expect(mid.status).toBe(200);
    expect(mid.body.toString()).toBe('0123456789');
    expect(rescue(mid.error, 'up').code).toBe('RMR_UPSTREAM_RESET');
    const p = newPool(raw.port);
    const first = await send(p, { path: '/reset-first' });
    expect(first.status).toBe(0);
    expect(rescue(first.error, 'up').code).toBe('RMR_UPSTREAM_RESET');
    await p.destroy();
  });

  it('refused: the errno code is kept (503 RMR_UPSTREAM_CONNECT), and stats go back to zero', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const p = newPool(port);
    const o = await send(p, { path: '/' });
    expect(o.error?.code).toBe('ECONNREFUSED');
    expect(o.connects).toBe(0);
    expect(rescue(o.error, 'up')).toMatchObject({ status: 503, code: 'RMR_UPSTREAM_CONNECT' });
    expect(p.stats).toMatchObject({ connected: 0, pending: 0, running: 0 });
    await p.destroy();
  });

  it('abort mid-response destroys the upstream connection: no socket left behind', async () => {
    const p = newPool(raw.port);
    const before = raw.open();
    const o = await send(p, { path: '/drip' }, { abortAfterHead: true });
    expect(o.error?.message).toBe('client went away');
    expect(o.body.length).toBeGreaterThan(0);
    await until(() => raw.open() === before, 'the upstream socket to close');
    expect(p.stats).toMatchObject({ connected: 0, running: 0, pending: 0 });
    await p.destroy();
  });

  it('backpressure: onData false stops reading until resume(), then the body continues intact', async () => {
    let paused = 0;
    const o = await send(
      pool,
      { path: '/chunked-split' },
      {
        onData: (_c, _o, resume) => {
          paused++;
          setTimeout(resume, 5);
          return false;
        },
      },
    );
    expect(o.body.toString()).toBe('hello world');
    expect(paused).toBeGreaterThan(1);
  });

  it('a streamed body that fails before its first byte sends nothing upstream; the connection stays', async () => {
    const p = newPool(raw.port);
    await send(p, { path: '/cl' });
    const before = raw.seen.length;
    const body = new PassThrough();
    const pending = send(p, { path: '/cl', method: 'POST', body });
    setTimeout(() => body.destroy(new Error('client sent a bad chunk')), 20);
    const o = await pending;
    expect(o.error?.message).toBe('client sent a bad chunk');
    expect(raw.seen.length).toBe(before);
    expect(p.stats).toMatchObject({ connected: 1, free: 1, running: 0 });
    expect((await send(p, { path: '/cl' })).body.toString()).toBe('hello');
    await p.destroy();
  });

  it('refuses before any byte is sent: CONNECT, CR/LF/controls/wide chars in a field or upgrade, a bad name, target, method or Content-Length', async () => {
    const before = raw.seen.length;
    const bad: (Partial<DispatchOptions> & { path: string })[] = [
      { method: 'CONNECT', path: 'x:1' },
      { path: '/a', headers: ['x-bad', 'a\r\nx-injected: 1'] },
      { path: '/a', headers: ['x-bad', 'a\nx-injected: 1'] },
      { path: '/a', headers: ['x-nul', 'a\u0000b'] },
      { path: '/a', headers: ['x-cr', 'a\rx-injected: 1'] },
      { path: '/a', headers: ['x-del', 'a\u007fb'] },
      { path: '/a', headers: ['x-wide', 'a\u0100b'] },
      { path: '/a', headers: ['x-end', 'a\r'] },
      { path: '/a', headers: ['x-lfcr', 'a\n\rb'] },
      { path: '/a', headers: ['x-a', 'a\r', 'x-b', '\nb'] },
      { path: '/a', headers: ['x-a', 'v', 'x-last', 'v\r\n'] },
      { path: '/a', headers: ['', 'v'] },
      { path: '/a', headers: ['x-\u00e9', 'v'] },
      { path: '/a', upgrade: 'websocket\r\nx-injected: 1' },
      { path: '/a', upgrade: 'websocket\n' },
      { path: '/a', headers: ['bad name', 'v'] },
      { path: '/a b' },
      { path: '/a\r\nx: 1' },
      { path: '/a', method: 'G T' },
      { path: '/a', method: 'POST', headers: ['content-length', '9'], body: 'short' },
      { path: '/a', method: 'POST', headers: ['content-length', '1', 'Content-Length', '1'] },
      { path: '/a', method: 'POST', headers: ['content-length', '1, 1'] },
      { path: '/a', method: 'POST', headers: ['content-length', '-1'] },
    ];
    for (const opts of bad) {
      const o = await send(pool, opts);
      expect(o.error).toBeInstanceOf(EncodeError);
      expect(o.connects).toBe(0);
      expect(rescue(o.error, 'up')).toMatchObject({ status: 502, code: 'RMR_UPSTREAM_PROTOCOL' });
    }
    expect(raw.seen.length).toBe(before);
  });

  it('what the HTTP/1 parser checked is sent unchecked; whatever a layer changed, moved or added is checked', async () => {
    // The snapshot the stage takes before the layers run (h1server.ts): entries equal to it at
    // the same index skip the checks, any other entry is checked as without one.
    const checked = new CheckedHead('/a', ['x-a', 'v', 'x-b', 'w']);
    const ok = await send(pool, { path: '/a', headers: ['x-a', 'v', 'x-b', 'w', 'x-added', 'z'], checked });
    expect(ok.error).toBeUndefined();
    expect(raw.seen.at(-1)?.head).toBe(
      `GET /a HTTP/1.1\r\nx-a: v\r\nx-b: w\r\nx-added: z\r\nhost: 127.0.0.1:${raw.port}\r\n\r\n`,
    );
    const before = raw.seen.length;
    const bad: (Partial<DispatchOptions> & { path: string })[] = [
      // a layer replaced a checked value, or added a bad field after them
      { path: '/a', headers: ['x-a', 'v\r\nx-injected: 1', 'x-b', 'w'] },
      { path: '/a', headers: ['x-a', 'v', 'x-b', 'w', 'x-added', 'a\nb'] },
      // a checked name and value moved to another index (a splice): checked again
      { path: '/a', headers: ['x-b', 'w\r', 'x-a', 'v'] },
      { path: '/a', headers: ['x-a', 'v', 'bad name', 'w'] },
      // the target a layer rewrote
      { path: '/a b', headers: ['x-a', 'v'] },
      { path: '/a\r\nx: 1' },
    ];
    for (const opts of bad) {
      const o = await send(pool, { ...opts, checked });
      expect(o.error, JSON.stringify(opts)).toBeInstanceOf(EncodeError);
      expect(o.connects).toBe(0);
    }
    expect(raw.seen.length).toBe(before);
  });

  it("the proxy's own formatted fields (CheckedHead.own) are sent unchecked; the same field not in it, or another value, is checked", async () => {
    // A DEL in a value is refused by the check: sent only when the pair is in `own`. (Only
    // values the proxy formatted from validated parts go there: a traceparent's hex ids.)
    const checked = new CheckedHead('/a', ['x-a', 'v']);
    checked.addOwn('x-own', 'a\u007fb');
    const ok = await send(pool, { path: '/a', headers: ['x-a', 'v', 'x-own', 'a\u007fb'], checked });
    expect(ok.error).toBeUndefined();
    expect(raw.seen.at(-1)?.head).toBe(
      `GET /a HTTP/1.1\r\nx-a: v\r\nx-own: a\u007fb\r\nhost: 127.0.0.1:${raw.port}\r\n\r\n`,
    );
    const before = raw.seen.length;
    for (const headers of [
      ['x-a', 'v', 'x-other', 'a\u007fb'],
      ['x-a', 'v', 'x-own', 'a\u007fc'],
      ['x-a', 'v', 'X-Own', 'a\u007fb'],
    ]) {
      const o = await send(pool, { path: '/a', headers, checked });
      expect(o.error, JSON.stringify(headers)).toBeInstanceOf(EncodeError);
    }
    expect(
      (await send(pool, { path: '/a', headers: ['x-a', 'v', 'x-own', 'a\u007fb'] })).error,
    ).toBeInstanceOf(EncodeError);
    expect(raw.seen.length).toBe(before);
  });

  it('checked fields go out as their lines came in, whatever the layers did around them: 1,500 random heads against a reference, byte for byte', async () => {
    // The stage's steps (h1server.ts onHead): parse, filter keeping each field's index, the
    // lines of the kept fields, the snapshot. Then a layer's change, and what the backend got.
    const rnd = seededPick(0x1d872b41);
    const NAMES = [
      'host',
      'x-a',
      'accept',
      'user-agent',
      'connection',
      'keep-alive',
      'te',
      'proxy-x',
      'x-remora-peer-identity',
      'cookie',
      'x-b',
    ];
    const VALUES = ['v', 'a  b', 'x-a', 'keep-alive, x-b', '\xe9t\xe9', '1'];
    const OWS = ['', ' ', '\t', '  '];
    const anyCase = (t: string): string => [...t].map((c) => (rnd(2) === 0 ? c.toUpperCase() : c)).join('');
    const reader = new RequestReader({ maxHeadBytes: 16 * 1024, maxFields: 64 });
    const counts = { asCame: 0, encoded: 0, kinds: new Set<number>() };
    for (let k = 0; k < 1_500; k++) {
      const given: string[] = []; // each field's line as the client sent it
      const n = rnd(8);
      let hosts = 0;
      for (let f = 0; f < n; f++) {
        let name = anyCase(NAMES[rnd(NAMES.length)] as string);
        if (name.toLowerCase() === 'host' && hosts++ > 0) name = 'x-b'; // a second Host is refused
        given.push(`${name}:${OWS[rnd(4)]}${VALUES[rnd(VALUES.length)]}${OWS[rnd(4)]}\r\n`);
      }
      const buf = Buffer.from(`GET /cl HTTP/1.1\r\n${given.join('')}\r\n`, 'latin1');
      reader.reset();
      expect(reader.next(buf, 0)).toBe(R_HEAD);
      const h = reader.head;
      const rawFields = h.toArray();
      const headers: string[] = [];
      const kept: number[] = [];
      const info: RequestHeadInfo = { hasBody: false, upgrade: undefined };
      filterRequestHeaders(rawFields, headers, info, kept);
      const from = [...kept]; // each entry's field index in rawFields, for the reference
      const checked = new CheckedHead('/cl', headers.slice(), h.textOf(), keptRequestLines(h, kept));
      const layer = headers.length === 0 ? rnd(2) * 3 : rnd(6);
      counts.kinds.add(layer);
      const at = 2 * rnd(Math.max(1, headers.length >> 1));
      if (layer === 1) headers[at + 1] = 'changed';
      else if (layer === 2) headers.splice(at, 2);
      else if (layer === 3) headers.push('x-added', 'z');
      else if (layer === 4) headers.unshift('x-first', 'a');
      else if (layer === 5)
        headers[at] =
          (headers[at] as string).toUpperCase() === headers[at]
            ? (headers[at] as string).toLowerCase()
            : (headers[at] as string).toUpperCase();
      let want = 'GET /cl HTTP/1.1\r\n';
      let host = false;
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i] as string;
        if (name.toLowerCase() === 'host') host = true;
        if (name === checked.fields[i] && headers[i + 1] === checked.fields[i + 1]) {
          want += given[(from[i] as number) >> 1];
          counts.asCame++;
        } else {
          want += `${name}: ${headers[i + 1]}\r\n`;
          counts.encoded++;
        }
      }
      if (!host) want += `host: 127.0.0.1:${raw.port}\r\n`;
      want += '\r\n';
      const o = await send(pool, { path: '/cl', headers, checked });
      expect(o.error).toBeUndefined();
      expect({ given, layer, head: raw.seen.at(-1)?.head }).toEqual({ given, layer, head: want });
    }
    expect(counts.kinds.size).toBe(6);
    expect(counts.asCame).toBeGreaterThan(1_500);
    expect(counts.encoded).toBeGreaterThan(500);
  });

  it('backpressure on every read: a 300 kB body arrives whole and in order', async () => {
    const o = await send(
      pool,
      { path: '/big' },
      {
        onData: (_c, _o, resume) => {
          setTimeout(resume, 1);
          return false;
        },
      },
    );
    expect(o.error).toBeUndefined();
    expect(o.body.length).toBe(300_000);
    expect(/^x+$/.test(o.body.toString('latin1'))).toBe(true);
  });

  it('the same Keep-Alive value twice, then another, then the first: each response is read as its value says', async () => {
    // (the last value's reading is kept between responses: connection.ts, keepAliveMs)
    const p = newPool(raw.port);
    const before = raw.accepted();
    await send(p, { path: '/ka-short' });
    await send(p, { path: '/ka-short' });
    expect(raw.accepted() - before).toBe(2); // neither reused
    await send(p, { path: '/ka-3' });
    await send(p, { path: '/ka-3' });
    expect(raw.accepted() - before).toBe(3); // the second on the first's connection
    await send(p, { path: '/ka-short' });
    await send(p, { path: '/cl' });
    expect(raw.accepted() - before).toBe(4); // ka-short on that connection, which then closed
    await p.destroy();
  });

  it('a body whose last bytes came in a paused read still ends on resume (it hung once)', async () => {
    const o = await send(
      pool,
      { path: '/cl' },
      { onData: (_c, _o, resume) => (setTimeout(resume, 1), false) },
    );
    expect([o.body.toString(), o.error]).toEqual(['hello', undefined]);
  });

  it("honours the server's Keep-Alive timeout: the idle connection is closed after timeout minus 2 s", async () => {
    const p = newPool(raw.port);
    const before = raw.open();
    expect((await send(p, { path: '/ka-3' })).status).toBe(200);
    expect(p.stats).toMatchObject({ connected: 1, free: 1 });
    // 3 s announced, trusted for 1 s: the wheel closes it (well before our own 4 s).
    await until(() => p.stats.connected === 0, 'the idle connection to close');
    await until(() => raw.open() === before, 'the upstream to see the close');
    await p.destroy();
  });

  it('connect timeout: UND_ERR_CONNECT_TIMEOUT as before, 504 RMR_UPSTREAM_TIMEOUT (a connector that never answers, a fake)', async () => {
    const p = newPool(raw.port, undefined, { connectTimeout: 300, connect: () => undefined });
    const o = await send(p, { path: '/cl' });
    expect(o.error).toBeInstanceOf(ConnectTimeoutError);
    expect(o.error?.code).toBe('UND_ERR_CONNECT_TIMEOUT');
    expect(rescue(o.error, 'up')).toMatchObject({ status: 504, code: 'RMR_UPSTREAM_TIMEOUT' });
    expect(p.stats).toMatchObject({ connected: 0, pending: 0, running: 0 });
    await p.destroy();
  });

  it('a pluggable connect function carries the connections (as the mesh tunnel does)', async () => {
    let opened = 0;
    const p = newPool(1, undefined, {
      connect: (done) => {
        opened++;
        const s = net.connect(raw.port, '127.0.0.1');
        s.once('connect', () => done(null, s));
        s.once('error', (err) => done(err));
      },
    });
    for (let i = 0; i < 3; i++) expect((await send(p, { path: '/cl' })).body.toString()).toBe('hello');
    expect(opened).toBe(1);
    await p.destroy();
  });

  it('localAddress: connections leave from the given source address', async () => {
    const p = newPool(raw.port, undefined, { localAddress: '127.0.0.2' });
    expect((await send(p, { path: '/cl' })).status).toBe(200);
    expect(raw.seen.at(-1)?.socket.remoteAddress).toBe('127.0.0.2');
    await p.destroy();
  });

  it('Upgrade: the request carries Upgrade and Connection, a 101 hands over the socket with its early bytes', async () => {
    const p = newPool(raw.port);
    const got = await new Promise<{ status: number; head: string; early: string }>((resolve, reject) => {
      p.dispatch(
        { method: 'GET', path: '/ws', headers: [], upgrade: 'x' },
        {
          onUpgrade(status, _raw, socket) {
            // handed over paused: the taker decides when to read
            socket.resume();
            let early = '';
            socket.on('data', (c: Buffer) => {
              early += c.toString('latin1');
              if (early === 'from-upstream') {
                socket.destroy();
                resolve({ status, head: raw.seen.at(-1)?.head ?? '', early });
              }
            });
          },
          onError: reject,
        },
      );
    });
    expect(got.status).toBe(101);
    expect(got.head).toContain('connection: upgrade\r\nupgrade: x\r\n');
    expect(got.early).toBe('from-upstream');
    expect(p.stats).toMatchObject({ connected: 0, running: 0 });
    await p.destroy();
  });
});

describe('ClientPool: invalid responses fail cleanly (502 RMR_HTTP1_*)', () => {
  const cases = [
    '/bad-status',
    '/two-cl',
    '/cl-list',
    '/te-and-cl',
    '/te-gzip',
    '/bad-chunk',
    '/chunk-no-crlf',
    '/overflow',
    '/many-headers',
    '/bare-lf',
    '/fold',
    '/space-colon',
    '/101',
    '/http2',
  ];
  for (const path of cases) {
    it(path, async () => {
      const o = await send(pool, { path });
      const r = rescue(o.error, 'up');
      expect(r.status).toBe(502);
      expect(r.code).toMatch(/^RMR_HTTP1_/);
    });
  }

  it('bytes after a complete response: handed on, then the connection is closed', async () => {
    const p = newPool(raw.port);
    const before = raw.accepted();
    const o = await send(p, { path: '/extra' });
    expect([o.status, o.body.toString(), o.error]).toEqual([200, 'ok', undefined]);
    await send(p, { path: '/cl' });
    expect(raw.accepted() - before).toBe(2);
    await p.destroy();
  });
});

describe('through an engine with REMORA_UPSTREAM_CLIENT=codec', () => {
  let px: TestEngine;
  let body: Backend;
  let bodyPx: TestEngine;
  let refusedPx: TestEngine;

  beforeAll(async () => {
    px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${raw.port}`, [ENV.upstreamClient]: 'codec' });
    body = await startBackend();
    bodyPx = await startEngine({
      [ENV.inboundTarget]: `127.0.0.1:${body.port}`,
      [ENV.upstreamClient]: 'codec',
    });
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    refusedPx = await startEngine({
      [ENV.inboundTarget]: `127.0.0.1:${port}`,
      [ENV.upstreamClient]: 'codec',
    });
  });
  afterAll(async () => {
    await px.engine.close();
    await bodyPx.engine.close();
    await refusedPx.engine.close();
    await body.close();
  });

  function get(
    port: number,
    path: string,
    method = 'GET',
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
        let b = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => (b += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('is the codec client: an unsolicited 100 Continue (which undici refuses) is skipped', async () => {
    const r = await get(px.port('inbound'), '/continue');
    expect([r.status, r.body]).toEqual([200, 'ok']);
  });

  it('chunked with trailers and close-delimited bodies reach the client whole', async () => {
    expect((await get(px.port('inbound'), '/chunked')).body).toBe('hello world');
    expect((await get(px.port('inbound'), '/close')).body).toBe('until close');
  });

  it('malformed upstream responses answer 502 with the codec code (RMR_HTTP1_*)', async () => {
    const want: Record<string, string> = {
      '/bad-status': 'RMR_HTTP1_SYNTAX',
      '/two-cl': 'RMR_HTTP1_FRAMING',
      '/overflow': 'RMR_HTTP1_HEAD_TOO_LARGE',
      '/bare-lf': 'RMR_HTTP1_SYNTAX',
      '/fold': 'RMR_HTTP1_SYNTAX',
    };
    for (const [path, code] of Object.entries(want)) {
      const r = await get(px.port('inbound'), path);
      expect([path, r.status, r.headers[ERROR_HEADER]]).toEqual([path, 502, code]);
    }
  });

  it('a bad chunk size after the head was passed on cuts the client connection (no status left to send)', async () => {
    await expect(get(px.port('inbound'), '/bad-chunk')).rejects.toThrow();
  });

  it('a reset before the head answers 502 RMR_UPSTREAM_RESET; refused answers 503', async () => {
    const r = await get(px.port('inbound'), '/reset-first');
    expect([r.status, r.headers[ERROR_HEADER]]).toEqual([502, 'RMR_UPSTREAM_RESET']);
    const c = await get(refusedPx.port('inbound'), '/');
    expect([c.status, c.headers[ERROR_HEADER]]).toEqual([503, 'RMR_UPSTREAM_CONNECT']);
  });

  it('keeps one upstream connection for sequential requests from one client', async () => {
    const before = body.acceptedSockets();
    for (let i = 0; i < 10; i++) expect((await get(bodyPx.port('inbound'), '/')).body).toBe('hello world\n');
    expect(body.acceptedSockets() - before).toBeLessThanOrEqual(1);
  });

  it('streams a large request body upstream as it arrives (the backend has bytes before the client ends)', async () => {
    for (const framing of ['content-length', 'chunked'] as const) {
      const size = 8 * 1024 * 1024;
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const n = body.received.length;
      const res = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port: bodyPx.port('inbound'),
            method: 'POST',
            path: '/echo',
            agent: false,
            headers: framing === 'content-length' ? { 'content-length': String(size) } : {},
          },
          (r) => {
            let bytes = 0;
            r.on('data', (c: Buffer) => (bytes += c.length));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, bytes }));
          },
        );
        req.on('error', reject);
        let sent = 0;
        const pump = (): void => {
          while (sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
            if (sent === 1024 * 1024) {
              // Half-way: the backend must already have bytes, or the body was being buffered.
              until(() => (body.received[n]?.bodyBytes ?? 0) > 0, 'the first body bytes upstream').then(
                pump,
                reject,
              );
              return;
            }
          }
          req.end();
        };
        pump();
      });
      expect(res).toEqual({ status: 200, bytes: size });
      expect(body.received[n]?.bodyBytes).toBe(size);
      if (framing === 'chunked') expect(body.received[n]?.headers['transfer-encoding']).toBe('chunked');
    }
  });

  it('a paused client holds the upstream back: the backend cannot write the whole response ahead', async () => {
    const total = 64 * 1024 * 1024;
    let written = 0;
    let finished = false;
    const big = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(total) });
      const c = Buffer.alloc(64 * 1024, 0x62);
      const pump = (): void => {
        while (written < total) {
          written += c.length;
          if (!res.write(c)) return void res.once('drain', pump);
        }
        res.end(() => (finished = true));
      };
      pump();
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    const bigPx = await startEngine({
      [ENV.inboundTarget]: `127.0.0.1:${(big.address() as AddressInfo).port}`,
      [ENV.upstreamClient]: 'codec',
    });
    try {
      const got = await new Promise<number>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: bigPx.port('inbound'), path: '/', agent: false }, (r) => {
            let bytes = 0;
            r.once('data', (c: Buffer) => {
              bytes += c.length;
              r.pause();
              setTimeout(() => {
                // With the client paused for 300 ms, only socket buffers' worth has left the backend.
                if (finished || written >= total)
                  reject(new Error(`backend wrote all ${written} bytes ahead`));
                r.on('data', (d: Buffer) => (bytes += d.length));
                r.resume();
              }, 300);
            });
            r.on('end', () => resolve(bytes));
            r.on('error', reject);
          })
          .on('error', reject);
      });
      expect(got).toBe(total);
    } finally {
      await bigPx.engine.close();
      big.closeAllConnections();
      await new Promise<void>((r) => big.close(() => r()));
    }
  });

  it('a client that leaves mid-response leaves no upstream socket behind', async () => {
    const before = raw.open();
    await new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: px.port('inbound'), path: '/drip', agent: false }, (r) => {
          r.once('data', () => {
            r.destroy();
            resolve();
          });
        })
        .on('error', reject);
    });
    await until(() => raw.open() <= before, 'the upstream socket to close');
  });

  it('Upgrade requests switch protocols on the codec client too', async () => {
    const r = await new Promise<string>((resolve, reject) => {
      const s = net.connect(bodyPx.port('inbound'), '127.0.0.1', () =>
        s.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping'),
      );
      let got = '';
      s.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        if (got.includes('ping')) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
    expect(r).toMatch(/^HTTP\/1\.1 101 /);
  });
});

describe('Pools with client codec', () => {
  it('makes ClientPools (limit per slot) and counts their connections', async () => {
    const pools = new Pools({ client: 'codec' });
    const key = `127.0.0.1:${raw.port}`;
    expect(pools.get(key)).toBeInstanceOf(ClientPool);
    expect(pools.slot(key, 2).pool).toBeInstanceOf(ClientPool);
    await send(pools.get(key), { path: '/cl' });
    expect(pools.connected()).toBe(1);
    await pools.close();
    expect(pools.connected()).toBe(0);
  });
});

describe('Pools with client undici (the fallback)', () => {
  it('hands the head over as the contract says: latin1 strings, the same fields the codec client gives', async () => {
    const key = `127.0.0.1:${raw.port}`;
    const codec = new Pools({ client: 'codec' });
    const undici = new Pools({ client: 'undici' });
    try {
      const a = await send(codec.get(key), { path: '/cl' });
      const b = await send(undici.get(key), { path: '/cl' });
      expect(b.status).toBe(200);
      expect(b.headers.length).toBeGreaterThan(0);
      for (const f of b.headers) expect(typeof f).toBe('string');
      expect(b.headers).toEqual(a.headers);
      expect(b.body.toString()).toBe(a.body.toString());
    } finally {
      await codec.close();
      await undici.close();
    }
  });
});

/**
 * An idle pooled connection lets go of the event loop at the wheel's next tick, not at every
 * park (ref()/unref() per request cost ~1,100 instructions, docs/performance.md), and holds it
 * again while a request runs on it. Run in a child process of its own (the built client), whose
 * only handles are the pool's: it must finish a request on a reused connection that had let go,
 * then exit by itself with that connection still open (its idle time is 60 s).
 */
describe('ClientPool and the event loop (a child process with only the pool)', () => {
  it('a reused connection holds the loop while its request runs; an idle one never keeps the process alive', async () => {
    const sockets = new Set<Socket>();
    let accepted = 0;
    const server = http.createServer((req, res) => {
      const send = (): void => void res.end('ok');
      if (req.url === '/slow') setTimeout(send, 400);
      else send();
    });
    server.on('connection', (s: Socket) => {
      accepted++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const dist = new URL('../../../proxy/dist/http1/pool.js', import.meta.url).href;
    const script = `
      import { ClientPool } from ${JSON.stringify(dist)};
      const pool = new ClientPool('127.0.0.1:${port}', { keepAliveTimeout: 60000, connectTimeout: 2000 });
      const get = (path) => new Promise((resolve, reject) => pool.dispatch(
        { method: 'GET', path, headers: [], body: null },
        { onHeaders: () => true, onData: () => true, onComplete: () => resolve(), onError: reject }));
      await get('/fast');
      // three ticks idle: the wheel has let go of the connection
      await new Promise((r) => setTimeout(r, 800));
      console.log('idle-holds', process.getActiveResourcesInfo().filter((t) => t === 'TCPSocketWrap').length);
      await get('/slow');
      console.log('second done', pool.stats.connected);
    `;
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      const code = await new Promise<number | null>((resolve) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(-1);
        }, 15_000);
        child.on('exit', (c) => {
          clearTimeout(t);
          resolve(c);
        });
      });
      expect(out).toContain('idle-holds 0');
      expect(out).toContain('second done 1');
      // exited by itself (killed after 15 s otherwise), long before the connection's 60 s idle time
      expect(code).toBe(0);
      expect(accepted).toBe(1);
    } finally {
      child.kill('SIGKILL');
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
