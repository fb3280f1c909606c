/**
 * JSON-lines logging (pino). Callers pass objects, never pre-built strings, and guard debug
 * lines on the hot path with `log.isLevelEnabled('debug')` so nothing is built when it is off.
 *
 * Lines to stdout are batched (docs/telemetry.md, "Access log"): pino's asynchronous destination
 * holds them until LOG_BATCH_BYTES have gathered or LOG_BATCH_MS have passed since the first one
 * of the batch, then writes them in one `write(2)`. With one line per request (the access log),
 * a write per line cost more than everything else the log does; a batch keeps every line whole
 * and in order, and what is pending is written synchronously when the process exits (pino's exit
 * hook) or when `flushLog` is called (the engine's drain).
 */
import { pino } from 'pino';
import type { Logger, DestinationStream } from 'pino';
import type { LogLevel } from './config/config.js';

export type { Logger };

/** A batch is written once it holds this many bytes... */
export const LOG_BATCH_BYTES = 64 * 1024;
/** ...or this long after its first line, whichever comes first. */
export const LOG_BATCH_MS = 50;

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { component: 'remora-proxy', pid: process.pid },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? batchedDestination(1),
  );
}

let second = -1;
let secondPrefix = '';

/**
 * pino's `isoTime` (`,"time":"2026-12-04T20:30:00.123Z"`, what `Date#toISOString` gives), with
 * the date and time up to the second formatted once per second: `toISOString` per line was
 * about a third of what pino spends on an access-log line.
 */
export function isoTime(): string {
  const now = Date.now();
  const ms = now % 1000;
  const start = now - ms;
  if (start !== second || ms < 0) {
    const iso = new Date(now).toISOString();
    // Years outside 0000..9999 and times before 1970 take the long way, every time.
    if (iso.length !== 24 || ms < 0) return `,"time":"${iso}"`;
    second = start;
    secondPrefix = iso.slice(0, 20);
  }
  return `,"time":"${secondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

/** What `batchedDestination` returns: a pino destination that can be flushed. */
export interface BatchedDestination extends DestinationStream {
  /** Starts writing what is pending; `cb` once it is written (or failed). */
  flush(cb?: (err?: Error) => void): void;
  /** Writes what is pending synchronously (exit paths). */
  flushSync(): void;
}

/**
 * Lines to `fd` (1: stdout) in batches of up to `bytes`, written at most `ms` after the first
 * line of a batch. The writes are asynchronous (a full pipe never blocks the event loop) and
 * pino's exit hook writes what is left synchronously.
 */
export function batchedDestination(
  fd: number,
  bytes = LOG_BATCH_BYTES,
  ms = LOG_BATCH_MS,
): BatchedDestination {
  // minLength: sonic-boom buffers until a batch is this big; maxWrite must stay above it.
  // contentMode 'buffer': each line is encoded once, on its way in, into a slab of this
  // destination's own, and sonic-boom holds views of it until the batch is written (it joins
  // them then). In its string mode sonic-boom measures the whole pending batch
  // (`Buffer.byteLength` of a growing concatenation) on every write, which flattens and scans
  // it again per line: ~5 % of an engine's CPU with the access log on; and `Buffer.from` per
  // line makes a new pool every ~20 lines (docs/performance.md).
  const sonic = pino.destination({
    dest: fd,
    sync: false,
    minLength: bytes,
    maxWrite: 4 * bytes,
    contentMode: 'buffer',
  });
  // sonic-boom (pinned in package-lock) does not say whether a write is in flight or what is
  // buffered, and a flush during a write writes nothing: both are read from its own fields.
  const state = sonic as unknown as { readonly _writing: boolean; readonly _len: number };
  // sonic-boom's typings say string; in buffer mode it takes bytes.
  const put = sonic.write.bind(sonic) as unknown as (b: Buffer) => boolean;
  // A slab is never written into again once full: the views of it wait in sonic-boom's batch.
  const slabBytes = Math.max(bytes, 16 * 1024);
  let slab = Buffer.allocUnsafeSlow(slabBytes);
  let used = 0;
  const encode = (line: string): void => {
    // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, two units, is 4).
    const most = 3 * line.length;
    if (most > slabBytes) {
      put(Buffer.from(line, 'utf8'));
      return;
    }
    if (most > slabBytes - used) {
      slab = Buffer.allocUnsafeSlow(slabBytes);
      used = 0;
    }
    const n = slab.write(line, used, 'utf8');
    put(slab.subarray(used, used + n));
    used += n;
  };
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(due, ms);
    // Pending lines never keep a process alive: the exit hook writes them.
    timer.unref();
  };
  const due = (): void => {
    timer = undefined;
    if (state._writing) arm();
    else if (state._len > 0) sonic.flush();
  };
  const flushNow = (cb?: (err?: Error) => void): void => {
    if (state._writing) {
      sonic.once('drain', () => flushNow(cb));
      return;
    }
    if (state._len === 0) {
      cb?.();
      return;
    }
    sonic.flush((err) => cb?.(err ?? undefined));
  };
  return {
    write(line: string): void {
      encode(line);
      if (timer === undefined) arm();
    },
    flush(cb?: (err?: Error) => void): void {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      flushNow(cb);
    },
    flushSync(): void {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      sonic.flushSync();
    },
  };
}

/**
 * Writes the logger's pending lines; resolves once they are written (the engine's drain), or
 * after `boundMs` at most: a reader that went away (EPIPE) must not hold a drain up.
 */
export function flushLog(log: Logger, boundMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    const bound = setTimeout(resolve, boundMs);
    bound.unref();
    log.flush(() => {
      clearTimeout(bound);
      resolve();
    });
  });
}
