/**
 * The supervisor's state machine (DESIGN §4, §5): owns the held data sockets, runs one active
 * engine generation (restarting it with backoff when it dies), at most one upgrade candidate,
 * and the retiring generations that drain. While no engine is ready it applies the pod's
 * failure mode through the stand-in. No proxying logic and no heavy imports live here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from './log.js';
import { METRICS, SUPERVISOR_METRICS, VERSION } from '../contract.js';
import type { FailureMode, MtlsMode } from '../contract.js';
import { registerProcessMetrics } from '../metrics/process.js';
import { Registry } from '../metrics/registry.js';
import type { Counter, Gauge } from '../metrics/registry.js';
import { EngineProcess } from './engine-process.js';
import type { EngineEvents, EngineSpec, EngineTimings } from './engine-process.js';
import { UpgradeBusyError, UpgradeRequestError } from './errors.js';
import { holdListener, releaseListener } from './held.js';
import type { HeldListener } from './held.js';
import type { ListenerName } from './ipc.js';
import { MetricsLedger } from './ledger.js';
import { InboundGuard } from './guard.js';
import type { InboundGuardOptions } from './guard.js';
import { StandIn } from './standin.js';
import type { InboundDelivery } from '../inbound/target.js';
import type { Target } from './standin.js';

/** The engine entry file inside a bundle version directory. */
export const BUNDLE_ENTRY = 'engine.js';
/** The version name of the engine that ships with the supervisor. */
export const BUILTIN_VERSION = 'builtin';
/** An engine ready at least this long before it died is restarted at once (no backoff). */
const STABLE_MS = 1000;
/** A scrape waits at most this long for engines' fresh snapshots, then uses the last ones. */
const SNAPSHOT_WAIT_MS = 250;
/**
 * A scrape within this long of the last snapshot round's start renders what the ledger holds
 * (that round's numbers, or a newer heartbeat's) instead of asking the engines again: a scrape
 * loop costs the engines at most one snapshot per this period beyond their heartbeats.
 */
const SNAPSHOT_MIN_AGE_MS = 500;
/** A new standby is forked this long after the previous one was used or died. */
const STANDBY_DELAY_MS = 1000;

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

export interface EngineRef {
  readonly generation: number;
  readonly version: string;
}

export interface UpgradeResult {
  readonly ok: boolean;
  readonly at: string;
  readonly durationMs: number;
  /** What serves now. */
  readonly running: EngineRef | undefined;
  readonly previous: EngineRef | undefined;
  /** Failed upgrades: why, and that the previous engine kept serving. */
  readonly reason?: string;
  readonly rolledBack?: boolean;
}

interface Candidate {
  readonly engine: EngineProcess;
  readonly previous: EngineRef | undefined;
  readonly startedAt: number;
  readonly resolve: (r: UpgradeResult) => void;
}

type Phase = 'running' | 'draining' | 'stopped';

const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function ref(e: EngineProcess | undefined): EngineRef | undefined {
  return e === undefined ? undefined : { generation: e.generation, version: e.spec.version };
}

export class Supervisor {
  private held: HeldListener[] = [];
  private standIn: StandIn | undefined;
  private active: EngineProcess | undefined;
  private candidate: Candidate | undefined;
  private readonly retiring = new Set<EngineProcess>();
  private spare: EngineProcess | undefined;
  private spareTimer: NodeJS.Timeout | undefined;
  private spec: EngineSpec;
  private generation = 0;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  private noReadySince: number | undefined = Date.now();
  /** An engine failed since the last time one was ready (vs. still starting up). */
  private failedSinceReady = false;
  private degradedSince: number | undefined;
  private refusingSince: number | undefined;
  private phase: Phase = 'running';
  private drainWaiters: (() => void)[] = [];
  private lastUpgrade: UpgradeResult | undefined;

  readonly metrics = new Registry();
  private readonly degradedGauge: Gauge;
  private readonly restartsCounter: Counter;
  private readonly relayedCounter: Counter;
  private readonly resetCounter: Counter;
  private readonly generationGauge: Gauge;
  private readonly snapshotRequests: Counter;
  /** the snapshot round in flight, shared by every scrape that arrives meanwhile */
  private snapshotRound: Promise<void> | undefined;
  private lastRoundAt = 0;
  private readonly ledger: MetricsLedger;
  private readonly guard: InboundGuard;

  constructor(
    private readonly opts: SupervisorOptions,
    private readonly log: Logger,
  ) {
    this.spec = opts.builtin;
    this.guard = new InboundGuard({ ...opts.policy, log });
    const m = this.metrics;
    this.degradedGauge = m.gauge(
      METRICS.proxyDegraded,
      '1 while the supervisor relays at L4 for a missing engine.',
    );
    this.restartsCounter = m.counter(
      METRICS.engineRestarts,
      'Engine restarts by the supervisor after an unplanned exit.',
    );
    m.gauge(METRICS.buildInfo, 'Build information; the value is always 1.', ['version', 'node'])
      .child(VERSION, process.version)
      .set(1);
    this.relayedCounter = m.counter(
      SUPERVISOR_METRICS.relayed,
      'Connections relayed at L4 by the supervisor in degraded mode.',
      ['listener'],
    );
    this.resetCounter = m.counter(
      SUPERVISOR_METRICS.reset,
      'Connections the supervisor reset because no engine could take them.',
      ['listener', 'reason'],
    );
    this.generationGauge = m.gauge(
      SUPERVISOR_METRICS.generation,
      'Generation number of the engine that serves.',
    );
    this.snapshotRequests = m.counter(
      SUPERVISOR_METRICS.snapshotRequests,
      'Metrics snapshot requests the supervisor sent to engines over IPC (scrapes are coalesced).',
    );
    this.snapshotRequests.child().inc(0);
    this.degradedGauge.child().set(0);
    this.restartsCounter.child().inc(0);
    // The supervisor's own cost; each engine reports its own as process="engine".
    registerProcessMetrics(m, 'supervisor');
    this.ledger = new MetricsLedger(
      new Set([METRICS.proxyDegraded, METRICS.engineRestarts, METRICS.buildInfo]),
    );
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
        relayed: (name) => this.relayedCounter.child(name).inc(),
        reset: (name, reason) => this.resetCounter.child(name, reason).inc(),
      },
      this.log,
      this.opts.maxConnections,
    );
    this.active = this.spawn(this.spec);
    this.evaluate();
    return this.held;
  }

  // ---- what the HTTP servers ask -------------------------------------------------------

  readiness(): { ready: boolean; reason: string } {
    if (this.phase !== 'running') return { ready: false, reason: this.phase };
    if (this.active?.state === 'ready')
      return { ready: true, reason: `engine generation ${this.active.generation} ready` };
    if (this.standIn?.mode === 'relay') return { ready: true, reason: 'degraded: supervisor relays at L4' };
    return { ready: false, reason: 'no engine ready' };
  }

  liveness(): { live: boolean; reason: string } {
    if (this.opts.failureMode === 'restart' && this.phase === 'running' && this.noReadySince !== undefined) {
      const down = Date.now() - this.noReadySince;
      if (down > this.opts.restartGraceMs) return { live: false, reason: `no engine ready for ${down} ms` };
    }
    return { live: true, reason: 'supervisor running' };
  }

  /**
   * Renders with fresh engine numbers: one snapshot round at a time (concurrent scrapes share
   * it), none within SNAPSHOT_MIN_AGE_MS of the last one, each bounded by SNAPSHOT_WAIT_MS.
   */
  async renderMetrics(): Promise<string> {
    await this.freshSnapshots();
    return this.ledger.render(this.metrics);
  }

  private freshSnapshots(): Promise<void> {
    if (this.snapshotRound !== undefined) return this.snapshotRound;
    if (Date.now() - this.lastRoundAt < SNAPSHOT_MIN_AGE_MS) return Promise.resolve();
    const engines = this.engines().filter((e) => e.state === 'ready' || e.state === 'draining');
    if (engines.length === 0) return Promise.resolve();
    this.snapshotRequests.child().inc(engines.length);
    this.lastRoundAt = Date.now();
    const round = Promise.all(engines.map((e) => e.freshSnapshot(SNAPSHOT_WAIT_MS))).then(() => {
      this.snapshotRound = undefined;
    });
    this.snapshotRound = round;
    return round;
  }

  status(): Record<string, unknown> {
    const engines = [this.active, this.candidate?.engine, ...this.retiring, this.spare]
      .filter((e): e is EngineProcess => e !== undefined)
      .map((e) => ({
        generation: e.generation,
        version: e.spec.version,
        pid: e.pid,
        state: e.state,
        role:
          e === this.active
            ? 'active'
            : e === this.candidate?.engine
              ? 'candidate'
              : e === this.spare
                ? 'standby'
                : 'retiring',
        startedAt: new Date(e.startedAt).toISOString(),
        readyAt: e.readyAt === undefined ? null : new Date(e.readyAt).toISOString(),
        loaded: e.loadedAt !== undefined,
      }));
    return {
      build: VERSION,
      version: this.spec.version,
      generation: this.active?.generation ?? null,
      phase: this.phase,
      serving: this.active?.state === 'ready' ? 'engine' : (this.standIn?.mode ?? 'waiting'),
      failureMode: this.opts.failureMode,
      mtlsMode: this.opts.mtlsMode,
      degraded: this.standIn?.mode === 'relay',
      restarts: this.restartsCounter.child().value,
      overrides: this.spec.overrides,
      listeners: this.held.map((l) => ({ name: l.name, host: l.host, port: l.port })),
      engines,
      lastUpgrade: this.lastUpgrade ?? null,
      // The serving engine's policy as of its last heartbeat (docs/policy-distribution.md).
      policy: this.active?.engineStatus?.policy ?? null,
      // The serving engine's own view (config, listeners, mesh, upstream connections).
      engine: this.active?.engineStatus ?? null,
    };
  }

  // ---- upgrades ------------------------------------------------------------------------

  /**
   * Starts a new engine beside the running one; when it is ready the old one drains. Resolves
   * with the outcome (a failed candidate is abandoned and the old engine keeps serving).
   * Throws UpgradeRequestError (bad request) or UpgradeBusyError before starting anything.
   */
  upgrade(req: UpgradeRequest): Promise<UpgradeResult> {
    if (this.phase !== 'running') throw new UpgradeBusyError(`the proxy is ${this.phase}`);
    if (this.candidate !== undefined) {
      throw new UpgradeBusyError(
        `an upgrade to generation ${this.candidate.engine.generation} is in progress`,
      );
    }
    const spec = this.resolveSpec(req);
    const previous = ref(this.active);
    this.log.info(
      { event: 'upgrade_started', version: spec.version, overrides: spec.overrides, previous },
      'upgrade started',
    );
    return new Promise((resolve) => {
      const engine = this.spawn(spec);
      this.candidate = {
        engine,
        previous,
        startedAt: Date.now(),
        resolve: (r) => {
          this.lastUpgrade = r;
          resolve(r);
        },
      };
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
    if (this.phase === 'running') {
      this.phase = 'draining';
      this.log.info({ event: 'drain_started', deadlineMs }, 'draining: engines stop accepting');
      if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.dropSpare('draining');
      this.evaluate();
    }
    for (const e of this.engines()) e.drain(deadlineMs);
    return this.engines().length === 0
      ? Promise.resolve()
      : new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Closes the held sockets: connections still in the backlog are reset by the kernel. */
  close(): void {
    this.phase = 'stopped';
    this.dropSpare('stopping');
    this.standIn?.destroyAll();
    if (this.waitTimer !== undefined) clearTimeout(this.waitTimer);
    for (const l of this.held) releaseListener(l);
    this.held = [];
  }

  private engines(): EngineProcess[] {
    return [this.active, this.candidate?.engine, ...this.retiring, this.spare].filter(
      (e): e is EngineProcess => e !== undefined && e.state !== 'exited',
    );
  }

  // ---- engine lifecycle ------------------------------------------------------------------

  private spawn(spec: EngineSpec): EngineProcess {
    this.generation += 1;
    const engine = this.create(spec, this.generation);
    engine.start();
    this.log.info(
      {
        event: 'engine_starting',
        generation: engine.generation,
        version: spec.version,
        enginePid: engine.pid,
      },
      'engine starting',
    );
    return engine;
  }

  private create(spec: EngineSpec, generation: number): EngineProcess {
    const events: EngineEvents = {
      ready: (e) => this.onReady(e),
      metrics: (e, snap) => {
        // What the degraded relay must reset if this engine dies (DESIGN §4).
        if (e === this.active) this.guard.report(e.engineStatus?.authzPorts);
        this.ledger.update(e.generation, snap);
      },
      exit: (e, reason) => this.onExit(e, reason),
    };
    return new EngineProcess(
      generation,
      spec,
      this.held.map((l) => ({ name: l.name, fd: l.fd })),
      this.opts.timings,
      events,
      this.log,
    );
  }

  /** Forks a standby for the running spec after `delayMs` (when standby is on and none waits). */
  private ensureSpare(delayMs: number): void {
    if (
      !this.opts.standby ||
      this.phase !== 'running' ||
      this.spare !== undefined ||
      this.spareTimer !== undefined
    )
      return;
    this.spareTimer = setTimeout(() => {
      this.spareTimer = undefined;
      if (this.phase !== 'running' || this.spare !== undefined) return;
      const spare = this.create(this.spec, 0);
      this.spare = spare;
      spare.fork();
      this.log.info(
        { event: 'standby_forked', version: this.spec.version, enginePid: spare.pid },
        'standby engine forked',
      );
    }, delayMs);
  }

  private dropSpare(reason: string): void {
    if (this.spareTimer !== undefined) clearTimeout(this.spareTimer);
    this.spareTimer = undefined;
    this.spare?.kill(reason);
  }

  /** The standby, activated as the next generation, if it runs the current spec. */
  private takeSpare(): EngineProcess | undefined {
    const spare = this.spare;
    if (spare === undefined || spare.state !== 'standby' || spare.spec !== this.spec) return undefined;
    this.spare = undefined;
    this.generation += 1;
    spare.activate(this.generation);
    this.log.info(
      {
        event: 'engine_starting',
        generation: spare.generation,
        version: spare.spec.version,
        enginePid: spare.pid,
        standby: true,
      },
      'standby engine activated',
    );
    this.ensureSpare(STANDBY_DELAY_MS);
    return spare;
  }

  private onReady(e: EngineProcess): void {
    const c = this.candidate;
    if (c !== undefined && c.engine === e) {
      const old = this.active;
      this.candidate = undefined;
      this.active = e;
      this.spec = e.spec;
      if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      if (old !== undefined && old.state !== 'exited') {
        this.retiring.add(old);
        old.drain(this.opts.drainMs);
      }
      const result: UpgradeResult = {
        ok: true,
        at: new Date().toISOString(),
        durationMs: Date.now() - c.startedAt,
        running: ref(e),
        previous: c.previous,
      };
      this.log.info(
        { event: 'upgrade_succeeded', ...result },
        'upgrade succeeded: the previous engine drains',
      );
      c.resolve(result);
    } else if (e !== this.active) {
      return;
    }
    this.log.info(
      {
        event: 'engine_ready',
        generation: e.generation,
        version: e.spec.version,
        enginePid: e.pid,
        startMs: (e.readyAt ?? 0) - e.startedAt,
      },
      'engine ready',
    );
    this.generationGauge.child().set(e.generation);
    if (this.spare !== undefined && this.spare.spec !== this.spec) this.dropSpare('the running spec changed');
    this.ensureSpare(STANDBY_DELAY_MS);
    this.evaluate();
  }

  private onExit(e: EngineProcess, reason: string): void {
    if (e === this.spare) {
      this.spare = undefined;
      if (this.phase === 'running') {
        this.log.info({ event: 'standby_exited', reason }, 'standby engine exited');
        this.ensureSpare(STANDBY_DELAY_MS);
      }
      this.settleDrain();
      return;
    }
    this.ledger.retire(e.generation);
    const c = this.candidate;
    if (c !== undefined && c.engine === e) {
      this.candidate = undefined;
      const result: UpgradeResult = {
        ok: false,
        at: new Date().toISOString(),
        durationMs: Date.now() - c.startedAt,
        running: ref(this.active),
        previous: c.previous,
        reason: `generation ${e.generation} (version ${e.spec.version}) ${reason}`,
        rolledBack: true,
      };
      this.log.warn(
        { event: 'upgrade_rolled_back', ...result },
        'upgrade failed: the previous engine keeps serving',
      );
      c.resolve(result);
      if (this.active === undefined && this.phase === 'running' && this.restartTimer === undefined)
        this.scheduleRestart(e);
    } else if (e === this.active) {
      this.active = undefined;
      if (this.phase === 'running') {
        this.log.warn(
          {
            event: 'engine_exited',
            generation: e.generation,
            version: e.spec.version,
            reason,
            wasReady: e.readyAt !== undefined,
          },
          'engine exited unexpectedly',
        );
        this.failedSinceReady = true;
        this.scheduleRestart(e);
      }
    } else {
      this.retiring.delete(e);
      this.log.info(
        { event: 'engine_retired', generation: e.generation, reason },
        'engine finished draining',
      );
    }
    this.evaluate();
    this.settleDrain();
  }

  /** Resolves drain() once nothing runs any more. */
  private settleDrain(): void {
    if (this.phase === 'running' || this.engines().length > 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /** Exponential backoff on consecutive failures; an engine that served a while restarts at once. */
  private scheduleRestart(dead: EngineProcess): void {
    if (dead.readyAt !== undefined && Date.now() - dead.readyAt >= STABLE_MS) this.failures = 0;
    // A standby replaces an engine that had served; one that never got ready backs off.
    if (dead.readyAt !== undefined) {
      const spare = this.takeSpare();
      if (spare !== undefined) {
        this.restartsCounter.child().inc();
        this.active = spare;
        return;
      }
    }
    const { baseMs, maxMs } = this.opts.backoff;
    const delay = this.failures === 0 ? 0 : Math.min(maxMs, baseMs * 2 ** (this.failures - 1));
    this.failures += 1;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.phase !== 'running' || this.active !== undefined) return;
      this.restartsCounter.child().inc();
      // A standby forked meanwhile is as good as a fresh fork, and saves one.
      this.active = this.takeSpare() ?? this.spawn(this.spec);
    }, delay);
  }

  // ---- failure modes -------------------------------------------------------------------

  /** Applies the failure mode to the current situation; called on every transition. */
  private evaluate(): void {
    if (this.waitTimer !== undefined) clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    const standIn = this.standIn;
    if (standIn === undefined) return;
    const ready = this.active?.state === 'ready';
    if (ready) {
      this.noReadySince = undefined;
      this.failedSinceReady = false;
    } else {
      this.noReadySince ??= Date.now();
    }
    if (ready || this.phase !== 'running') {
      this.standDown();
      return;
    }
    const waited = Date.now() - (this.noReadySince ?? Date.now());
    const waitOver = waited >= this.opts.engineWaitMs;
    if (this.opts.failureMode === 'degrade' && (this.failedSinceReady || waitOver)) {
      if (this.opts.mtlsMode === 'strict') {
        if (this.refusingSince === undefined) {
          this.refusingSince = Date.now();
          this.log.warn(
            {
              event: 'degraded_mode_refused',
              reason: 'strict mTLS: relaying would bypass mTLS',
              mtlsMode: 'strict',
            },
            'degraded mode refused under strict mTLS: connections are reset until an engine is ready',
          );
        }
        standIn.start('reset');
      } else {
        if (this.degradedSince === undefined) {
          this.degradedSince = Date.now();
          this.degradedGauge.child().set(1);
          const governed = this.guard.current();
          this.log.warn(
            {
              event: 'degraded_mode_started',
              failureMode: 'degrade',
              reason: 'no engine ready',
              // inbound ports reset instead of relayed; null: unknown, so all of them
              authzPorts: governed ?? null,
            },
            'degraded mode: the supervisor relays at L4 without mTLS or L7 telemetry; inbound ports under authorization are reset',
          );
        }
        standIn.start('relay');
      }
      return;
    }
    if (waitOver) {
      if (this.refusingSince === undefined) {
        this.refusingSince = Date.now();
        this.log.warn(
          { event: 'engine_wait_expired', failureMode: this.opts.failureMode, waitedMs: waited },
          'no engine ready: waiting connections are reset until one is',
        );
      }
      standIn.start('reset');
      return;
    }
    this.waitTimer = setTimeout(() => this.evaluate(), this.opts.engineWaitMs - waited);
  }

  private standDown(): void {
    this.standIn?.stop();
    if (this.degradedSince !== undefined) {
      this.log.warn(
        { event: 'degraded_mode_stopped', durationMs: Date.now() - this.degradedSince },
        'degraded mode stopped: an engine serves again',
      );
      this.degradedSince = undefined;
      this.degradedGauge.child().set(0);
    }
    if (this.refusingSince !== undefined) {
      this.log.info(
        { event: 'connection_resets_stopped', durationMs: Date.now() - this.refusingSince },
        'an engine serves again',
      );
      this.refusingSince = undefined;
    }
  }
}
