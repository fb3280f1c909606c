/**
 * Hostile HTTP/2 clients against the HTTP/2 stage (issue 12 item 6), with hand-made frames on a
 * raw socket, so nothing in a client library smooths them over: the stream limit, the header
 * list limit, a CONTINUATION flood, rapid reset (CVE-2023-44487) above and below the per-second
 * rule, and what one connection can make the proxy hold (its open streams' header lists, the
 * answers waiting for a client that does not read). A grpc-js client that cancels some of its
 * calls is not mistaken for an attacker.
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import {
  DEFAULT_MAX_BUFFERED_BYTES,
  DEFAULT_MAX_CONCURRENT_STREAMS,
  DEFAULT_MAX_OPEN_HEADER_BYTES,
  DEFAULT_MAX_RESETS_PER_WINDOW,
  DEFAULT_RESET_RATIO_MIN_STREAMS,
} from '../../../proxy/src/http2/server.js';
import { grpc, grpcClient, startGrpcServer } from '../../helpers/grpc.js';
import { startEngine } from '../harness.js';
import type { TestEngine } from '../harness.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 };
const END_STREAM = 1;
const END_HEADERS = 4;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK, static table only: GET, http, :path <path>, :authority a (literal, not indexed). */
function getBlock(path: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x82, 0x86, 0x04, path.length]),
    Buffer.from(path),
    Buffer.from([0x01, 0x01]),
    Buffer.from('a'),
  ]);
}
/** a request the backend never answers */
const GET_BLOCK = getBlock('/slow');
/** a request the backend answers with 1 MiB */
const BIG_BLOCK = getBlock('/big');

/** A literal header `x-pad: <n bytes>` (never indexed, new name), n < 2^21. */
function padField(n: number): Buffer {
  const name = Buffer.from('x-pad');
  const len = (v: number): Buffer => {
    // 7-bit prefix integer (RFC 7541 §5.1)
    if (v < 127) return Buffer.from([v]);
    const out = [127];
    v -= 127;
    while (v >= 128) {
      out.push((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out.push(v);
    return Buffer.from(out);
  };
  return Buffer.concat([Buffer.from([0x10]), len(name.length), name, len(n), Buffer.alloc(n, 0x61)]);
}

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** A raw HTTP/2 connection: sends the preface and an empty SETTINGS, parses what comes back. */
class RawH2 {
  readonly frames: Frame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  readonly socket: net.Socket;
  /** `initialWindow`: SETTINGS_INITIAL_WINDOW_SIZE to send (0: the client reads nothing) */
  constructor(port: number, initialWindow?: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 9) {
        const n = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + n) break;
        const f = {
          type: this.buf[3] as number,
          flags: this.buf[4] as number,
          stream: this.buf.readUInt32BE(5) & 0x7fffffff,
          payload: this.buf.subarray(9, 9 + n),
        };
        this.buf = this.buf.subarray(9 + n);
        this.frames.push(f);
        // ACK the server's SETTINGS so it treats us as a well-behaved peer otherwise.
        if (f.type === T.SETTINGS && (f.flags & 1) === 0) this.socket.write(frame(T.SETTINGS, 1, 0));
      }
    });
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
    const settings = Buffer.alloc(initialWindow === undefined ? 0 : 6);
    if (initialWindow !== undefined) {
      settings.writeUInt16BE(4, 0); // SETTINGS_INITIAL_WINDOW_SIZE
      settings.writeUInt32BE(initialWindow, 2);
    }
    this.socket.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, settings)]));
  }
  write(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }
  goaway(): Frame | undefined {
    return this.frames.find((f) => f.type === T.GOAWAY);
  }
  async until(cond: () => boolean, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  close(): void {
    this.socket.destroy();
  }
}

let backend: http2.Http2Server;
let backendStreams = 0;
/** backend streams not closed yet */
let backendOpen = 0;
let px: TestEngine;

/** A PING answered on a new connection: the listener serves everyone else. */
async function listenerServes(): Promise<void> {
  const ok = new RawH2(px.port('inbound'));
  await ok.until(() => ok.frames.some((f) => f.type === T.SETTINGS));
  ok.write(frame(T.PING, 0, 0, Buffer.alloc(8, 1)));
  await ok.until(() => ok.frames.some((f) => f.type === T.PING && (f.flags & 1) === 1));
  ok.close();
}

const ENHANCE_YOUR_CALM = 11;

beforeAll(async () => {
  backend = http2.createServer();
  backend.on('stream', (s, headers) => {
    backendStreams++;
    backendOpen++;
    s.on('close', () => backendOpen--);
    s.on('error', () => undefined);
    if (headers[':path'] !== '/big') return; // never answers: open until someone resets it
    // 1 MiB, as fast as flow control lets it go
    s.respond({ ':status': 200 });
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    let n = 0;
    const more = (): void => {
      while (n < 16) {
        n++;
        if (!s.write(chunk)) {
          s.once('drain', more);
          return;
        }
      }
      s.end();
    };
    more();
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  px = await startEngine({
    [ENV.inboundTarget]: `127.0.0.1:${(backend.address() as AddressInfo).port}`,
    [ENV.logLevel]: 'warn',
  });
});

afterAll(async () => {
  await px?.engine.close();
  await new Promise<void>((r) => backend.close(() => r()));
});

describe('hostile HTTP/2 clients', () => {
  it(`advertises SETTINGS_MAX_CONCURRENT_STREAMS ${DEFAULT_MAX_CONCURRENT_STREAMS} and refuses streams beyond it`, async () => {
    const c = new RawH2(px.port('inbound'));
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS && (f.flags & 1) === 0));
    const settings = c.frames.find((f) => f.type === T.SETTINGS && (f.flags & 1) === 0) as Frame;
    const values = new Map<number, number>();
    for (let i = 0; i + 6 <= settings.payload.length; i += 6)
      values.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2));
    expect(values.get(3)).toBe(DEFAULT_MAX_CONCURRENT_STREAMS); // SETTINGS_MAX_CONCURRENT_STREAMS
    expect(values.get(6)).toBe(16 * 1024); // SETTINGS_MAX_HEADER_LIST_SIZE = REMORA_MAX_HEADER_BYTES
    // Open 10 more streams than allowed, none ended: the extra ones are refused (RST_STREAM
    // REFUSED_STREAM, or the connection is closed), never all accepted.
    const n = DEFAULT_MAX_CONCURRENT_STREAMS + 10;
    for (let i = 0; i < n; i++) c.write(frame(T.HEADERS, END_HEADERS, 1 + 2 * i, GET_BLOCK));
    await c.until(
      () =>
        c.closed ||
        c.frames.filter((f) => f.type === T.RST_STREAM && f.payload.readUInt32BE(0) === 7).length >= 10,
    );
    c.close();
  });

  it('a header list over the limit never reaches the upstream', async () => {
    const before = backendStreams;
    const c = new RawH2(px.port('inbound'));
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS));
    c.write(
      frame(
        T.HEADERS,
        END_HEADERS | END_STREAM,
        1,
        Buffer.concat([GET_BLOCK, padField(15_000), padField(15_000)]),
      ),
    );
    // Answered with 431, a reset of the stream, or GOAWAY: whatever, not forwarded.
    await c.until(
      () =>
        c.closed ||
        c.frames.some(
          (f) =>
            (f.type === T.HEADERS || f.type === T.RST_STREAM || f.type === T.GOAWAY) &&
            (f.stream === 1 || f.type === T.GOAWAY),
        ),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(backendStreams).toBe(before);
    c.close();
  });

  it('a CONTINUATION flood is cut: the connection closes before the proxy buffers it all', async () => {
    const before = backendStreams;
    const c = new RawH2(px.port('inbound'));
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS));
    // HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
    c.write(frame(T.HEADERS, 0, 1, GET_BLOCK));
    let sent = 0;
    while (!c.closed && sent < 10_000) {
      c.write(frame(T.CONTINUATION, 0, 1, padField(100)));
      sent++;
      if (sent % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    await c.until(() => c.closed);
    expect(sent).toBeLessThan(10_000);
    expect(backendStreams).toBe(before);
  });

  it(`rapid reset: more than ${DEFAULT_MAX_RESETS_PER_WINDOW} resets in a second get GOAWAY ENHANCE_YOUR_CALM`, async () => {
    const c = new RawH2(px.port('inbound'));
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS));
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(8); // CANCEL
    const burst: Buffer[] = [];
    for (let i = 0; i < DEFAULT_MAX_RESETS_PER_WINDOW * 2; i++) {
      const id = 1 + 2 * i;
      burst.push(
        frame(T.HEADERS, END_HEADERS | END_STREAM, id, GET_BLOCK),
        frame(T.RST_STREAM, 0, id, cancel),
      );
    }
    c.write(Buffer.concat(burst));
    await c.until(() => c.goaway() !== undefined || c.closed);
    const g = c.goaway();
    expect(g).toBeDefined();
    expect((g as Frame).payload.readUInt32BE(4)).toBe(11); // ENHANCE_YOUR_CALM
    // Our counter said so (not only nghttp2's own limits), with the stable event name.
    expect(px.logs.find((l) => l.event === 'http2_rapid_reset')).toMatchObject({
      code: 'RMR_HTTP2_PROTOCOL',
      direction: 'inbound',
    });
    await c.until(() => c.closed);
    await listenerServes();
  });

  it(`rapid reset below the per-second rule: 150 resets/s sustained are caught by the ratio rule`, async () => {
    const logsBefore = px.logs.length;
    const c = new RawH2(px.port('inbound'));
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS));
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(8); // CANCEL
    // 3 streams opened and reset every 20 ms: 150/s, never 200 in any second.
    let id = 1;
    const started = Date.now();
    while (c.goaway() === undefined && !c.closed && Date.now() - started < 10_000) {
      const pairs: Buffer[] = [];
      for (let i = 0; i < 3; i++, id += 2)
        pairs.push(
          frame(T.HEADERS, END_HEADERS | END_STREAM, id, GET_BLOCK),
          frame(T.RST_STREAM, 0, id, cancel),
        );
      c.write(Buffer.concat(pairs));
      await new Promise((r) => setTimeout(r, 20));
    }
    const g = c.goaway();
    expect(g).toBeDefined();
    expect((g as Frame).payload.readUInt32BE(4)).toBe(ENHANCE_YOUR_CALM);
    const streams = (id - 1) / 2;
    // caught by the ratio rule (not the per-second one) once enough streams had closed
    expect(streams).toBeGreaterThanOrEqual(DEFAULT_RESET_RATIO_MIN_STREAMS);
    const rate = streams / ((Date.now() - started) / 1000);
    expect(rate).toBeLessThan(DEFAULT_MAX_RESETS_PER_WINDOW);
    expect(px.logs.slice(logsBefore).find((l) => l.event === 'http2_rapid_reset')).toMatchObject({
      code: 'RMR_HTTP2_PROTOCOL',
      rule: 'ratio',
    });
    await c.until(() => c.closed);
    await listenerServes();
  });

  it('a client holding many streams with big header lists is cut at the per-connection budget', async () => {
    const logsBefore = px.logs.length;
    const before = backendStreams;
    const c = new RawH2(px.port('inbound'));
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS));
    // 15 000 bytes of headers each: under the 16 KiB list limit, so every one is valid alone;
    // 200 of them (3 MB) would stay open upstream, since the backend never answers.
    const block = Buffer.concat([GET_BLOCK, padField(15_000)]);
    for (let i = 0; i < 200; i++) c.write(frame(T.HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, block));
    await c.until(() => c.goaway() !== undefined);
    expect((c.goaway() as Frame).payload.readUInt32BE(4)).toBe(ENHANCE_YOUR_CALM);
    await c.until(() => c.closed);
    // At most the budget's worth reached the upstream, and all of them are let go.
    const perStream = 15_000 + 'x-pad'.length + 32;
    expect(backendStreams - before).toBeLessThanOrEqual(Math.ceil(DEFAULT_MAX_OPEN_HEADER_BYTES / perStream));
    expect(backendStreams - before).toBeGreaterThan(0);
    await c.until(() => backendOpen === 0);
    expect(px.logs.slice(logsBefore).find((l) => l.event === 'http2_memory_limit')).toMatchObject({
      code: 'RMR_HTTP2_PROTOCOL',
      rule: 'header_budget',
    });
    await listenerServes();
  });

  it('a client that reads nothing (window 0) on many streams is cut at the buffered-answer budget', async () => {
    const logsBefore = px.logs.length;
    const c = new RawH2(px.port('inbound'), 0);
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS));
    // 200 answers of 1 MiB each, none of which the client lets through: without the budget the
    // proxy would hold what every one of them has fetched from upstream (measured: ~22 MB).
    for (let i = 0; i < 200; i++) c.write(frame(T.HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, BIG_BLOCK));
    await c.until(() => c.goaway() !== undefined, 10_000);
    expect((c.goaway() as Frame).payload.readUInt32BE(4)).toBe(ENHANCE_YOUR_CALM);
    await c.until(() => c.closed);
    const cutLog = px.logs.slice(logsBefore).find((l) => l.event === 'http2_memory_limit');
    expect(cutLog).toMatchObject({ code: 'RMR_HTTP2_PROTOCOL', rule: 'buffer_budget' });
    expect(cutLog?.buffered_bytes as number).toBeGreaterThan(DEFAULT_MAX_BUFFERED_BYTES);
    // The upstream streams are cancelled: what they held is let go.
    await c.until(() => backendOpen === 0);
    await listenerServes();
  });
});

describe('a legitimate gRPC client that cancels some of its calls', () => {
  it('is never cut: 300 calls on one connection, every fifth cancelled', async () => {
    const peer = await startGrpcServer('legit');
    const e = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${peer.port}`, [ENV.logLevel]: 'warn' });
    const client = grpcClient(e.port('inbound'));
    try {
      const results: (number | undefined)[] = [];
      for (let round = 0; round < 30; round++) {
        const calls = Array.from(
          { length: 10 },
          (_, i) =>
            new Promise<number | undefined>((resolve) => {
              const cancelIt = i % 5 === 0;
              const m = new grpc.Metadata();
              if (cancelIt) m.set('x-delay-ms', '1000');
              const call = client.unary(Buffer.from('x'), m, {}, (err) => resolve(err?.code ?? 0));
              if (cancelIt) setTimeout(() => call.cancel(), 20);
            }),
        );
        results.push(...(await Promise.all(calls)));
      }
      expect(results.filter((r) => r === grpc.status.CANCELLED).length).toBe(60);
      expect(results.filter((r) => r === 0).length).toBe(240);
      expect(
        e.logs.find((l) => l.event === 'http2_rapid_reset' || l.event === 'http2_memory_limit'),
      ).toBeUndefined();
      // all on the one connection the channel opened
      expect(new Set(peer.calls.map((c) => c.host)).size).toBe(1);
    } finally {
      client.close();
      await e.engine.close();
      await peer.close();
    }
  });
});
