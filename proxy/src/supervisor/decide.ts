/**
 * The supervisor's decision as data (DESIGN §4, §5; STYLE #1): `decide(state, event)` returns
 * the next state and the effects to carry out, and touches nothing. `supervisor.ts` holds the
 * state, turns sockets, child processes and timers into events, and applies the effects in one
 * place. docs/supervisor.md has the transitions as a table; test/proxy/supervisor/decide.test.ts
 * goes through every one.
 *
 * Engines are named by an id of this model (a standby has generation 0 until it is activated).
 * A spec is a value made once per start or upgrade request, so "the running spec" is compared by
 * identity, as the request that made it.
 */
import type { FailureMode, MtlsMode } from '../contract.js';
import type { EngineSpec } from './engine-process.js';
import type { StandInMode } from './standin.js';

/** An engine ready at least this long before it died is restarted at once (no backoff). */
export const STABLE_MS = 1000;
/** A new standby is forked this long after the previous one was used or died. */
export const STANDBY_DELAY_MS = 1000;

/** What the decision depends on besides its state (SupervisorOptions has these fields). */
export interface DecisionOptions {
  readonly failureMode: FailureMode;
  readonly mtlsMode: MtlsMode;
  /** fail-closed/restart: how long connections wait for an engine before reset; degrade at start-up: before relaying. */
  readonly engineWaitMs: number;
  /** restart: liveness fails once no engine has been ready for this long. */
  readonly restartGraceMs: number;
  /** Drain bound for an engine an upgrade replaces. */
  readonly drainMs: number;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  /** Keep a forked, loaded engine waiting. */
  readonly standby: boolean;
}

export type EngineId = number;
export type Phase = 'running' | 'draining' | 'stopped';
export type TimerName = 'restart' | 'wait' | 'standby';
export type EngineRole = 'active' | 'candidate' | 'retiring' | 'standby';

/**
 * One engine as the decision sees it. `state` follows the engine process: a standby or starting
 * engine told to drain is killed and keeps its state until its exit arrives.
 */
export interface EngineView {
  readonly id: EngineId;
  readonly generation: number;
  readonly spec: EngineSpec;
  readonly state: 'standby' | 'starting' | 'ready' | 'draining';
  readonly startedAt: number;
  readonly readyAt: number | undefined;
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

export interface Candidate {
  readonly engine: EngineView;
  readonly previous: EngineRef | undefined;
  readonly startedAt: number;
}

export interface SupervisorState {
  readonly opts: DecisionOptions;
  /** The data sockets are held and the stand-in exists (start done). */
  readonly listening: boolean;
  readonly phase: Phase;
  /** What a restart or a standby runs: the last spec that became ready (or the builtin one). */
  readonly spec: EngineSpec;
  readonly active: EngineView | undefined;
  readonly candidate: Candidate | undefined;
  readonly retiring: readonly EngineView[];
  readonly spare: EngineView | undefined;
  readonly nextId: EngineId;
  /** The last generation number given out. */
  readonly generation: number;
  /** Consecutive failed starts, for the backoff. */
  readonly failures: number;
  /** Which timers run (their handles live in the shell). */
  readonly timers: Readonly<Record<TimerName, boolean>>;
  readonly noReadySince: number | undefined;
  /** An engine failed since the last time one was ready (vs. still starting up). */
  readonly failedSinceReady: boolean;
  readonly degradedSince: number | undefined;
  readonly refusingSince: number | undefined;
  /** What the stand-in does on the held sockets; undefined: nothing (an engine accepts, or they wait). */
  readonly standIn: StandInMode | undefined;
  readonly lastUpgrade: UpgradeResult | undefined;
}

export type SupervisorEvent =
  /** The data sockets are held: start the first engine. */
  | { readonly t: 'start'; readonly at: number }
  | { readonly t: 'ready'; readonly id: EngineId; readonly at: number }
  /** An engine process is gone (crash, kill, fatal, timeouts, or a clean exit after drain). */
  | { readonly t: 'exit'; readonly id: EngineId; readonly reason: string; readonly at: number }
  | { readonly t: 'timer'; readonly timer: TimerName; readonly at: number }
  /** An upgrade request, checked (upgradeBusy) and resolved to a spec by the shell. */
  | { readonly t: 'upgrade'; readonly spec: EngineSpec; readonly at: number }
  | { readonly t: 'drain'; readonly deadlineMs: number; readonly at: number }
  | { readonly t: 'close'; readonly at: number };

export interface LogEffect {
  readonly t: 'log';
  readonly level: 'info' | 'warn';
  readonly event: string;
  readonly msg: string;
  readonly fields: Readonly<Record<string, unknown>>;
  /** add `enginePid`: that engine's process id (the shell knows it) */
  readonly pidOf?: EngineId;
  /** add `authzPorts`: the ports the degraded relay resets (the guard reads them) */
  readonly withAuthzPorts?: true;
}

export type Effect =
  /** fork an engine and send it `start` */
  | { readonly t: 'spawn'; readonly id: EngineId; readonly generation: number; readonly spec: EngineSpec }
  /** fork a standby: it loads its code and waits */
  | { readonly t: 'fork'; readonly id: EngineId; readonly spec: EngineSpec }
  | { readonly t: 'activate'; readonly id: EngineId; readonly generation: number }
  | { readonly t: 'drain'; readonly id: EngineId; readonly deadlineMs: number }
  | { readonly t: 'kill'; readonly id: EngineId; readonly reason: string }
  /** `stop`: stop accepting (relayed connections go on); `destroy`: and end relayed ones too */
  | { readonly t: 'standIn'; readonly mode: StandInMode | 'stop' | 'destroy' }
  /** close the held sockets (what waits in the backlog is reset by the kernel) */
  | { readonly t: 'release' }
  /** (re)start a timer; when it fires the shell sends `{t: 'timer'}` */
  | { readonly t: 'arm'; readonly timer: TimerName; readonly ms: number }
  | { readonly t: 'cancel'; readonly timer: TimerName }
  | { readonly t: 'degradedGauge'; readonly value: 0 | 1 }
  | { readonly t: 'generationGauge'; readonly generation: number }
  | { readonly t: 'countRestart' }
  /** that generation's counters become history in the metrics ledger */
  | { readonly t: 'retireMetrics'; readonly generation: number }
  /** answer the upgrade request */
  | { readonly t: 'upgradeDone'; readonly result: UpgradeResult }
  /** nothing runs any more: answer drain() */
  | { readonly t: 'drained' }
  | LogEffect;

export interface Step {
  readonly state: SupervisorState;
  readonly effects: readonly Effect[];
}

export function initialState(opts: DecisionOptions, spec: EngineSpec, at: number): SupervisorState {
  return {
    opts,
    listening: false,
    phase: 'running',
    spec,
    active: undefined,
    candidate: undefined,
    retiring: [],
    spare: undefined,
    nextId: 1,
    generation: 0,
    failures: 0,
    timers: { restart: false, wait: false, standby: false },
    noReadySince: at,
    failedSinceReady: false,
    degradedSince: undefined,
    refusingSince: undefined,
    standIn: undefined,
    lastUpgrade: undefined,
  };
}

// ---- queries ----------------------------------------------------------------------------

/** Every engine that has not exited, in the order /config lists them. */
export function liveEngines(s: SupervisorState): { engine: EngineView; role: EngineRole }[] {
  const out: { engine: EngineView; role: EngineRole }[] = [];
  if (s.active !== undefined) out.push({ engine: s.active, role: 'active' });
  if (s.candidate !== undefined) out.push({ engine: s.candidate.engine, role: 'candidate' });
  for (const e of s.retiring) out.push({ engine: e, role: 'retiring' });
  if (s.spare !== undefined) out.push({ engine: s.spare, role: 'standby' });
  return out;
}

export function serving(s: SupervisorState): 'engine' | StandInMode | 'waiting' {
  return s.active?.state === 'ready' ? 'engine' : (s.standIn ?? 'waiting');
}

export function readiness(s: SupervisorState): { ready: boolean; reason: string } {
  if (s.phase !== 'running') return { ready: false, reason: s.phase };
  if (s.active?.state === 'ready')
    return { ready: true, reason: `engine generation ${s.active.generation} ready` };
  if (s.standIn === 'relay') return { ready: true, reason: 'degraded: supervisor relays at L4' };
  return { ready: false, reason: 'no engine ready' };
}

export function liveness(s: SupervisorState, now: number): { live: boolean; reason: string } {
  if (s.opts.failureMode === 'restart' && s.phase === 'running' && s.noReadySince !== undefined) {
    const down = now - s.noReadySince;
    if (down > s.opts.restartGraceMs) return { live: false, reason: `no engine ready for ${down} ms` };
  }
  return { live: true, reason: 'supervisor running' };
}

/** Why an upgrade cannot start now (409), or undefined. */
export function upgradeBusy(s: SupervisorState): string | undefined {
  if (s.phase !== 'running') return `the proxy is ${s.phase}`;
  if (s.candidate !== undefined)
    return `an upgrade to generation ${s.candidate.engine.generation} is in progress`;
  return undefined;
}

export function ref(e: EngineView | undefined): EngineRef | undefined {
  return e === undefined ? undefined : { generation: e.generation, version: e.spec.version };
}

// ---- the transition -----------------------------------------------------------------------

type Draft = { -readonly [K in keyof SupervisorState]: SupervisorState[K] };

/** The one transition function: never mutates `state`, never does I/O. */
export function decide(state: SupervisorState, event: SupervisorEvent): Step {
  const d: Draft = { ...state };
  const fx: Effect[] = [];
  const at = event.at;
  switch (event.t) {
    case 'start':
      if (d.listening) break;
      d.listening = true;
      d.active = spawn(d, fx, d.spec, at);
      evaluate(d, fx, at);
      break;
    case 'ready':
      onReady(d, fx, event.id, at);
      break;
    case 'exit':
      onExit(d, fx, event.id, event.reason, at);
      break;
    case 'timer':
      if (!d.timers[event.timer]) break; // cancelled meanwhile
      d.timers = { ...d.timers, [event.timer]: false };
      if (event.timer === 'restart') restartFired(d, fx, at);
      else if (event.timer === 'standby') standbyFired(d, fx, at);
      else evaluate(d, fx, at);
      break;
    case 'upgrade':
      startUpgrade(d, fx, event.spec, at);
      break;
    case 'drain':
      drain(d, fx, event.deadlineMs, at);
      break;
    case 'close':
      d.phase = 'stopped';
      dropSpare(d, fx, 'stopping');
      d.standIn = undefined;
      fx.push({ t: 'standIn', mode: 'destroy' });
      cancel(d, fx, 'wait');
      fx.push({ t: 'release' });
      break;
  }
  return { state: d, effects: fx };
}

function log(
  level: LogEffect['level'],
  event: string,
  msg: string,
  fields: Record<string, unknown>,
  extra: Pick<LogEffect, 'pidOf' | 'withAuthzPorts'> = {},
): LogEffect {
  return { t: 'log', level, event, msg, fields, ...extra };
}

function arm(d: Draft, fx: Effect[], timer: TimerName, ms: number): void {
  d.timers = { ...d.timers, [timer]: true };
  fx.push({ t: 'arm', timer, ms });
}

function cancel(d: Draft, fx: Effect[], timer: TimerName): void {
  if (!d.timers[timer]) return;
  d.timers = { ...d.timers, [timer]: false };
  fx.push({ t: 'cancel', timer });
}

function setStandIn(d: Draft, fx: Effect[], mode: StandInMode): void {
  if (d.standIn === mode) return;
  d.standIn = mode;
  fx.push({ t: 'standIn', mode });
}

/** The engine after a drain request: a ready one drains, one not ready yet is killed. */
function drained(e: EngineView): EngineView {
  return e.state === 'ready' ? { ...e, state: 'draining' } : e;
}

function find(d: Draft, id: EngineId): EngineView | undefined {
  return liveEngines(d).find((x) => x.engine.id === id)?.engine;
}

/** Replaces engine `id` wherever it stands. */
function update(d: Draft, id: EngineId, f: (e: EngineView) => EngineView): void {
  if (d.active?.id === id) d.active = f(d.active);
  if (d.candidate?.engine.id === id) d.candidate = { ...d.candidate, engine: f(d.candidate.engine) };
  if (d.retiring.some((e) => e.id === id)) d.retiring = d.retiring.map((e) => (e.id === id ? f(e) : e));
  if (d.spare?.id === id) d.spare = f(d.spare);
}

function spawn(d: Draft, fx: Effect[], spec: EngineSpec, at: number): EngineView {
  d.generation += 1;
  const e: EngineView = {
    id: d.nextId,
    generation: d.generation,
    spec,
    state: 'starting',
    startedAt: at,
    readyAt: undefined,
  };
  d.nextId += 1;
  fx.push({ t: 'spawn', id: e.id, generation: e.generation, spec });
  fx.push(
    log(
      'info',
      'engine_starting',
      'engine starting',
      { generation: e.generation, version: spec.version },
      { pidOf: e.id },
    ),
  );
  return e;
}

/** Arms the standby fork after `delayMs` (when standby is on and none waits or is due). */
function ensureSpare(d: Draft, fx: Effect[], delayMs: number): void {
  if (!d.opts.standby || d.phase !== 'running' || d.spare !== undefined || d.timers.standby) return;
  arm(d, fx, 'standby', delayMs);
}

function standbyFired(d: Draft, fx: Effect[], at: number): void {
  if (d.phase !== 'running' || d.spare !== undefined) return;
  const e: EngineView = {
    id: d.nextId,
    generation: 0,
    spec: d.spec,
    state: 'standby',
    startedAt: at,
    readyAt: undefined,
  };
  d.nextId += 1;
  d.spare = e;
  fx.push({ t: 'fork', id: e.id, spec: e.spec });
  fx.push(
    log('info', 'standby_forked', 'standby engine forked', { version: e.spec.version }, { pidOf: e.id }),
  );
}

function dropSpare(d: Draft, fx: Effect[], reason: string): void {
  cancel(d, fx, 'standby');
  if (d.spare !== undefined) fx.push({ t: 'kill', id: d.spare.id, reason });
}

/** The standby, activated as the next generation, if it runs the current spec. */
function takeSpare(d: Draft, fx: Effect[], at: number): EngineView | undefined {
  const spare = d.spare;
  if (spare === undefined || spare.state !== 'standby' || spare.spec !== d.spec) return undefined;
  d.spare = undefined;
  d.generation += 1;
  const e: EngineView = { ...spare, generation: d.generation, state: 'starting', startedAt: at };
  fx.push({ t: 'activate', id: e.id, generation: e.generation });
  fx.push(
    log(
      'info',
      'engine_starting',
      'standby engine activated',
      { generation: e.generation, version: e.spec.version, standby: true },
      { pidOf: e.id },
    ),
  );
  ensureSpare(d, fx, STANDBY_DELAY_MS);
  return e;
}

function finishUpgrade(d: Draft, fx: Effect[], result: UpgradeResult): void {
  d.lastUpgrade = result;
  fx.push({ t: 'upgradeDone', result });
}

function startUpgrade(d: Draft, fx: Effect[], spec: EngineSpec, at: number): void {
  if (upgradeBusy(d) !== undefined) return; // the shell asked upgradeBusy first
  const previous = ref(d.active);
  fx.push(
    log('info', 'upgrade_started', 'upgrade started', {
      version: spec.version,
      overrides: spec.overrides,
      previous,
    }),
  );
  d.candidate = { engine: spawn(d, fx, spec, at), previous, startedAt: at };
}

function onReady(d: Draft, fx: Effect[], id: EngineId, at: number): void {
  // The engine process reports ready only from `starting`.
  update(d, id, (x) => ({ ...x, state: 'ready', readyAt: at }));
  const e = find(d, id);
  if (e === undefined) return;
  const c = d.candidate;
  // A candidate told to drain (drain() during an upgrade) was killed: its exit rolls it back.
  if (c !== undefined && c.engine.id === id && d.phase === 'running') {
    const old = d.active;
    d.candidate = undefined;
    d.active = e;
    d.spec = e.spec;
    cancel(d, fx, 'restart');
    if (old !== undefined) {
      d.retiring = [...d.retiring, drained(old)];
      fx.push({ t: 'drain', id: old.id, deadlineMs: d.opts.drainMs });
    }
    const result: UpgradeResult = {
      ok: true,
      at: new Date(at).toISOString(),
      durationMs: at - c.startedAt,
      running: ref(e),
      previous: c.previous,
    };
    fx.push(log('info', 'upgrade_succeeded', 'upgrade succeeded: the previous engine drains', { ...result }));
    finishUpgrade(d, fx, result);
  } else if (d.active?.id !== id) {
    return;
  }
  fx.push(
    log(
      'info',
      'engine_ready',
      'engine ready',
      { generation: e.generation, version: e.spec.version, startMs: at - e.startedAt },
      { pidOf: e.id },
    ),
  );
  fx.push({ t: 'generationGauge', generation: e.generation });
  if (d.spare !== undefined && d.spare.spec !== d.spec) dropSpare(d, fx, 'the running spec changed');
  ensureSpare(d, fx, STANDBY_DELAY_MS);
  evaluate(d, fx, at);
}

function onExit(d: Draft, fx: Effect[], id: EngineId, reason: string, at: number): void {
  if (d.spare?.id === id) {
    d.spare = undefined;
    if (d.phase === 'running') {
      fx.push(log('info', 'standby_exited', 'standby engine exited', { reason }));
      ensureSpare(d, fx, STANDBY_DELAY_MS);
    }
    settleDrain(d, fx);
    return;
  }
  const e = find(d, id);
  if (e === undefined) return;
  fx.push({ t: 'retireMetrics', generation: e.generation });
  const c = d.candidate;
  if (c !== undefined && c.engine.id === id) {
    d.candidate = undefined;
    const result: UpgradeResult = {
      ok: false,
      at: new Date(at).toISOString(),
      durationMs: at - c.startedAt,
      running: ref(d.active),
      previous: c.previous,
      reason: `generation ${e.generation} (version ${e.spec.version}) ${reason}`,
      rolledBack: true,
    };
    fx.push(
      log('warn', 'upgrade_rolled_back', 'upgrade failed: the previous engine keeps serving', {
        ...result,
      }),
    );
    finishUpgrade(d, fx, result);
    if (d.active === undefined && d.phase === 'running' && !d.timers.restart) scheduleRestart(d, fx, e, at);
  } else if (d.active?.id === id) {
    d.active = undefined;
    if (d.phase === 'running') {
      fx.push(
        log('warn', 'engine_exited', 'engine exited unexpectedly', {
          generation: e.generation,
          version: e.spec.version,
          reason,
          wasReady: e.readyAt !== undefined,
        }),
      );
      d.failedSinceReady = true;
      scheduleRestart(d, fx, e, at);
    }
  } else {
    d.retiring = d.retiring.filter((x) => x.id !== id);
    fx.push(log('info', 'engine_retired', 'engine finished draining', { generation: e.generation, reason }));
  }
  evaluate(d, fx, at);
  settleDrain(d, fx);
}

/** drain() is answered once nothing runs any more. */
function settleDrain(d: Draft, fx: Effect[]): void {
  if (d.phase === 'running' || liveEngines(d).length > 0) return;
  fx.push({ t: 'drained' });
}

/** Exponential backoff on consecutive failures; an engine that served a while restarts at once. */
function scheduleRestart(d: Draft, fx: Effect[], dead: EngineView, at: number): void {
  if (dead.readyAt !== undefined && at - dead.readyAt >= STABLE_MS) d.failures = 0;
  // A standby replaces an engine that had served; one that never got ready backs off.
  if (dead.readyAt !== undefined) {
    const spare = takeSpare(d, fx, at);
    if (spare !== undefined) {
      fx.push({ t: 'countRestart' });
      d.active = spare;
      return;
    }
  }
  const { baseMs, maxMs } = d.opts.backoff;
  const delay = d.failures === 0 ? 0 : Math.min(maxMs, baseMs * 2 ** (d.failures - 1));
  d.failures += 1;
  arm(d, fx, 'restart', delay);
}

function restartFired(d: Draft, fx: Effect[], at: number): void {
  if (d.phase !== 'running' || d.active !== undefined) return;
  fx.push({ t: 'countRestart' });
  // A standby forked meanwhile is as good as a fresh fork, and saves one.
  d.active = takeSpare(d, fx, at) ?? spawn(d, fx, d.spec, at);
}

/** Stops serving: every engine drains, none is restarted. */
function drain(d: Draft, fx: Effect[], deadlineMs: number, at: number): void {
  if (d.phase === 'running') {
    d.phase = 'draining';
    fx.push(log('info', 'drain_started', 'draining: engines stop accepting', { deadlineMs }));
    cancel(d, fx, 'restart');
    dropSpare(d, fx, 'draining');
    evaluate(d, fx, at);
  }
  for (const { engine } of liveEngines(d)) {
    fx.push({ t: 'drain', id: engine.id, deadlineMs });
    update(d, engine.id, drained);
  }
  settleDrain(d, fx);
}

// ---- failure modes ---------------------------------------------------------------------------

/** Applies the failure mode to the current situation; runs after every transition that can change it. */
function evaluate(d: Draft, fx: Effect[], at: number): void {
  cancel(d, fx, 'wait');
  if (!d.listening) return;
  const ready = d.active?.state === 'ready';
  if (ready) {
    d.noReadySince = undefined;
    d.failedSinceReady = false;
  } else {
    d.noReadySince ??= at;
  }
  if (ready || d.phase !== 'running') {
    standDown(d, fx, at);
    return;
  }
  const waited = at - (d.noReadySince ?? at);
  const waitOver = waited >= d.opts.engineWaitMs;
  if (d.opts.failureMode === 'degrade' && (d.failedSinceReady || waitOver)) {
    if (d.opts.mtlsMode === 'strict') {
      if (d.refusingSince === undefined) {
        d.refusingSince = at;
        fx.push(
          log(
            'warn',
            'degraded_mode_refused',
            'degraded mode refused under strict mTLS: connections are reset until an engine is ready',
            { reason: 'strict mTLS: relaying would bypass mTLS', mtlsMode: 'strict' },
          ),
        );
      }
      setStandIn(d, fx, 'reset');
    } else {
      if (d.degradedSince === undefined) {
        d.degradedSince = at;
        fx.push({ t: 'degradedGauge', value: 1 });
        fx.push(
          log(
            'warn',
            'degraded_mode_started',
            'degraded mode: the supervisor relays at L4 without mTLS or L7 telemetry; inbound ports under authorization are reset',
            { failureMode: 'degrade', reason: 'no engine ready' },
            // inbound ports reset instead of relayed; null: unknown, so all of them
            { withAuthzPorts: true },
          ),
        );
      }
      setStandIn(d, fx, 'relay');
    }
    return;
  }
  if (waitOver) {
    if (d.refusingSince === undefined) {
      d.refusingSince = at;
      fx.push(
        log('warn', 'engine_wait_expired', 'no engine ready: waiting connections are reset until one is', {
          failureMode: d.opts.failureMode,
          waitedMs: waited,
        }),
      );
    }
    setStandIn(d, fx, 'reset');
    return;
  }
  arm(d, fx, 'wait', d.opts.engineWaitMs - waited);
}

/** Stops standing in: an engine serves again, or the proxy drains (then new connections wait). */
function standDown(d: Draft, fx: Effect[], at: number): void {
  // The stop lines used to say "an engine serves again" when a drain stopped the stand-in too.
  const why = d.phase === 'running' ? 'an engine serves again' : `the proxy is ${d.phase}`;
  if (d.standIn !== undefined) {
    d.standIn = undefined;
    fx.push({ t: 'standIn', mode: 'stop' });
  }
  if (d.degradedSince !== undefined) {
    fx.push(
      log('warn', 'degraded_mode_stopped', `degraded mode stopped: ${why}`, {
        durationMs: at - d.degradedSince,
      }),
    );
    d.degradedSince = undefined;
    fx.push({ t: 'degradedGauge', value: 0 });
  }
  if (d.refusingSince !== undefined) {
    fx.push(log('info', 'connection_resets_stopped', why, { durationMs: at - d.refusingSince }));
    d.refusingSince = undefined;
  }
}
