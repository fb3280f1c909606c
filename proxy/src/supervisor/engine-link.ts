/**
 * The engine's side of the supervisor protocol (ipc.ts). An engine entry calls
 * `runUnderSupervisor(start)`: it waits for the supervisor's `start` message, calls `start` with
 * the inherited listener fds, reports `ready`, heartbeats (the first with the whole metrics
 * snapshot, later ones with what changed: docs/supervisor.md), and drains on
 * `drain`. If the supervisor goes away the engine exits: an engine must never outlive the
 * process that owns the health port and restarts it. Light on purpose: no engine imports here.
 */
import { parseToEngine } from './ipc.js';
import type { FromEngine, ListenerName, StartMessage } from './ipc.js';
import type { RegistrySnapshot } from '../metrics/registry.js';

export interface EngineStartContext {
  readonly generation: number;
  readonly version: string;
  /** Listener name → inherited fd to `server.listen({ fd, backlog })` on. */
  readonly fds: Readonly<Partial<Record<ListenerName, number>>>;
  readonly backlog: number;
}

export interface RunningEngine {
  /**
   * Stop accepting, answer keep-alive requests with `Connection: close`, let in-flight work
   * finish, and close whatever is left when `deadlineMs` has passed. Resolves when done.
   */
  drain(deadlineMs: number): Promise<void>;
  /** The engine's metrics registry, whole (the supervisor merges generations). */
  snapshot(): RegistrySnapshot;
  /**
   * The series that changed since the previous call, absolute values (Registry.changed); the
   * first call returns every series. Without it every heartbeat carries snapshot().
   */
  delta?(): RegistrySnapshot;
  /** The engine's own state shown in the supervisor's /config (its policy), sent with heartbeats. */
  status?(): Record<string, unknown>;
}

export type StartEngine = (ctx: EngineStartContext) => Promise<RunningEngine>;

/** True when this process was forked by the supervisor (it has an IPC channel). */
export function isSupervised(): boolean {
  return typeof process.send === 'function';
}

/**
 * Heartbeats of one engine: the first carries the whole registry, every later one only the
 * series that changed (the supervisor patches its copy), and the status only when it changed.
 * A SIGKILLed engine so loses at most the increments since its last heartbeat, as before.
 */
function heartbeats(engine: RunningEngine): () => FromEngine {
  let first = true;
  let lastStatus: string | undefined;
  return () => {
    const metrics = engine.delta === undefined ? engine.snapshot() : engine.delta();
    const delta = !first && engine.delta !== undefined;
    first = false;
    const status = engine.status?.();
    const text = status === undefined ? undefined : JSON.stringify(status);
    const changed = text !== lastStatus;
    lastStatus = text;
    return {
      t: 'heartbeat',
      metrics,
      ...(delta ? { delta: true as const } : {}),
      ...(status !== undefined && changed ? { status } : {}),
    };
  };
}

function send(msg: FromEngine, then?: () => void): void {
  if (process.send === undefined || !process.connected) {
    then?.();
    return;
  }
  process.send(msg, undefined, {}, () => then?.());
}

/** After a drain, a hard stop this long past the deadline even if close callbacks hang. */
const DRAIN_SLACK_MS = 1000;

export function runUnderSupervisor(start: StartEngine): void {
  let running: RunningEngine | undefined;
  let started = false;
  let draining = false;
  let heartbeat: NodeJS.Timeout | undefined;
  let heartbeatOf: (() => FromEngine) | undefined;

  const exitWith = (code: number): void => {
    if (heartbeat !== undefined) clearInterval(heartbeat);
    // Give the IPC channel a moment to flush the last message, then go.
    setImmediate(() => process.exit(code));
  };

  const onStart = (msg: StartMessage): void => {
    started = true;
    start({ generation: msg.generation, version: msg.version, fds: msg.fds, backlog: msg.backlog }).then(
      (engine) => {
        running = engine;
        const next = heartbeats(engine);
        heartbeatOf = next;
        send({ t: 'ready' });
        send(next());
        heartbeat = setInterval(() => send(next()), msg.heartbeatMs);
        heartbeat.unref();
      },
      (err: unknown) => {
        const reason = err instanceof Error ? err.message : String(err);
        send({ t: 'fatal', reason }, () => exitWith(1));
      },
    );
  };

  const onDrain = (deadlineMs: number): void => {
    if (draining) return;
    draining = true;
    const engine = running;
    if (engine === undefined) {
      exitWith(0);
      return;
    }
    setTimeout(() => exitWith(0), deadlineMs + DRAIN_SLACK_MS).unref();
    const finish = (): void => send({ t: 'drained', metrics: engine.snapshot() }, () => exitWith(0));
    engine.drain(deadlineMs).then(finish, finish);
  };

  process.on('message', (raw: unknown) => {
    let msg;
    try {
      msg = parseToEngine(raw);
    } catch (err) {
      send({ t: 'fatal', reason: (err as Error).message }, () => exitWith(1));
      return;
    }
    if (msg.t === 'start') {
      if (!started) onStart(msg);
    } else if (msg.t === 'snapshot') {
      if (heartbeatOf !== undefined) send(heartbeatOf());
    } else {
      onDrain(msg.deadlineMs);
    }
  });
  process.on('disconnect', () => exitWith(draining ? 0 : 1));
  // Static imports are evaluated before this runs: the expensive part of a start is done.
  send({ t: 'loaded' });
}
