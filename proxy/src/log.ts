/**
 * JSON-lines logging (pino). Callers pass objects, never pre-built strings, and guard debug
 * lines on the hot path with `log.isLevelEnabled('debug')` so nothing is built when it is off.
 */
import { pino } from 'pino';
import type { Logger, DestinationStream } from 'pino';
import type { LogLevel } from './config/config.js';

export type { Logger };

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { component: 'remora-proxy', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
