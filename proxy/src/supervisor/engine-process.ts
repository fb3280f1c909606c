/**
 * One engine generation, seen from the supervisor: a forked child that inherits the held
 * listener fds through stdio, is told which is which in the `start` message, and is watched
 * for readiness (bounded), heartbeats (bounded) and exit. It never restarts itself: the
 * supervisor decides what happens next.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Logger } from './log.js';
import { parseFromEngine } from './ipc.js';
import { engineExecArgv } from './node-flags.js';
import type { ListenerName, StartMessage, ToEngine } from './ipc.js';
import type { RegistrySnapshot } from '../metrics/registry.js';

/** What to run: an engine entry file and the environment it starts with. */
export interface EngineSpec {
  /** `builtin` for the supervisor's own build, else a directory name under the bundle root. */
  readonly version: string;
  /** Absolute path of the engine entry (ESM). */
  readonly entry: string;
  /** The environment, including config overrides from an upgrade request. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The overrides alone, shown on /config. */
  readonly overrides: Readonly<Record<string, string>>;
}

export interface HeldListenerFd {
  readonly name: ListenerName;
  readonly fd: number;
}

export interface EngineTimings {
  readonly heartbeatMs: number;
  /** No heartbeat for this long after ready: the engine is hung, kill it. */
  readonly heartbeatTimeoutMs: number;
  /** Not ready this long after fork: give up on it. */
  readonly readyTimeoutMs: number;
  readonly backlog: number;
}

/** `standby`: forked and loaded, waiting for `start` (a hot spare). */
export type EngineState = 'standby' | 'starting' | 'ready' | 'draining' | 'exited';

export interface EngineEvents {
  ready(engine: EngineProcess): void;
  /**
   * A metrics snapshot arrived: whole, or (`delta`) the series that changed since the last one.
   * Returns what is wrong with it (the engine is then killed as for a malformed message).
   */
  metrics(engine: EngineProcess, snap: RegistrySnapshot, delta: boolean): string | undefined;
  /** The engine is gone; `reason` says why in words, for logs and the admin answer. */
  exit(engine: EngineProcess, reason: string): void;
}

/** The first child fd after stdin/stdout/stderr and the IPC channel. */
const FIRST_LISTENER_FD = 4;

export class EngineProcess {
  state: EngineState = 'starting';
  startedAt = Date.now();
  readyAt: number | undefined;
  /** When the child said its code is loaded (a standby is only fast after this). */
  loadedAt: number | undefined;
  /** The engine's own state from its last heartbeat (its policy), for /config. */
  engineStatus: Readonly<Record<string, unknown>> | undefined;
  private child: ChildProcess | undefined;
  private readyTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  /** Why we killed it, if we did; reported instead of the bare signal. */
  private killReason: string | undefined;
  private fatalReason: string | undefined;
  private readonly snapshotWaiters: (() => void)[] = [];
  private fds: Partial<Record<ListenerName, number>> = {};

  constructor(
    /** 0 for a standby until it is activated. */
    public generation: number,
    readonly spec: EngineSpec,
    private readonly listeners: readonly HeldListenerFd[],
    private readonly timings: EngineTimings,
    private readonly events: EngineEvents,
    private readonly log: Logger,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Forks and starts at once. */
  start(): void {
    this.fork();
    this.activate(this.generation);
  }

  /** Forks the child; it loads its code and waits for `start` (state `standby`). */
  fork(): void {
    this.state = 'standby';
    const fds: Partial<Record<ListenerName, number>> = {};
    const stdio: (string | number)[] = ['inherit', 'inherit', 'inherit', 'ipc'];
    for (const l of this.listeners) {
      fds[l.name] = FIRST_LISTENER_FD + stdio.length - 4;
      stdio.push(l.fd);
    }
    const child = fork(this.spec.entry, [], {
      env: this.spec.env as NodeJS.ProcessEnv,
      stdio: stdio as ('inherit' | 'ipc' | number)[],
      // never the supervisor's own flags; the engine's heap flags (node-flags.ts)
      execArgv: engineExecArgv(this.spec.env.NODE_OPTIONS),
      serialization: 'json',
    });
    this.child = child;
    child.on('message', (raw: unknown) => this.onMessage(raw));
    child.on('error', (err) => {
      // spawn failure: an 'exit' may never come.
      this.finish(`cannot start: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      const how = signal !== null ? `killed by ${signal}` : `exited with code ${String(code)}`;
      this.finish(this.fatalReason ?? this.killReason ?? how);
    });
    // The child may already have died when we send; the exit handler reports it.
    child.on('disconnect', () => undefined);
    this.fds = fds;
  }

  /** Sends `start`: the engine opens the listeners and has readyTimeoutMs to report ready. */
  activate(generation: number): void {
    if (this.state !== 'standby') return;
    this.state = 'starting';
    this.generation = generation;
    this.startedAt = Date.now();
    this.send({
      t: 'start',
      generation,
      version: this.spec.version,
      fds: this.fds,
      backlog: this.timings.backlog,
      heartbeatMs: this.timings.heartbeatMs,
    } satisfies StartMessage);
    this.readyTimer = setTimeout(
      () => this.kill(`not ready within ${this.timings.readyTimeoutMs} ms`),
      this.timings.readyTimeoutMs,
    );
  }

  /** Ask it to drain; if it has not exited `deadlineMs` + slack later, kill it. */
  drain(deadlineMs: number): void {
    if (this.state === 'exited') return;
    if (this.state === 'starting' || this.state === 'standby') {
      this.kill('abandoned before it was ready');
      return;
    }
    this.state = 'draining';
    this.clearHeartbeat();
    this.send({ t: 'drain', deadlineMs });
    this.killTimer = setTimeout(
      () => this.kill(`did not exit ${deadlineMs} ms after drain`),
      deadlineMs + 2000,
    );
  }

  /** Asks for a snapshot now; resolves when it came (or the engine is gone, or after `timeoutMs`). */
  freshSnapshot(timeoutMs: number): Promise<void> {
    if (this.state !== 'ready' && this.state !== 'draining') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const waiters = this.snapshotWaiters;
      function done(): void {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
      this.send({ t: 'snapshot' });
    });
  }

  private flushSnapshotWaiters(): void {
    for (const w of this.snapshotWaiters.splice(0)) w();
  }

  kill(reason: string): void {
    if (this.state === 'exited' || this.child === undefined) return;
    this.killReason ??= reason;
    this.child.kill('SIGKILL');
  }

  private send(msg: ToEngine): void {
    const c = this.child;
    if (c === undefined || !c.connected) return;
    c.send(msg, (err) => {
      if (err !== null && err !== undefined)
        this.log.debug({ generation: this.generation, err: err.message }, 'ipc send failed');
    });
  }

  private onMessage(raw: unknown): void {
    let msg;
    try {
      msg = parseFromEngine(raw);
    } catch (err) {
      this.kill((err as Error).message);
      return;
    }
    switch (msg.t) {
      case 'loaded':
        this.loadedAt = Date.now();
        return;
      case 'ready':
        if (this.state !== 'starting') return;
        this.state = 'ready';
        this.readyAt = Date.now();
        if (this.readyTimer !== undefined) clearTimeout(this.readyTimer);
        this.armHeartbeat();
        this.events.ready(this);
        return;
      case 'heartbeat': {
        if (this.state === 'ready') this.armHeartbeat();
        // sent only when it changed: the last one stands
        if (msg.status !== undefined) this.engineStatus = msg.status;
        const wrong = this.events.metrics(this, msg.metrics, msg.delta === true);
        if (wrong !== undefined) this.kill(`heartbeat: ${wrong}`);
        this.flushSnapshotWaiters();
        return;
      }
      case 'drained': {
        const wrong = this.events.metrics(this, msg.metrics, false);
        if (wrong !== undefined) this.kill(`drained: ${wrong}`);
        this.flushSnapshotWaiters();
        return;
      }
      case 'fatal':
        this.fatalReason = msg.reason;
        return;
    }
  }

  private armHeartbeat(): void {
    this.clearHeartbeat();
    this.heartbeatTimer = setTimeout(
      () => this.kill(`no heartbeat for ${this.timings.heartbeatTimeoutMs} ms (event loop blocked?)`),
      this.timings.heartbeatTimeoutMs,
    );
  }

  private clearHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private finish(reason: string): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    this.clearHeartbeat();
    if (this.readyTimer !== undefined) clearTimeout(this.readyTimer);
    if (this.killTimer !== undefined) clearTimeout(this.killTimer);
    this.events.exit(this, reason);
    this.flushSnapshotWaiters();
  }
}
