/**
 * The message reader (proxy/src/http1/reader.ts): pipelined messages, and the property that
 * matters most for a stream parser: however the same bytes are split into reads, the parse is
 * the same (the same messages, the same body bytes, the same error).
 */
import { describe, expect, it } from 'vitest';
import { R_END, R_HEAD, RequestReader } from '../../../proxy/src/http1/reader.js';
import { LIMITS, readRequests, readResponses, split } from './drive.js';
import type { Transcript } from './drive.js';

/** xorshift32: deterministic, so a failure names the seed that found it */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const REQUESTS: string[] = [
  // keep-alive pipeline: no body, Content-Length, chunked with extensions and trailers, empty lines between
  'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
    'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world' +
    '\r\nPUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n1;q="x;y"\r\n!\r\n0\r\nX-T: 1\r\n\r\n' +
    'DELETE /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  // a large head and a body with CRLFCRLF inside it
  `GET /big HTTP/1.1\r\n${Array.from({ length: 40 }, (_, i) => `X-Field-${i}: ${'v'.repeat(i * 7)}\r\n`).join('')}\r\n` +
    'POST /x HTTP/1.1\r\nContent-Length: 8\r\n\r\n\r\n\r\n\r\n\r\n',
  // faults after good messages: each must be found, whatever the split
  'GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\n\r\n\r\n',
  'GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n',
  'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a="\r\nx\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
  'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: 1\r\n y\r\n\r\n',
  `GET / HTTP/1.1\r\nX: ${'a'.repeat(17_000)}\r\n\r\n`,
  'GET / HTTP/1.1\nHost: x\n\n',
];

const RESPONSES: string[] = [
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' +
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nServer-Timing: x\r\n\r\n' +
    'HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nand the rest until the close',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
];

function same(a: Transcript, b: Transcript, what: string): void {
  expect(b.messages, what).toEqual(a.messages);
  expect(b.error?.code, what).toEqual(a.error?.code);
}

describe('random splits of the same bytes give the same parse', () => {
  const SEEDS = 60;
  it.each(REQUESTS.map((s, i) => [i, s] as const))('request stream %d', (i, text) => {
    const bytes = Buffer.from(text, 'latin1');
    const whole = readRequests([bytes]);
    expect(whole.messages.length + (whole.error ? 1 : 0)).toBeGreaterThan(0);
    // every single cut point
    for (let c = 1; c < Math.min(bytes.length, 400); c++)
      same(whole, readRequests(split(bytes, [c])), `cut at ${c}`);
    // byte by byte
    same(whole, readRequests([...bytes].map((b) => Buffer.from([b]))), 'one byte per read');
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = rng(seed * 7919 + i);
      const cuts = Array.from({ length: 1 + Math.floor(r() * 12) }, () => Math.floor(r() * bytes.length));
      same(whole, readRequests(split(bytes, cuts)), `seed ${seed}, cuts ${cuts.join(',')}`);
    }
  });

  it.each(RESPONSES.map((s, i) => [i, s] as const))('response stream %d', (i, text) => {
    const bytes = Buffer.from(text, 'latin1');
    const whole = readResponses([bytes]);
    for (let c = 1; c < bytes.length; c++) same(whole, readResponses(split(bytes, [c])), `cut at ${c}`);
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = rng(seed * 104729 + i);
      const cuts = Array.from({ length: 1 + Math.floor(r() * 12) }, () => Math.floor(r() * bytes.length));
      same(whole, readResponses(split(bytes, cuts)), `seed ${seed}`);
    }
  });

  it('the pipeline of stream 0 parses to the four requests it holds', () => {
    const t = readRequests([Buffer.from(REQUESTS[0] as string, 'latin1')]);
    expect(t.error).toBeUndefined();
    expect(t.messages.map((m) => [m.start, m.data, m.trailers, m.complete])).toEqual([
      ['GET /a HTTP/1.1', '', [], true],
      ['POST /b HTTP/1.1', 'hello world', [], true],
      ['PUT /c HTTP/1.1', 'hello!', ['X-T', '1'], true],
      ['DELETE /d HTTP/1.0', '', [], true],
    ]);
    const r = readResponses([Buffer.from(RESPONSES[0] as string, 'latin1')]);
    expect(r.messages.map((m) => [m.start, m.data, m.complete])).toEqual([
      ['HTTP/1.1 100 Continue', '', false],
      ['HTTP/1.1 200 OK', 'hello', true],
      ['HTTP/1.1 200 OK', 'abc', true],
      ['HTTP/1.1 204 No Content', '', true],
      ['HTTP/1.1 200 OK', 'and the rest until the close', true],
    ]);
  });
});

/**
 * For bytes with several faults the reason may differ by split (an incomplete head is checked
 * for bare LFs as it arrives, before a framing fault earlier in it can be seen), so here the
 * same messages and the same refusal (or none) are asserted, not the same code.
 */
function sameRefusal(a: Transcript, b: Transcript, what: string): void {
  expect(b.messages, what).toEqual(a.messages);
  expect(b.error === undefined, what).toBe(a.error === undefined);
}

describe('mutated bytes: a parse or an Http1Error, never another exception', () => {
  // drive() rethrows anything that is not an Http1Error, so a crash fails the test
  const INTERESTING = [
    0x00, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x2c, 0x3a, 0x3b, 0x3d, 0x5c, 0x5f, 0x7f, 0x80, 0xff, 0x30, 0x66,
  ];
  const mutate = (bytes: Buffer, r: () => number): Buffer => {
    const b = Buffer.from(bytes);
    const edits = 1 + Math.floor(r() * 4);
    for (let k = 0; k < edits; k++) {
      const at = Math.floor(r() * b.length);
      b[at] =
        r() < 0.7 ? (INTERESTING[Math.floor(r() * INTERESTING.length)] as number) : Math.floor(r() * 256);
    }
    return b;
  };
  it.each(REQUESTS.slice(0, 7).map((s, i) => [i, s] as const))(
    'request stream %d, 300 mutations',
    (i, text) => {
      const bytes = Buffer.from(text, 'latin1');
      const r = rng(31 * (i + 1));
      for (let m = 0; m < 300; m++) {
        const b = mutate(bytes, r);
        const whole = readRequests([b]);
        sameRefusal(
          whole,
          readRequests(split(b, [Math.floor(r() * b.length), Math.floor(r() * b.length)])),
          `mutation ${m}`,
        );
      }
    },
  );
  it.each(RESPONSES.map((s, i) => [i, s] as const))('response stream %d, 300 mutations', (i, text) => {
    const bytes = Buffer.from(text, 'latin1');
    const r = rng(97 * (i + 1));
    for (let m = 0; m < 300; m++) {
      const b = mutate(bytes, r);
      const cut = Math.floor(r() * b.length);
      sameRefusal(
        readResponses([b]),
        readResponses(split(b, [cut])),
        `mutation ${m} cut ${cut} ${JSON.stringify(b.toString('latin1'))}`,
      );
    }
  });
});

describe('the reader', () => {
  it('a head split across reads points into a copy of its own; one in a single read, into that read', () => {
    const r = new RequestReader(LIMITS);
    const whole = Buffer.from('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(r.next(whole, 0)).toBe(R_HEAD);
    expect(r.head.buf).toBe(whole);
    expect(r.next(whole, r.pos)).toBe(R_END);
    const a = Buffer.from('GET /two HTTP/1.1\r\nHo');
    const b = Buffer.from('st: y\r\n\r\n');
    expect(r.next(a, 0)).toBe(0);
    expect(r.next(b, 0)).toBe(R_HEAD);
    expect(r.head.buf).not.toBe(a);
    expect(r.head.buf).not.toBe(b);
    expect(r.head.toArray()).toEqual(['Host', 'y']);
    expect(r.head.target()).toBe('/two');
  });

  it('a connection closed in the middle of a head is incomplete; between messages it is clean', () => {
    expect(readRequests([Buffer.from('GET / HTTP/1.1\r\nHost')]).error?.code).toBe('RMR_HTTP1_INCOMPLETE');
    const clean = readRequests([Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
    expect(clean.error).toBeUndefined();
    expect(clean.messages).toHaveLength(1);
  });
});
