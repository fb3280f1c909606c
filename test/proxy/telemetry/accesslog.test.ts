import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  AccessLog,
  createAccessLog,
  jsonText,
  securityEvent,
} from '../../../proxy/src/telemetry/accesslog.js';
import { seededPick } from '../../helpers/random.js';

function capture(level = 'info'): { log: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const log = pino({ level, formatters: { level: (label) => ({ level: label }) } }, sink);
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const HTTP = {
  direction: 'inbound' as const,
  method: 'GET',
  path: '/cart/7?session=s3cr3t',
  status: 200,
  durationMs: 1.23456,
  bytesReceived: 0,
  bytesSent: 512,
  upstream: '127.0.0.1:8080',
  peerAddress: '10.0.0.9',
  peerPort: 51234,
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
};

describe('AccessLog', () => {
  it('writes one JSON line per HTTP request with the documented fields and no query string', () => {
    const { log, lines } = capture();
    new AccessLog(log, { enabled: true, sample: 1 }).http(HTTP);
    expect(lines()).toEqual([
      expect.objectContaining({
        level: 'info',
        log: 'access',
        type: 'http',
        direction: 'inbound',
        method: 'GET',
        path: '/cart/7',
        status: 200,
        duration_ms: 1.235,
        bytes_received: 0,
        bytes_sent: 512,
        upstream: '127.0.0.1:8080',
        peer: '10.0.0.9:51234',
        trace_id: HTTP.traceId,
        time: expect.any(Number),
      }),
    ]);
    expect(JSON.stringify(lines())).not.toContain('s3cr3t');
  });

  it('says how many retries a request took, and nothing when it took none', () => {
    const { log, lines } = capture();
    const al = new AccessLog(log, { enabled: true, sample: 1 });
    al.http({ ...HTTP, retries: 2 });
    al.http(HTTP);
    const [retried, plain] = lines();
    expect(retried?.retries).toBe(2);
    expect(plain).not.toHaveProperty('retries');
  });

  it('writes one line per opaque TCP connection with bytes each way', () => {
    const { log, lines } = capture();
    new AccessLog(log, { enabled: true, sample: 1 }).tcp({
      direction: 'outbound',
      durationMs: 10,
      bytesReceived: 100,
      bytesSent: 2000,
      upstream: '10.1.1.1:5432',
      peer: '127.0.0.1:40000',
    });
    expect(lines()[0]).toMatchObject({
      type: 'tcp',
      direction: 'outbound',
      bytes_received: 100,
      bytes_sent: 2000,
    });
  });

  it('writes, byte for byte, the line pino writes for the same fields: level, time, bindings, order, escaping, absent fields left out, NaN as null', () => {
    const raw = (): { log: Logger; text: () => string } => {
      const chunks: string[] = [];
      const log = pino(
        {
          base: { component: 'remora-proxy', pid: 7 },
          timestamp: () => ',"time":"2026-12-07T07:00:00.000Z"',
          formatters: { level: (label) => ({ level: label }) },
        },
        { write: (l: string) => void chunks.push(l) },
      );
      return { log, text: () => chunks.join('') };
    };
    const ours = raw();
    const theirs = raw();
    const al = new AccessLog(ours.log, { enabled: true, sample: 1 });
    const pinos = theirs.log.child({ log: 'access' });
    const hostile = ['"q" \\ b', 'l\nb\r\n\t', '\u0000\u001f\u007f', 'é 日本 🐟', '\u2028\u2029'];
    for (const [i, h] of hostile.entries()) {
      const full = {
        ...HTTP,
        method: i === 0 ? 'GET' : `M${h}`,
        path: `/p/${h}?q=${h}`,
        durationMs: i === 1 ? Number.NaN : i / 3,
        upstream: `u${h}`,
        peerAddress: i === 2 ? undefined : `p${h}`,
        peerPort: 1000 * i + 1,
        traceId: i === 3 ? undefined : `${i}bf92f3577b34da6a3ce929d0e0e4736`,
        error: i === 4 ? undefined : `RMR_${h}`,
        httpVersion: '1.1',
        grpcStatus: i === 0 ? undefined : i,
        retries: i === 2 ? 3 : undefined,
      };
      al.http(full);
      pinos.info({
        type: 'http',
        direction: full.direction,
        method: full.method,
        path: `/p/${h}`,
        status: full.status,
        duration_ms: Math.round(full.durationMs * 1000) / 1000,
        bytes_received: full.bytesReceived,
        bytes_sent: full.bytesSent,
        upstream: full.upstream,
        peer: full.peerAddress === undefined ? undefined : `${full.peerAddress}:${full.peerPort}`,
        trace_id: full.traceId,
        error: full.error,
        http_version: full.httpVersion,
        grpc_status: full.grpcStatus,
        retries: full.retries,
      });
      const tcp = {
        direction: 'outbound' as const,
        durationMs: i,
        bytesReceived: i,
        bytesSent: 2 * i,
        upstream: i === 1 ? undefined : `u${h}`,
        peer: `p${h}`,
        error: i === 0 ? `RMR_${h}` : undefined,
      };
      al.tcp(tcp);
      pinos.info({
        type: 'tcp',
        direction: tcp.direction,
        duration_ms: tcp.durationMs,
        bytes_received: tcp.bytesReceived,
        bytes_sent: tcp.bytesSent,
        upstream: tcp.upstream,
        peer: tcp.peer,
        error: tcp.error,
      });
    }
    expect(ours.text().split('\n')).toHaveLength(2 * hostile.length + 1);
    expect(ours.text()).toBe(theirs.text());
  });

  it('a lone surrogate from a client is escaped, and comes back exactly', () => {
    const { log, lines } = capture();
    new AccessLog(log, { enabled: true, sample: 1 }).http({ ...HTTP, path: '/a\ud800b\udfff' });
    expect(lines()[0]?.path).toBe('/a\ud800b\udfff');
  });

  it('samples: 0.2 logs roughly a fifth, off installs nothing', () => {
    const { log, lines } = capture();
    const al = new AccessLog(log, { enabled: true, sample: 0.2 });
    for (let i = 0; i < 2000; i++) if (al.wants()) al.http(HTTP);
    // Binomial(2000, 0.2): mean 400, sd ~18; 300..500 is over 5 sd either way.
    expect(lines().length).toBeGreaterThan(300);
    expect(lines().length).toBeLessThan(500);
    expect(createAccessLog(log, { enabled: false, sample: 1 })).toBeUndefined();
  });

  it('builds nothing when the level is off', () => {
    const { log, lines } = capture('warn');
    const al = new AccessLog(log, { enabled: true, sample: 1 });
    expect(al.wants()).toBe(false);
    expect(lines()).toEqual([]);
  });
});

describe('securityEvent', () => {
  it('logs at warn with a stable event field, never sampled', () => {
    const { log, lines } = capture('warn');
    securityEvent(log, 'policy_denied', { peer: 'spiffe://cluster.local/ns/a/sa/b', path: '/admin' });
    expect(lines()).toEqual([
      expect.objectContaining({
        level: 'warn',
        event: 'policy_denied',
        security: true,
        peer: 'spiffe://cluster.local/ns/a/sa/b',
        msg: 'policy_denied',
      }),
    ]);
  });

  it('a caller cannot overwrite the event name through its fields', () => {
    const { log, lines } = capture('warn');
    securityEvent(log, 'bad_certificate', { event: 'something_else' });
    expect(lines()[0]?.event).toBe('bad_certificate');
  });
});

describe('jsonText (the access line’s string fields)', () => {
  it('is JSON.stringify exactly, on 50,000 random strings of the characters that matter', () => {
    const ALPHABET = [
      'a',
      'Z',
      '/',
      ' ',
      '?',
      '%',
      ':',
      '"',
      '\\',
      '\u0000',
      '\u0001',
      '\t',
      '\n',
      '\r',
      '\u001f',
      '\u007f',
      '\u0080',
      '\u00e9',
      '\u00ff',
      '\u2028',
      '\u2029',
      '\ufeff',
      '\uffff',
      '\ud800',
      '\udbff',
      '\udc00',
      '\udfff',
      '\ud83d\ude00',
    ];
    const rnd = seededPick(0x9e3779b9);
    let plain = 0;
    for (let k = 0; k < 50_000; k++) {
      let s = '';
      const n = rnd(12);
      // half of them from the plain characters only: the path that skips JSON.stringify
      const from = k % 2 === 0 ? 5 : ALPHABET.length;
      for (let i = 0; i < n; i++) s += ALPHABET[rnd(from)] as string;
      if (k % 2 === 0) plain++;
      const quoted = `"${jsonText(s)}"`;
      expect([s, quoted]).toEqual([s, JSON.stringify(s)]);
      expect(JSON.parse(quoted)).toBe(s);
      // nothing to escape: the string itself, no copy made
      if (k % 2 === 0) expect(jsonText(s)).toBe(s);
    }
    expect(plain).toBe(25_000);
  });
});
