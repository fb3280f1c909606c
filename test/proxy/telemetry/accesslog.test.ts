import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { AccessLog, createAccessLog, securityEvent } from '../../../proxy/src/telemetry/accesslog.js';

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
  peer: '10.0.0.9:51234',
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
