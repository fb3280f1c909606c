/**
 * The supervisor's shell (DESIGN §4, §5): owns the held data sockets, the engine processes, the
 * stand-in and the timers, turns what they report into events for `decide` (decide.ts, where
 * every decision lives: restarts with backoff, the standby, upgrades and rollback, drain, the
 * failure mode), and applies the effects it returns in one place (`apply`). No proxying logic
 * and no heavy imports live here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from './log.js';
import { METRICS, SUPERVISOR_METRICS, VERSION } from '../contract.js';
import type { FailureMode, MtlsMode } from '../contract.js';
import { registerProcessMetrics } from '../metrics/process.js';
import { Registry } from '../metrics/registry.js';
import type { Counter, CounterChild, GaugeChild } from '../metrics/registry.js';
import { decide, initialState, liveEngines, liveness, readiness, serving, upgradeBusy } from './decide.js';
import type { Effect, EngineId, LogEffect, SupervisorEvent, SupervisorState, TimerName } from './decide.js';
import type { UpgradeResult } from './decide.js';
import { EngineProcess } from './engine-process.js';
import type { EngineSpec, EngineTimings } from './engine-process.js';
import { UpgradeBusyError, UpgradeRequestError } from './errors.js';
import { holdListener, releaseListener } from './held.js';
import type { HeldListener } from './held.js';
import type { ListenerName } from './ipc.js';
import { MetricsLedger } from './ledger.js';
import { InboundGuard } from './guard.js';
import type { InboundGuardOptions } from './guard.js';
import { SnapshotRounds } from './snapshots.js';
import { StandIn } from './standin.js';
import type { InboundDelivery } from '../inbound/target.js';
import type { Target } from './standin.js';
import { ENGINE_VERSION_NAME } from '../values.js';

export type { EngineRef, UpgradeResult } from './decide.js';

/** The engine entry file inside a bundle version directory. */
export const BUNDLE_ENTRY = 'engine.js';
/** The version name of the engine that ships with the supervisor. */
export const BUILTIN_VERSION = 'builtin';

export interface SupervisorOptions {
  readonly listeners: readonly {
    readonly name: ListenerName;
    readonly host: string;
    readonly port: number;
    /** an IPv6 twin: a host without IPv6 logs it and goes on without it */
    readonly optional?: boolean;
  }[];
  /** Explicit-mode targets, used when a connection was not redirected. */
  readonly targets: Readonly<Partial<Record<ListenerName, Target>>>;
  /** The engine's per-listener connection cap, which the degraded relay keeps too. */
  readonly maxConnections?: number;
  /** Where the degraded relay delivers inbound connections (the engine's rule: the pod IP). */
  readonly delivery: InboundDelivery;
  /** Where the degraded relay learns which inbound ports an authorization policy governs. */
  readonly policy: Omit<InboundGuardOptions, 'log'>;
  readonly failureMode: FailureMode;
  readonly mtlsMode: MtlsMode;
  /** Graceful drain bound for retiring engines and shutdown. */
  readonly drainMs: number;
  /** fail-closed/restart: how long connections wait in the backlog for an engine before reset. */
  readonly engineWaitMs: number;
  /** restart: liveness fails once no engine has been ready for this long. */
  readonly restartGraceMs: number;
  readonly timings: EngineTimings;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  /** The engine that ships with this build. */
  readonly builtin: EngineSpec;
  /** Directory of engine versions for upgrades (`<root>/<version>/engine.js`); none: builtin only. */
  readonly bundleRoot: string | undefined;
  /** Keep a forked, loaded engine waiting, so a crash is answered in milliseconds. */
  readonly standby: boolean;
  /** Validates an upgrade's config overrides; returns the env they become, or throws UpgradeRequestError. */
  readonly checkOverrides: (config: Readonly<Record<string, unknown>>) => Record<string, string>;
}

export interface UpgradeRequest {
  readonly version?: string;
  readonly config?: Readonly<Record<string, unknown>>;
}

const VERSION_NAME = ENGINE_VERSION_NAME;

/** The supervisor's own series, registered once; the decision sets them through effects. */
interface OwnMetrics {
  readonly degraded: GaugeChild;
  readonly restarts: CounterChild;
  readonly generation: GaugeChild;
  readonly relayed: Counter;
  readonly reset: Counter;
  readonly snapshotRequests: CounterChild;
}

function ownMetrics(m: Registry): OwnMetrics {
  const gauge = (name: string, help: string): GaugeChild => m.gauge(name, help).child();
  const counter = (name: string, help: string): CounterChild => m.counter(name, help).child();
  // registered in the order /metrics has always listed them
  const degraded = gauge(METRICS.proxyDegraded, '1 while the supervisor relays at L4 for a missing engine.');
  const restarts = counter(
    METRICS.engineRestarts,
    'Engine restarts by the supervisor after an unplanned exit.',
  );
  m.gauge(METRICS.buildInfo, 'Build information; the value is always 1.', ['version', 'node'])
    .child(VERSION, process.version)
    .set(1);
  const own: OwnMetrics = {
    degraded,
    restarts,
    relayed: m.counter(
      SUPERVISOR_METRICS.relayed,
      'Connections relayed at L4 by the supervisor in degraded mode.',
      ['listener'],
    ),
    reset: m.counter(
      SUPERVISOR_METRICS.reset,
      'Connections the supervisor reset because no engine could take them.',
      ['listener', 'reason'],
    ),
    generation: gauge(SUPERVISOR_METRICS.generation, 'Generation number of the engine that serves.'),
    snapshotRequests: counter(
      SUPERVISOR_METRICS.snapshotRequests,
      'Metrics snapshot requests the supervisor sent to engines over IPC (scrapes are coalesced).',
    ),
  };
  own.snapshotRequests.inc(0);
  own.degraded.set(0);
  own.restarts.inc(0);
  // The supervisor's own cost; each engine reports its own as process="engine".
  registerProcessMetrics(m, 'supervisor');
  return own;
}

export class Supervisor {
  private state: SupervisorState;
  private held: HeldListener[] = [];
  private standIn: StandIn | undefined;
  /** the engine processes of `state` that have not exited, by id */
  private readonly procs = new Map<EngineId, EngineProcess>();
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private readonly drainWaiters: (() => void)[] = [];
  private upgradeWaiter: ((r: UpgradeResult) => void) | undefined;

  readonly metrics = new Registry();
  private readonly own: OwnMetrics;
  private readonly snapshots: SnapshotRounds;
  private readonly ledger: MetricsLedger;
  private readonly guard: InboundGuard;

  constructor(
    private readonly opts: SupervisorOptions,
    private readonly log: Logger,
  ) {
    this.state = initialState(opts, opts.builtin, Date.now());
    this.guard = new InboundGuard({ ...opts.policy, log });
    this.own = ownMetrics(this.metrics);
    this.snapshots = new SnapshotRounds((n) => this.own.snapshotRequests.inc(n));
    this.ledger = new MetricsLedger(
      new Set([METRICS.proxyDegraded, METRICS.engineRestarts, METRICS.buildInfo]),
    );
  }

  /** The spec restarts and upgrades start from. */
  private get spec(): EngineSpec {
    return this.state.spec;
  }

  /** Binds every data socket (fails before any engine runs), then starts the first engine. */
  async start(): Promise<readonly HeldListener[]> {
    for (const l of this.opts.listeners) {
      try {
        this.held.push(await holdListener(l.name, l.host, l.port, this.opts.timings.backlog));
      } catch (err) {
        if (l.optional !== true) throw err;
        this.log.warn(
          { event: 'listener_skipped', listener: l.name, host: l.host, port: l.port, err },
          `cannot bind ${l.name} on [${l.host}]:${l.port} (no IPv6 here?): going on without it`,
        );
      }
    }
    this.standIn = new StandIn(
      this.held,
      this.opts.targets,
      this.opts.delivery,
      (port) => this.guard.refuses(port),
      this.opts.timings.backlog,
      {
        relayed: (name) => this.own.relayed.child(name).inc(),
        reset: (name, reason) => this.own.reset.child(name, reason).inc(),
      },
      this.log,
      this.opts.maxConnections,
    );
    this.feed({ t: 'start', at: Date.now() });
    return this.held;
  }

  // ---- what the HTTP servers ask -------------------------------------------------------

  readiness(): { ready: boolean; reason: string } {
    return readiness(this.state);
  }

  liveness(): { live: boolean; reason: string } {
    return liveness(this.state, Date.now());
  }

  /** Renders with fresh engine numbers (coalesced: snapshots.ts). */
  async renderMetrics(): Promise<string> {
    await this.snapshots.fresh([...this.procs.values()]);
    return this.ledger.render(this.metrics);
  }

  status(): Record<string, unknown> {
    const s = this.state;
    const engines = liveEngines(s).flatMap(({ engine, role }) => {
      const e = this.procs.get(engine.id);
      if (e === undefined) return [];
      return [
        {
          generation: e.generation,
          version: e.spec.version,
          pid: e.pid,
          state: e.state,
          role,
          startedAt: new Date(e.startedAt).toISOString(),
          readyAt: e.readyAt === undefined ? null : new Date(e.readyAt).toISOString(),
          loaded: e.loadedAt !== undefined,
        },
      ];
    });
    const active = s.active === undefined ? undefined : this.procs.get(s.active.id);
    return {
      build: VERSION,
      version: s.spec.version,
      generation: s.active?.generation ?? null,
      phase: s.phase,
      serving: serving(s),
      failureMode: this.opts.failureMode,
      mtlsMode: this.opts.mtlsMode,
      degraded: s.standIn === 'relay',
      restarts: this.own.restarts.value,
      overrides: s.spec.overrides,
      listeners: this.held.map((l) => ({ name: l.name, host: l.host, port: l.port })),
      engines,
      lastUpgrade: s.lastUpgrade ?? null,
      // The serving engine's policy as of its last heartbeat (docs/policy-distribution.md).
      policy: active?.engineStatus?.policy ?? null,
      // The serving engine's own view (config, listeners, mesh, upstream connections).
      engine: active?.engineStatus ?? null,
    };
  }

  // ---- upgrades ------------------------------------------------------------------------

  /**
   * Starts a new engine beside the running one; when it is ready the old one drains. Resolves
   * with the outcome (a failed candidate is abandoned and the old engine keeps serving).
   * Throws UpgradeRequestError (bad request) or UpgradeBusyError before starting anything.
   */
  upgrade(req: UpgradeRequest): Promise<UpgradeResult> {
    const busy = upgradeBusy(this.state);
    if (busy !== undefined) throw new UpgradeBusyError(busy);
    const spec = this.resolveSpec(req);
    return new Promise((resolve) => {
      this.upgradeWaiter = resolve;
      this.feed({ t: 'upgrade', spec, at: Date.now() });
    });
  }

  private resolveSpec(req: UpgradeRequest): EngineSpec {
    const errors: string[] = [];
    let version = this.spec.version;
    let entry = this.spec.entry;
    if (req.version !== undefined) {
      if (req.version === BUILTIN_VERSION) {
        version = BUILTIN_VERSION;
        entry = this.opts.builtin.entry;
      } else if (!VERSION_NAME.test(req.version)) {
        errors.push(
          `version ${JSON.stringify(req.version)} is not a bundle directory name ([A-Za-z0-9._-], no slashes)`,
        );
      } else if (this.opts.bundleRoot === undefined) {
        errors.push(
          `version ${JSON.stringify(req.version)} asked for, but no engine bundle root is configured`,
        );
      } else {
        const candidateEntry = join(this.opts.bundleRoot, req.version, BUNDLE_ENTRY);
        if (!existsSync(candidateEntry)) errors.push(`no engine bundle at ${candidateEntry}`);
        version = req.version;
        entry = candidateEntry;
      }
    }
    let overrides = this.spec.overrides;
    if (req.config !== undefined) {
      try {
        overrides = { ...overrides, ...this.opts.checkOverrides(req.config) };
      } catch (err) {
        if (err instanceof UpgradeRequestError) errors.push(...err.errors);
        else throw err;
      }
    }
    if (errors.length > 0) throw new UpgradeRequestError(errors);
    return { version, entry, overrides, env: { ...this.opts.builtin.env, ...overrides } };
  }

  // ---- drain and shutdown --------------------------------------------------------------

  /** Stops serving: every engine drains, none is restarted. Resolves when all have exited. */
  drain(deadlineMs = this.opts.drainMs): Promise<void> {
    const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    this.feed({ t: 'drain', deadlineMs, at: Date.now() });
    return drained;
  }

  /** Closes the held sockets: connections still in the backlog are reset by the kernel. */
  close(): void {
    this.feed({ t: 'close', at: Date.now() });
  }

  // ---- events in, effects out ------------------------------------------------------------

  private feed(event: SupervisorEvent): void {
    const step = decide(this.state, event);
    this.state = step.state;
    for (const fx of step.effects) this.apply(fx);
  }

  /** The one place where decisions touch the world. */
  private apply(fx: Effect): void {
    switch (fx.t) {
      case 'spawn':
        this.create(fx.id, fx.spec, fx.generation).start();
        return;
      case 'fork':
        this.create(fx.id, fx.spec, 0).fork();
        return;
      case 'activate':
        this.procs.get(fx.id)?.activate(fx.generation);
        return;
      case 'drain':
        this.procs.get(fx.id)?.drain(fx.deadlineMs);
        return;
      case 'kill':
        this.procs.get(fx.id)?.kill(fx.reason);
        return;
      case 'standIn':
        if (fx.mode === 'stop') this.standIn?.stop();
        else if (fx.mode === 'destroy') this.standIn?.destroyAll();
        else this.standIn?.start(fx.mode);
        return;
      case 'release':
        for (const l of this.held) releaseListener(l);
        this.held = [];
        return;
      case 'arm': {
        clearTimeout(this.timers.get(fx.timer));
        const timer = fx.timer;
        this.timers.set(
          timer,
          setTimeout(() => {
            this.timers.delete(timer);
            this.feed({ t: 'timer', timer, at: Date.now() });
          }, fx.ms),
        );
        return;
      }
      case 'cancel':
        clearTimeout(this.timers.get(fx.timer));
        this.timers.delete(fx.timer);
        return;
      case 'degradedGauge':
        this.own.degraded.set(fx.value);
        return;
      case 'generationGauge':
        this.own.generation.set(fx.generation);
        return;
      case 'countRestart':
        this.own.restarts.inc();
        return;
      case 'retireMetrics':
        this.ledger.retire(fx.generation);
        return;
      case 'upgradeDone': {
        const w = this.upgradeWaiter;
        this.upgradeWaiter = undefined;
        w?.(fx.result);
        return;
      }
      case 'drained':
        for (const w of this.drainWaiters.splice(0)) w();
        return;
      case 'log':
        this.write(fx);
        return;
    }
  }

  private write(fx: LogEffect): void {
    const obj: Record<string, unknown> = { event: fx.event, ...fx.fields };
    if (fx.pidOf !== undefined) obj.enginePid = this.procs.get(fx.pidOf)?.pid;
    if (fx.withAuthzPorts === true) obj.authzPorts = this.guard.current() ?? null;
    if (fx.level === 'warn') this.log.warn(obj, fx.msg);
    else this.log.info(obj, fx.msg);
  }

  private create(id: EngineId, spec: EngineSpec, generation: number): EngineProcess {
    const engine = new EngineProcess(
      generation,
      spec,
      this.held.map((l) => ({ name: l.name, fd: l.fd })),
      this.opts.timings,
      {
        ready: () => this.feed({ t: 'ready', id, at: Date.now() }),
        metrics: (e, snap, delta) => {
          // What the degraded relay must reset if this engine dies (DESIGN §4).
          if (this.state.active?.id === id) this.guard.report(e.engineStatus?.authzPorts);
          if (delta) return this.ledger.patch(e.generation, snap);
          this.ledger.update(e.generation, snap);
          return undefined;
        },
        exit: (_e, reason) => {
          this.procs.delete(id);
          this.feed({ t: 'exit', id, reason, at: Date.now() });
        },
      },
      this.log,
    );
    this.procs.set(id, engine);
    return engine;
  }
}
