/**
 * The supervisor's logger: the same JSON lines as the engine's pino logger (`level` as a label,
 * ISO `time`, `component`, `pid`, bindings, the object, `msg`; an Error under `err` as
 * `{type, message, stack, code}`), without pino. The supervisor must stay small (DESIGN §1: no
 * heavy imports): pino and its workers add about 10 MB of RSS to a process that logs a few lines
 * an hour. Only the subset the supervisor uses: level methods, child, isLevelEnabled, a settable
 * level shared with every child (the admin /logging endpoint), flush.
 */
import { LOG_LEVELS } from '../contract.js';
import type { LogLevel as Level, ProxyLogLevel } from '../contract.js';

/** A level, or `silent` (nothing at all), as REMORA_LOG_LEVEL accepts (contract.ts). */
export type LogLevel = ProxyLogLevel;

type Fields = Readonly<Record<string, unknown>>;
type LogFn = (obj: Fields, msg?: string) => void;

export interface Logger {
  level: LogLevel;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  isLevelEnabled(level: Level): boolean;
  child(bindings: Fields): Logger;
  flush(cb?: () => void): void;
}

export type Sink = (line: string) => void;

const RANK: Readonly<Record<LogLevel, number>> = Object.freeze({
  ...(Object.fromEntries(LOG_LEVELS.map((l, i) => [l, i])) as Record<Level, number>),
  silent: Infinity,
});

function serializeError(e: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: e.name, message: e.message, stack: e.stack };
  const code = (e as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (e.cause instanceof Error) out.cause = serializeError(e.cause);
  return out;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return serializeError(value);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** `write` defaults to stdout; tests pass their own. */
export function createSupervisorLogger(
  level: LogLevel,
  base: Fields,
  write: Sink = (line) => void process.stdout.write(line),
): Logger {
  const state = { level, rank: RANK[level] };
  const make = (bindings: Fields): Logger => {
    const at =
      (l: Level): LogFn =>
      (obj, msg) => {
        if (RANK[l] < state.rank) return;
        const rec = { level: l, time: new Date().toISOString(), ...base, ...bindings, ...obj };
        let line: string;
        try {
          line = JSON.stringify(msg === undefined ? rec : { ...rec, msg }, replacer);
        } catch {
          // A cyclic object must never take the supervisor down: log what is safe.
          line = JSON.stringify({
            level: l,
            time: rec.time,
            ...base,
            msg,
            logError: 'unserializable fields',
          });
        }
        write(`${line}\n`);
      };
    return {
      get level() {
        return state.level;
      },
      set level(v: LogLevel) {
        state.level = v;
        state.rank = RANK[v];
      },
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      fatal: at('fatal'),
      isLevelEnabled: (l) => RANK[l] >= state.rank,
      child: (more) => make({ ...bindings, ...more }),
      flush: (cb) => {
        if (cb === undefined) process.stdout.write('');
        else process.stdout.write('', () => cb());
      },
    };
  };
  return make({});
}
