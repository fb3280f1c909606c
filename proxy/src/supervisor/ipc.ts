/**
 * The supervisor ⇄ engine protocol over the fork() IPC channel (JSON messages). Pure types and
 * validation; the engine side lives in engine-link.ts, the supervisor side in engine-process.ts.
 *
 *   supervisor → engine  start      which inherited fds are which listeners, heartbeat period
 *                        drain      stop accepting, finish in-flight, exit by the deadline
 *                        snapshot   send a heartbeat now (a scrape wants fresh numbers)
 *   engine → supervisor  loaded     code loaded, waiting for start
 *                        ready      every listener is accepting
 *                        heartbeat  every heartbeatMs (and on snapshot): the liveness signal;
 *                                   the first carries the whole metrics snapshot, later ones
 *                                   (`delta: true`) only the series that changed, and the
 *                                   status only when it changed (docs/supervisor.md)
 *                        fatal      cannot start (bad config, bind failure): the reason
 *                        drained    final snapshot, sent just before a clean exit
 */
import type { RegistrySnapshot } from '../metrics/registry.js';
import { isRegistrySnapshot } from './ledger.js';
import { IpcProtocolError } from './errors.js';
import { SUPERVISED_LISTENER_NAMES } from '../contract.js';
import type { SupervisedListenerName } from '../contract.js';

/** The data listeners the supervisor hands to engines (contract.ts, a subset of LISTENER_NAMES). */
export type ListenerName = SupervisedListenerName;

export interface StartMessage {
  readonly t: 'start';
  readonly generation: number;
  readonly version: string;
  /** listener name → fd number in the engine process (inherited through stdio). */
  readonly fds: Readonly<Partial<Record<ListenerName, number>>>;
  /** The backlog the supervisor bound with; listen({fd}) must not shrink it. */
  readonly backlog: number;
  readonly heartbeatMs: number;
}
export interface DrainMessage {
  readonly t: 'drain';
  /** How long in-flight work may take before the engine closes what is left and exits. */
  readonly deadlineMs: number;
}
export interface SnapshotMessage {
  readonly t: 'snapshot';
}
export type ToEngine = StartMessage | DrainMessage | SnapshotMessage;

/** The engine's code is loaded and it waits for `start` (what makes a standby useful). */
export interface LoadedMessage {
  readonly t: 'loaded';
}
export interface ReadyMessage {
  readonly t: 'ready';
}
export interface HeartbeatMessage {
  readonly t: 'heartbeat';
  readonly metrics: RegistrySnapshot;
  /**
   * true: `metrics` holds only the series that changed since the last heartbeat (absolute
   * values). Absent: the whole registry (the first heartbeat; every one from an older engine).
   */
  readonly delta?: true;
  /** the engine's own state for the supervisor's /config (its policy), when it has any */
  readonly status?: Readonly<Record<string, unknown>>;
}
export interface FatalMessage {
  readonly t: 'fatal';
  readonly reason: string;
}
export interface DrainedMessage {
  readonly t: 'drained';
  readonly metrics: RegistrySnapshot;
}
export type FromEngine = LoadedMessage | ReadyMessage | HeartbeatMessage | FatalMessage | DrainedMessage;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a message from an engine; throws IpcProtocolError naming what is wrong. */
export function parseFromEngine(msg: unknown): FromEngine {
  if (!isObject(msg) || typeof msg.t !== 'string') throw new IpcProtocolError('message without a type');
  switch (msg.t) {
    case 'ready':
      return { t: 'ready' };
    case 'loaded':
      return { t: 'loaded' };
    case 'heartbeat':
    case 'drained': {
      if (!isRegistrySnapshot(msg.metrics))
        throw new IpcProtocolError(`${msg.t}: malformed metrics snapshot`);
      if (msg.t === 'drained') return { t: msg.t, metrics: msg.metrics };
      if (msg.delta !== undefined && msg.delta !== true)
        throw new IpcProtocolError(
          `heartbeat: delta must be true or absent, got ${JSON.stringify(msg.delta)}`,
        );
      if (msg.status !== undefined && !isObject(msg.status))
        throw new IpcProtocolError('heartbeat: status must be an object');
      return {
        t: 'heartbeat',
        metrics: msg.metrics,
        ...(msg.delta === true ? { delta: true as const } : {}),
        ...(msg.status !== undefined ? { status: msg.status } : {}),
      };
    }
    case 'fatal':
      return { t: 'fatal', reason: typeof msg.reason === 'string' ? msg.reason : 'unknown' };
    default:
      throw new IpcProtocolError(`unknown message type ${JSON.stringify(msg.t)}`);
  }
}

/** Validates a message from the supervisor (engine side). */
export function parseToEngine(msg: unknown): ToEngine {
  if (!isObject(msg) || typeof msg.t !== 'string') throw new IpcProtocolError('message without a type');
  if (msg.t === 'snapshot') return { t: 'snapshot' };
  if (msg.t === 'drain') {
    if (typeof msg.deadlineMs !== 'number' || !(msg.deadlineMs >= 0))
      throw new IpcProtocolError('drain: deadlineMs must be a number >= 0');
    return { t: 'drain', deadlineMs: msg.deadlineMs };
  }
  if (msg.t === 'start') {
    const fds: Partial<Record<ListenerName, number>> = {};
    if (!isObject(msg.fds)) throw new IpcProtocolError('start: fds must be an object');
    for (const [name, fd] of Object.entries(msg.fds)) {
      if (
        !(SUPERVISED_LISTENER_NAMES as readonly string[]).includes(name) ||
        typeof fd !== 'number' ||
        fd < 0
      )
        throw new IpcProtocolError(`start: bad listener ${JSON.stringify(name)}=${JSON.stringify(fd)}`);
      fds[name as ListenerName] = fd;
    }
    const { generation, version, backlog, heartbeatMs } = msg;
    if (typeof generation !== 'number' || typeof version !== 'string')
      throw new IpcProtocolError('start: generation and version are required');
    if (typeof backlog !== 'number' || typeof heartbeatMs !== 'number' || heartbeatMs <= 0)
      throw new IpcProtocolError('start: backlog and heartbeatMs must be positive numbers');
    return { t: 'start', generation, version, fds, backlog, heartbeatMs };
  }
  throw new IpcProtocolError(`unknown message type ${JSON.stringify(msg.t)}`);
}
