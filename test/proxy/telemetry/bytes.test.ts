/**
 * True byte counts, both directions, for every body size and framing (issue 15): the access
 * log's `bytes_received`/`bytes_sent` are body bytes (the payload after chunked decoding, as
 * Envoy counts them), `remora_tcp_bytes_total` the bytes on the client connection. Regression:
 * `bytes_received` was 0 for a 23-byte and a 5,000-byte body (the layer read `socket.bytesRead`
 * after the parser had read the body with the head). A raw-socket client, a raw-socket upstream
 * that frames its answers by hand (length, chunked, close-delimited, 101 + echo, opaque echo).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, METRICS } from '../../../proxy/src/contract.js';
import { sample, scrape, until } from '../harness.js';
import { startAssembled } from './assembled.js';
import type { AssembledProxy } from './assembled.js';

const MiB = 1024 * 1024;

/**
 * Answers `GET|POST /len/N` with N body bytes and a Content-Length, `/chunked/N` chunked,
 * `/close/N` close-delimited; an Upgrade with 101 and an echo; bytes that are not HTTP with an
 * echo. Request bodies (length or chunked) are read to their end before answering.
 */
function upstream(): net.Server {
  return net.createServer((s) => {
    let buf = Buffer.alloc(0);
    let state: 'head' | 'body' | 'echo' = 'head';
    let need = 0;
    let chunked = false;
    let path = '';
    const answer = (): void => {
      const [, kind, n] = /^\/(len|chunked|close)\/(\d+)/.exec(path) ?? [];
      const body = Buffer.alloc(Number(n ?? 0), 0x61);
      if (kind === 'chunked') {
        const half = body.length >> 1;
        s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
        for (const part of [body.subarray(0, half), body.subarray(half)])
          if (part.length > 0) s.write(`${part.length.toString(16)}\r\n${part.toString('latin1')}\r\n`);
        s.write('0\r\n\r\n');
      } else if (kind === 'close') {
        s.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n'), body]));
      } else {
        s.write(
          Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`), body]),
        );
      }
      state = 'head';
    };
    const step = (): void => {
      for (;;) {
        if (state === 'echo') {
          if (buf.length > 0) s.write(buf);
          buf = Buffer.alloc(0);
          return;
        }
        if (state === 'head') {
          if (buf.length > 0 && (buf[0] as number) < 0x41) {
            state = 'echo';
            continue;
          }
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          buf = buf.subarray(end + 4);
          path = head.split(' ')[1] ?? '';
          if (/\r\nupgrade:/i.test(head)) {
            s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: test\r\nconnection: upgrade\r\n\r\n');
            state = 'echo';
            continue;
          }
          chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
          need = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          state = 'body';
        }
        if (chunked) {
          // Enough for these tests: the body ends with the last chunk.
          const end = buf.indexOf('0\r\n\r\n');
          if (end < 0) return;
          buf = buf.subarray(end + 5);
        } else {
          if (buf.length < need) return;
          buf = buf.subarray(need);
        }
        answer();
      }
    };
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      step();
    });
    s.on('error', () => s.destroy());
  });
}

/** Writes `data` (in pieces, as given), reads until the proxy closes; returns what came back. */
function exchange(port: number, pieces: readonly (string | Buffer)[], closeAfter?: (got: Buffer) => boolean) {
  return new Promise<{ sent: number; got: Buffer }>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sent = 0;
    const s = net.connect(port, '127.0.0.1', () => {
      for (const p of pieces) {
        sent += Buffer.byteLength(p);
        s.write(p);
      }
    });
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (closeAfter?.(Buffer.concat(chunks))) s.end();
    });
    s.on('close', () => resolve({ sent, got: Buffer.concat(chunks) }));
    s.on('error', reject);
  });
}

let proxy: AssembledProxy;
let up: net.Server;

beforeAll(async () => {
  up = upstream();
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  proxy = await startAssembled('bytes', {
    [ENV.inboundTarget]: `127.0.0.1:${(up.address() as AddressInfo).port}`,
    [ENV.detectTimeoutMs]: '100',
  });
});

afterAll(async () => {
  await proxy?.stop();
  await new Promise<void>((r) => up.close(() => r()));
});

async function tcpBytes(): Promise<{ received: number; sent: number }> {
  const m = await scrape(proxy.port('metrics'));
  return {
    received: sample(m, METRICS.tcpBytes, { direction: 'inbound', flow: 'received' }) ?? 0,
    sent: sample(m, METRICS.tcpBytes, { direction: 'inbound', flow: 'sent' }) ?? 0,
  };
}

/** Runs one client connection; returns the access lines it wrote and the counter's deltas. */
async function measured(
  pieces: readonly (string | Buffer)[],
  closeAfter?: (got: Buffer) => boolean,
): Promise<{
  sent: number;
  got: Buffer;
  lines: Record<string, unknown>[];
  tcp: { received: number; sent: number };
}> {
  const before = await tcpBytes();
  const logged = proxy.logs.length;
  const r = await exchange(proxy.port('inbound'), pieces, closeAfter);
  // The counter adds a connection's bytes when it closes.
  let after = before;
  const end = Date.now() + 5000;
  while (after.received - before.received < r.sent && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 20));
    after = await tcpBytes();
  }
  const lines = proxy.logs.slice(logged).filter((l) => l.log === 'access');
  return {
    ...r,
    lines,
    tcp: { received: after.received - before.received, sent: after.sent - before.sent },
  };
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`;
const post = (path: string, n: number): Buffer =>
  Buffer.concat([
    Buffer.from(`POST ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: ${n}\r\n\r\n`),
    Buffer.alloc(n, 0x62),
  ]);

describe('access log and remora_tcp_bytes_total count true bytes', () => {
  for (const [name, n] of [
    ['empty body', 0],
    ['23-byte body (was 0)', 23],
    ['5,000-byte body (was 0)', 5000],
    ['1 MiB body', MiB],
  ] as const) {
    it(`${name}: bytes_received = request body, bytes_sent = response body; the counter = bytes on the wire`, async () => {
      const r = await measured([post(`/len/${n}`, n)]);
      expect(r.got.toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
      expect(r.lines).toHaveLength(1);
      expect(r.lines[0]).toMatchObject({ type: 'http', bytes_received: n, bytes_sent: n, status: 200 });
      expect(r.tcp).toEqual({ received: r.sent, sent: r.got.length });
    });
  }

  it('chunked request and chunked response: the payload, not the chunk framing', async () => {
    const head =
      'POST /chunked/5000 HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n';
    const c = (n: number): string => `${n.toString(16)}\r\n${'c'.repeat(n)}\r\n`;
    const r = await measured([head, c(1000), c(3000), c(1000), '0\r\n\r\n']);
    expect(r.got.toString('latin1')).toMatch(/transfer-encoding: chunked/i);
    expect(r.lines[0]).toMatchObject({ bytes_received: 5000, bytes_sent: 5000 });
    expect(r.tcp).toEqual({ received: r.sent, sent: r.got.length });
  });

  it('close-delimited response: every body byte until the upstream closed', async () => {
    const r = await measured([get('/close/7777')]);
    expect(r.got.toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
    expect(r.lines[0]).toMatchObject({ bytes_received: 0, bytes_sent: 7777 });
    expect(r.tcp).toEqual({ received: r.sent, sent: r.got.length });
  });

  it('HTTP upgrade: the tunnelled bytes both ways are in the counter', async () => {
    const payload = 'u'.repeat(3000);
    const r = await measured(
      [`GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n`, payload],
      (got) => got.toString('latin1').endsWith(payload),
    );
    expect(r.got.toString('latin1')).toMatch(/^HTTP\/1\.1 101/);
    expect(r.tcp).toEqual({ received: r.sent, sent: r.got.length });
    expect(r.tcp.sent).toBeGreaterThan(3000);
  });

  it('opaque TCP: the tcp access line and the counter carry the bytes both ways', async () => {
    const payload = Buffer.concat([Buffer.from([0, 1, 2]), Buffer.alloc(4000, 0x6f)]);
    const r = await measured([payload], (got) => got.length >= payload.length);
    expect(r.got.length).toBe(payload.length);
    await until(() => proxy.logs.some((l) => l.log === 'access' && l.type === 'tcp'), 'tcp access line');
    const line = proxy.logs.filter((l) => l.log === 'access' && l.type === 'tcp').at(-1);
    expect(line).toMatchObject({ bytes_received: payload.length, bytes_sent: payload.length });
    expect(r.tcp).toEqual({ received: payload.length, sent: payload.length });
  });
});
