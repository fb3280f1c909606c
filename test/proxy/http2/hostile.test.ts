/**
 * Hostile HTTP/2 clients against the HTTP/2 stage (issue 12 item 6), with hand-made frames on a
 * raw socket, so nothing in a client library smooths them over: the stream limit, the header
 * list limit, a CONTINUATION flood, and rapid reset (CVE-2023-44487).
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import {
  DEFAULT_MAX_CONCURRENT_STREAMS,
  DEFAULT_MAX_RESETS_PER_WINDOW,
} from '../../../proxy/src/http2/server.js';
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

/** HPACK, static table only: GET, http, :path /slow, :authority a (literal, not indexed). */
const GET_BLOCK = Buffer.concat([
  Buffer.from([0x82, 0x86]),
  Buffer.from([0x04, 0x05]),
  Buffer.from('/slow'),
  Buffer.from([0x01, 0x01]),
  Buffer.from('a'),
]);

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
  constructor(port: number) {
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
    this.socket.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]));
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
let px: TestEngine;

beforeAll(async () => {
  backend = http2.createServer();
  backend.on('stream', (s) => {
    backendStreams++;
    s.on('error', () => undefined);
    // never answers: streams stay open until someone resets them
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
    // The listener still serves everyone else.
    const ok = new RawH2(px.port('inbound'));
    await ok.until(() => ok.frames.some((f) => f.type === T.SETTINGS));
    ok.write(frame(T.PING, 0, 0, Buffer.alloc(8, 1)));
    await ok.until(() => ok.frames.some((f) => f.type === T.PING && (f.flags & 1) === 1));
    ok.close();
  });
});
