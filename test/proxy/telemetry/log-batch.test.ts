/**
 * The batched log destination (proxy/src/log.ts): lines written in batches arrive whole, in
 * order, escaped, and are written when the process exits, when the engine drains
 * (Telemetry.shutdown) and when a batch is full, without waiting for the batch timer. The
 * first test runs the built tree (npm run build) in a child process, as the engine runs.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  batchedDestination,
  createLogger,
  flushLog,
  isoTime,
  LOG_BATCH_BYTES,
} from '../../../proxy/src/log.js';
import { AccessLog } from '../../../proxy/src/telemetry/accesslog.js';
import { setupTelemetry } from '../../../proxy/src/telemetry/setup.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';

const ROOT = resolve(import.meta.dirname, '../../..');
/** Values a client controls: quotes, backslashes, newlines, control bytes, non-ASCII, a lone surrogate. */
const NASTY = [
  '"quoted" \\ back',
  'line\nbreak\r\n',
  '\u0000\u0001\u001f\u007f',
  'é ü 日本 🐟',
  '\ud800 lone',
];

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Runs `fn` with a fresh file opened for writing (removed afterwards). */
async function withLogFile(fn: (fd: number, file: string) => Promise<void>): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'remora-logbatch-'));
  const file = join(dir, 'log');
  const fd = openSync(file, 'w');
  try {
    await fn(fd, file);
  } finally {
    closeSync(fd);
  }
}

/** 24 access lines (~5.5 KiB) through a destination of 4 KiB batches written after `ms`. */
function log24(fd: number, ms: number, prefix: string): ReturnType<typeof createLogger> {
  const log = createLogger('info', batchedDestination(fd, 4096, ms));
  const a = new AccessLog(log, { enabled: true, sample: 1 });
  for (let i = 0; i < 24; i++) a.http(record(i, `${prefix}${i}`));
  return log;
}

/** Polls `file` until `done` holds for its lines (10 s at most). */
async function until(file: string, done: (n: number) => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done(lines(file).length) && Date.now() < deadline) await sleep(10);
}

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function record(i: number, path: string): Parameters<AccessLog['http']>[0] {
  return {
    direction: 'inbound',
    method: 'GET',
    path,
    status: 200,
    durationMs: i / 7,
    bytesReceived: i,
    bytesSent: 2 * i,
    upstream: '127.0.0.1:8080',
    peerAddress: '10.0.0.9',
    peerPort: i % 65536,
    traceId: undefined,
  };
}

describe('batched log lines', () => {
  it('a process that logs 5,000 lines (one of them 300 KiB, some hostile) and exits at once loses none: all arrive through a pipe, in order, intact', async () => {
    const script = `
      import { createLogger } from ${JSON.stringify(pathToFileURL(join(ROOT, 'proxy/dist/log.js')).href)};
      import { AccessLog } from ${JSON.stringify(pathToFileURL(join(ROOT, 'proxy/dist/telemetry/accesslog.js')).href)};
      const NASTY = ${JSON.stringify(NASTY)};
      const a = new AccessLog(createLogger('info'), { enabled: true, sample: 1 });
      for (let i = 0; i < 5000; i++) {
        const path = i === 777 ? '/' + 'x'.repeat(300 * 1024) : '/p/' + i + NASTY[i % NASTY.length];
        a.http({ direction: 'inbound', method: 'GET', path, status: 200, durationMs: i / 7,
          bytesReceived: i, bytesSent: 2 * i, upstream: '127.0.0.1:8080', peerAddress: '10.0.0.9', peerPort: 1, traceId: undefined });
      }
      process.exit(0);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(Buffer.concat(err).toString()).toBe('');
    expect(code).toBe(0);
    const text = Buffer.concat(out).toString('utf8');
    expect(text.endsWith('\n')).toBe(true);
    const got = text.split('\n').filter((l) => l !== '');
    expect(got).toHaveLength(5000);
    got.forEach((l, i) => {
      const o = JSON.parse(l) as Record<string, unknown>;
      expect(o.bytes_received).toBe(i);
      // The hostile values come back exactly (minus the query, of which there is none); a lone
      // surrogate too, escaped as `\ud800` (accesslog.ts).
      const want = i === 777 ? `/${'x'.repeat(300 * 1024)}` : `/p/${i}${NASTY[i % NASTY.length]}`;
      expect(o.path).toBe(want);
      expect(o).toMatchObject({ log: 'access', type: 'http', level: 'info', status: 200 });
    });
  }, 60_000);

  it('holds lines until the batch is due, then writes them in order; flushLog writes at once', async () => {
    await withLogFile(async (fd, file) => {
      // A batch timer of a minute: only a flush can write these lines in this test.
      const log = createLogger('info', batchedDestination(fd, LOG_BATCH_BYTES, 60_000));
      const a = new AccessLog(log, { enabled: true, sample: 1 });
      for (let i = 0; i < 3; i++) a.http(record(i, `/a/${i}`));
      await sleep(50);
      expect(readFileSync(file, 'utf8')).toBe('');
      await flushLog(log);
      expect(lines(file).map((l) => l.path)).toEqual(['/a/0', '/a/1', '/a/2']);
    });
  });

  it('writes a full batch without waiting for its timer', async () => {
    await withLogFile(async (fd, file) => {
      // A full batch (written at once), then ~1.5 KiB that waits for the flush.
      const log = log24(fd, 60_000, '/b/');
      await until(file, (n) => n > 0);
      const first = lines(file);
      expect(first.length).toBeGreaterThan(0);
      expect(first.length).toBeLessThan(24);
      await flushLog(log);
      expect(lines(file).map((l) => l.bytes_received)).toEqual([...Array(24).keys()]);
    });
  });

  it('the rest of a batch is written by its timer even when the timer fires while a full batch is being written, with no line after it', async () => {
    await withLogFile(async (fd, file) => {
      // A 1 ms timer: it fires while the first, full batch is still being written.
      log24(fd, 1, '/c/');
      await until(file, (n) => n >= 24);
      expect(lines(file).map((l) => l.bytes_received)).toEqual([...Array(24).keys()]);
    });
  });

  it("the engine's drain (Telemetry.shutdown) writes the lines still batched", async () => {
    await withLogFile(async (fd, file) => {
      const log = createLogger('info', batchedDestination(fd, LOG_BATCH_BYTES, 60_000));
      const t = await setupTelemetry(
        {
          accessLog: true,
          accessLogSample: 1,
          traceSampling: 0,
          podName: undefined,
          podNamespace: undefined,
          serviceAccount: undefined,
          workload: undefined,
          otel: {},
        },
        log,
        new Registry(),
      );
      expect(t.accessLog).toBeDefined();
      t.accessLog?.http(record(5, '/drain?token=secret'));
      expect(readFileSync(file, 'utf8')).toBe('');
      await t.shutdown();
      expect(lines(file)).toEqual([
        expect.objectContaining({ log: 'access', path: '/drain', bytes_received: 5 }),
      ]);
    });
  });
});

describe('the log time', () => {
  it("formats every millisecond as pino's isoTime (Date#toISOString) did, across second, day and year boundaries", () => {
    const starts = [
      Date.UTC(2026, 11, 4, 20, 30, 59, 990),
      Date.UTC(2026, 11, 31, 23, 59, 59, 900),
      Date.UTC(2028, 1, 29, 0, 0, 0, 0),
      0,
    ];
    const spy = vi.spyOn(Date, 'now');
    try {
      for (const t0 of starts) {
        for (let t = t0; t < t0 + 1200; t += 1) {
          spy.mockReturnValue(t);
          expect(isoTime()).toBe(`,"time":"${new Date(t).toISOString()}"`);
        }
      }
      // Before 1970 and after 9999 too (the slow path).
      for (const t of [-1, -999, -1000, Date.UTC(12000, 0, 1, 0, 0, 0, 7)]) {
        spy.mockReturnValue(t);
        expect(isoTime()).toBe(`,"time":"${new Date(t).toISOString()}"`);
      }
    } finally {
      spy.mockRestore();
    }
  });
});
