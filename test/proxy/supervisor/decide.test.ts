/**
 * The supervisor's decision (proxy/src/supervisor/decide.ts) as a table: given a state built by
 * feeding events from the start, one event gives exactly these effects and this state. Every
 * row's input state is deep-frozen, so a transition that mutated its input would throw. The
 * behaviour with real processes and sockets is in the other tests of this folder.
 */
import { describe, expect, it } from 'vitest';
import {
  decide,
  initialState,
  liveness,
  readiness,
  upgradeBusy,
} from '../../../proxy/src/supervisor/decide.js';
import type {
  DecisionOptions,
  Effect,
  SupervisorEvent,
  SupervisorState,
} from '../../../proxy/src/supervisor/decide.js';
import type { EngineSpec } from '../../../proxy/src/supervisor/engine-process.js';

const T0 = 1_000_000;
const OPTS: DecisionOptions = {
  failureMode: 'fail-closed',
  mtlsMode: 'permissive',
  engineWaitMs: 1000,
  restartGraceMs: 2000,
  drainMs: 5000,
  backoff: { baseMs: 100, maxMs: 5000 },
  standby: false,
};
const BUILTIN: EngineSpec = { version: 'builtin', entry: '/e/engine.js', env: {}, overrides: {} };
const V2: EngineSpec = { version: 'v2', entry: '/b/v2/engine.js', env: {}, overrides: { X: '1' } };

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Feeds events in order; returns the last state and every effect. */
function run(
  s: SupervisorState,
  ...events: SupervisorEvent[]
): { state: SupervisorState; effects: Effect[] } {
  const effects: Effect[] = [];
  for (const ev of events) {
    const step = decide(s, ev);
    s = step.state;
    effects.push(...step.effects);
  }
  return { state: s, effects };
}
const after = (s: SupervisorState, ...events: SupervisorEvent[]): SupervisorState => run(s, ...events).state;

/** One effect in words, so a row reads as a list. */
function brief(e: Effect): string {
  switch (e.t) {
    case 'spawn':
      return `spawn #${e.id} g${e.generation} ${e.spec.version}`;
    case 'fork':
      return `fork #${e.id} ${e.spec.version}`;
    case 'activate':
      return `activate #${e.id} g${e.generation}`;
    case 'drain':
      return `drain #${e.id} ${e.deadlineMs}`;
    case 'kill':
      return `kill #${e.id} ${e.reason}`;
    case 'standIn':
      return `standIn ${e.mode}`;
    case 'arm':
      return `arm ${e.timer} ${e.ms}`;
    case 'cancel':
      return `cancel ${e.timer}`;
    case 'degradedGauge':
      return `degraded=${e.value}`;
    case 'generationGauge':
      return `generation=${e.generation}`;
    case 'countRestart':
      return 'restarts+1';
    case 'retireMetrics':
      return `retire g${e.generation}`;
    case 'upgradeDone':
      return e.result.ok ? 'upgrade ok' : `upgrade rolled back: ${e.result.reason}`;
    case 'release':
    case 'drained':
      return e.t;
    case 'log':
      return `${e.level} ${e.event}`;
  }
}

// ---- states, each built by feeding events ----------------------------------------------------

const fresh = (o: Partial<DecisionOptions> = {}): SupervisorState =>
  initialState({ ...OPTS, ...o }, BUILTIN, T0);
const starting = (o: Partial<DecisionOptions> = {}): SupervisorState =>
  after(fresh(o), { t: 'start', at: T0 });
/** engine #1 (generation 1) ready 100 ms after start */
const serving = (o: Partial<DecisionOptions> = {}): SupervisorState =>
  after(starting(o), { t: 'ready', id: 1, at: T0 + 100 });
/** serving with a standby (#2) forked a second after ready */
const withSpare = (o: Partial<DecisionOptions> = {}): SupervisorState =>
  after(serving({ standby: true, ...o }), { t: 'timer', timer: 'standby', at: T0 + 1100 });
/** #1 crashed after serving 2 s; the restart is due */
const crashed = (o: Partial<DecisionOptions> = {}): SupervisorState =>
  after(serving(o), { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 2100 });
/** fail-closed past the wait bound: resetting */
const resetting = (): SupervisorState => after(starting(), { t: 'timer', timer: 'wait', at: T0 + 1000 });
/** an upgrade to v2 (#2) is starting beside #1 */
const upgrading = (o: Partial<DecisionOptions> = {}): SupervisorState =>
  after(serving(o), { t: 'upgrade', spec: V2, at: T0 + 3000 });
/** v2 (#2) serves, #1 drains */
const upgraded = (): SupervisorState => after(upgrading(), { t: 'ready', id: 2, at: T0 + 3500 });
const draining = (): SupervisorState => after(serving(), { t: 'drain', deadlineMs: 5000, at: T0 + 4000 });

interface Row {
  readonly name: string;
  readonly given: SupervisorState;
  readonly event: SupervisorEvent;
  readonly effects: readonly string[];
  /** a part of the next state */
  readonly state?: Record<string, unknown>;
}

const rows: Row[] = [
  // ---- start and readiness
  {
    name: 'start: the first engine (generation 1) starts; the wait bound runs',
    given: fresh(),
    event: { t: 'start', at: T0 },
    effects: ['spawn #1 g1 builtin', 'info engine_starting', 'arm wait 1000'],
    state: { listening: true, active: { id: 1, generation: 1, state: 'starting' }, noReadySince: T0 },
  },
  {
    name: 'start again: nothing (the sockets are held once)',
    given: starting(),
    event: { t: 'start', at: T0 + 1 },
    effects: [],
  },
  {
    name: 'the active engine is ready: gauge, the wait bound stops',
    given: starting(),
    event: { t: 'ready', id: 1, at: T0 + 100 },
    effects: ['info engine_ready', 'generation=1', 'cancel wait'],
    state: { active: { id: 1, state: 'ready', readyAt: T0 + 100 }, noReadySince: undefined },
  },
  {
    name: 'ready with standby on: a standby is forked a second later',
    given: starting({ standby: true }),
    event: { t: 'ready', id: 1, at: T0 + 100 },
    effects: ['info engine_ready', 'generation=1', 'arm standby 1000', 'cancel wait'],
    state: { timers: { standby: true, wait: false, restart: false } },
  },
  {
    name: 'the standby timer: a standby of the running spec is forked (generation 0)',
    given: serving({ standby: true }),
    event: { t: 'timer', timer: 'standby', at: T0 + 1100 },
    effects: ['fork #2 builtin', 'info standby_forked'],
    state: { spare: { id: 2, generation: 0, state: 'standby', spec: BUILTIN } },
  },
  {
    name: 'ready of an engine that is neither active nor candidate (a retiring one): nothing',
    given: upgraded(),
    event: { t: 'ready', id: 1, at: T0 + 3600 },
    effects: [],
  },
  // ---- the wait bound, per failure mode
  {
    name: 'fail-closed, the wait bound is over: waiting connections are reset',
    given: starting(),
    event: { t: 'timer', timer: 'wait', at: T0 + 1000 },
    effects: ['warn engine_wait_expired', 'standIn reset'],
    state: { standIn: 'reset', refusingSince: T0 + 1000 },
  },
  {
    name: 'restart: the wait bound is over: reset, as fail-closed',
    given: starting({ failureMode: 'restart' }),
    event: { t: 'timer', timer: 'wait', at: T0 + 1000 },
    effects: ['warn engine_wait_expired', 'standIn reset'],
    state: { standIn: 'reset' },
  },
  {
    name: 'degrade at start-up, the wait bound is over: relay, gauge 1',
    given: starting({ failureMode: 'degrade' }),
    event: { t: 'timer', timer: 'wait', at: T0 + 1000 },
    effects: ['degraded=1', 'warn degraded_mode_started', 'standIn relay'],
    state: { standIn: 'relay', degradedSince: T0 + 1000 },
  },
  {
    name: 'degrade under strict mTLS: refused, connections reset, gauge stays 0',
    given: starting({ failureMode: 'degrade', mtlsMode: 'strict' }),
    event: { t: 'timer', timer: 'wait', at: T0 + 1000 },
    effects: ['warn degraded_mode_refused', 'standIn reset'],
    state: { standIn: 'reset', degradedSince: undefined, refusingSince: T0 + 1000 },
  },
  {
    name: 'a wait timer that fires early waits for the rest',
    given: starting(),
    event: { t: 'timer', timer: 'wait', at: T0 + 600 },
    effects: ['arm wait 400'],
    state: { standIn: undefined },
  },
  {
    name: 'a timer event after its cancel changes nothing',
    given: serving(),
    event: { t: 'timer', timer: 'restart', at: T0 + 200 },
    effects: [],
  },
  {
    name: 'fail-closed: an engine is ready again: the resets stop',
    given: resetting(),
    event: { t: 'ready', id: 1, at: T0 + 1500 },
    effects: ['info engine_ready', 'generation=1', 'standIn stop', 'info connection_resets_stopped'],
    state: { standIn: undefined, refusingSince: undefined },
  },
  {
    name: 'degrade: an engine is ready again: the relay stops, gauge 0',
    given: after(crashed({ failureMode: 'degrade' }), { t: 'timer', timer: 'restart', at: T0 + 2100 }),
    event: { t: 'ready', id: 2, at: T0 + 2600 },
    effects: [
      'info engine_ready',
      'generation=2',
      'standIn stop',
      'warn degraded_mode_stopped',
      'degraded=0',
    ],
    state: { standIn: undefined, degradedSince: undefined, failedSinceReady: false },
  },
  // ---- crashes and restarts
  {
    name: 'the active engine dies after serving 1 s or more: restart at once, the wait bound runs',
    given: serving(),
    event: { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 1100 },
    effects: ['retire g1', 'warn engine_exited', 'arm restart 0', 'arm wait 1000'],
    state: { active: undefined, failures: 1, failedSinceReady: true, noReadySince: T0 + 1100 },
  },
  {
    name: 'degrade: the active engine dies: relay at once (it had failed, no wait)',
    given: serving({ failureMode: 'degrade' }),
    event: { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 1100 },
    effects: [
      'retire g1',
      'warn engine_exited',
      'arm restart 0',
      'degraded=1',
      'warn degraded_mode_started',
      'standIn relay',
    ],
    state: { standIn: 'relay' },
  },
  {
    name: 'the restart timer: the next generation starts',
    given: crashed(),
    event: { t: 'timer', timer: 'restart', at: T0 + 2100 },
    effects: ['restarts+1', 'spawn #2 g2 builtin', 'info engine_starting'],
    state: { active: { id: 2, generation: 2, state: 'starting' }, timers: { restart: false, wait: true } },
  },
  {
    name: 'an engine that never got ready dies: backoff 100 ms (second failure in a row)',
    given: after(crashed(), { t: 'timer', timer: 'restart', at: T0 + 2100 }),
    event: { t: 'exit', id: 2, reason: 'exited with code 1', at: T0 + 2300 },
    effects: ['retire g2', 'warn engine_exited', 'arm restart 100', 'cancel wait', 'arm wait 800'],
    state: { failures: 2 },
  },
  {
    name: 'an engine ready for less than 1 s dies: the failure count goes on (no reset)',
    given: after({ ...starting(), failures: 3 }, { t: 'ready', id: 1, at: T0 + 100 }),
    event: { t: 'exit', id: 1, reason: 'exited with code 1', at: T0 + 500 },
    effects: ['retire g1', 'warn engine_exited', 'arm restart 400', 'arm wait 1000'],
    state: { failures: 4 },
  },
  {
    name: 'standby on: the active engine dies: the standby is activated as the next generation',
    given: withSpare(),
    event: { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 2100 },
    effects: [
      'retire g1',
      'warn engine_exited',
      'activate #2 g2',
      'info engine_starting',
      'arm standby 1000',
      'restarts+1',
      'arm wait 1000',
    ],
    state: { active: { id: 2, generation: 2, state: 'starting' }, spare: undefined, failures: 0 },
  },
  {
    name: 'standby on: an engine that never got ready dies: backoff, the standby is kept',
    given: after(
      withSpare({ engineWaitMs: 10_000 }),
      { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 2100 },
      { t: 'timer', timer: 'standby', at: T0 + 3100 },
    ),
    event: { t: 'exit', id: 2, reason: 'exited with code 1', at: T0 + 3200 },
    effects: ['retire g2', 'warn engine_exited', 'arm restart 0', 'cancel wait', 'arm wait 8900'],
    state: { spare: { id: 3 }, failures: 1 },
  },
  {
    name: 'the restart timer with a standby waiting: the standby is used instead of a fork',
    given: after(
      withSpare({ engineWaitMs: 10_000 }),
      { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 2100 },
      { t: 'timer', timer: 'standby', at: T0 + 3100 },
      { t: 'exit', id: 2, reason: 'exited with code 1', at: T0 + 3200 },
    ),
    event: { t: 'timer', timer: 'restart', at: T0 + 3200 },
    effects: ['restarts+1', 'activate #3 g3', 'info engine_starting', 'arm standby 1000'],
    state: { active: { id: 3, generation: 3 } },
  },
  {
    name: 'the standby dies while running: another one a second later',
    given: withSpare(),
    event: { t: 'exit', id: 2, reason: 'killed by SIGKILL', at: T0 + 1500 },
    effects: ['info standby_exited', 'arm standby 1000'],
    state: { spare: undefined },
  },
  {
    name: 'an exit of an engine this state does not know: nothing',
    given: serving(),
    event: { t: 'exit', id: 99, reason: 'x', at: T0 + 200 },
    effects: [],
  },
  // ---- upgrades
  {
    name: 'upgrade: a candidate (next generation, new spec) starts beside the active engine',
    given: serving(),
    event: { t: 'upgrade', spec: V2, at: T0 + 3000 },
    effects: ['info upgrade_started', 'spawn #2 g2 v2', 'info engine_starting'],
    state: { candidate: { engine: { id: 2, spec: V2 }, previous: { generation: 1, version: 'builtin' } } },
  },
  {
    name: 'upgrade while one is in progress: nothing (the shell answers 409 from upgradeBusy)',
    given: upgrading(),
    event: { t: 'upgrade', spec: V2, at: T0 + 3100 },
    effects: [],
  },
  {
    name: 'the candidate is ready: it serves, the old engine drains, the upgrade is answered',
    given: upgrading(),
    event: { t: 'ready', id: 2, at: T0 + 3500 },
    effects: ['drain #1 5000', 'info upgrade_succeeded', 'upgrade ok', 'info engine_ready', 'generation=2'],
    state: {
      spec: V2,
      active: { id: 2 },
      candidate: undefined,
      retiring: [{ id: 1, state: 'draining' }],
      lastUpgrade: { ok: true, durationMs: 500, running: { generation: 2, version: 'v2' } },
    },
  },
  {
    name: 'the candidate is ready while a standby of the old spec waits: the standby is killed',
    given: after(withSpare(), { t: 'upgrade', spec: V2, at: T0 + 3000 }),
    event: { t: 'ready', id: 3, at: T0 + 3500 },
    effects: [
      'drain #1 5000',
      'info upgrade_succeeded',
      'upgrade ok',
      'info engine_ready',
      // the standby had generation 0: the candidate is the second generation
      'generation=2',
      'kill #2 the running spec changed',
    ],
    state: { spare: { id: 2 } },
  },
  {
    name: 'that standby exits: a standby of the new spec follows',
    given: after(
      withSpare(),
      { t: 'upgrade', spec: V2, at: T0 + 3000 },
      { t: 'ready', id: 3, at: T0 + 3500 },
    ),
    event: { t: 'exit', id: 2, reason: 'the running spec changed', at: T0 + 3600 },
    effects: ['info standby_exited', 'arm standby 1000'],
  },
  {
    name: 'the candidate dies: rolled back, the old engine keeps serving',
    given: upgrading(),
    event: { t: 'exit', id: 2, reason: 'exited with code 1', at: T0 + 3400 },
    effects: [
      'retire g2',
      'warn upgrade_rolled_back',
      'upgrade rolled back: generation 2 (version v2) exited with code 1',
    ],
    state: {
      spec: BUILTIN,
      candidate: undefined,
      active: { id: 1, state: 'ready' },
      lastUpgrade: { ok: false, rolledBack: true, running: { generation: 1, version: 'builtin' } },
    },
  },
  {
    name: 'the candidate dies while no engine runs and no restart is due: a restart is scheduled',
    given: { ...upgrading(), active: undefined },
    event: { t: 'exit', id: 2, reason: 'exited with code 1', at: T0 + 3400 },
    effects: [
      'retire g2',
      'warn upgrade_rolled_back',
      'upgrade rolled back: generation 2 (version v2) exited with code 1',
      'arm restart 0',
      'arm wait 1000',
    ],
  },
  {
    name: 'upgrade while the active engine is down: the candidate takes over, the due restart is cancelled',
    given: after(crashed(), { t: 'upgrade', spec: V2, at: T0 + 2100 }),
    event: { t: 'ready', id: 2, at: T0 + 2500 },
    effects: [
      'cancel restart',
      'info upgrade_succeeded',
      'upgrade ok',
      'info engine_ready',
      'generation=2',
      'cancel wait',
    ],
    state: { active: { id: 2 }, retiring: [], timers: { restart: false } },
  },
  {
    name: 'a retiring engine exits: it is retired',
    given: upgraded(),
    event: { t: 'exit', id: 1, reason: 'exited with code 0', at: T0 + 4000 },
    effects: ['retire g1', 'info engine_retired'],
    state: { retiring: [] },
  },
  // ---- drain and close
  {
    name: 'drain: not ready, every engine drains, no restart',
    given: serving(),
    event: { t: 'drain', deadlineMs: 5000, at: T0 + 4000 },
    effects: ['info drain_started', 'drain #1 5000'],
    state: { phase: 'draining', active: { id: 1, state: 'draining' } },
  },
  {
    name: 'drain with nothing running: answered at once',
    given: fresh(),
    event: { t: 'drain', deadlineMs: 5000, at: T0 },
    effects: ['info drain_started', 'drained'],
  },
  {
    name: 'drain again (quit after SIGTERM): the engines get the new deadline',
    given: draining(),
    event: { t: 'drain', deadlineMs: 0, at: T0 + 4100 },
    effects: ['drain #1 0'],
  },
  {
    name: 'the last engine exits while draining: not restarted, drain is answered',
    given: draining(),
    event: { t: 'exit', id: 1, reason: 'exited with code 0', at: T0 + 4500 },
    effects: ['retire g1', 'drained'],
    state: { active: undefined, timers: { restart: false, wait: false, standby: false } },
  },
  {
    name: 'drain while degraded: the relay stops, the due restart is cancelled, drain answered at once',
    given: crashed({ failureMode: 'degrade' }),
    event: { t: 'drain', deadlineMs: 5000, at: T0 + 2200 },
    effects: [
      'info drain_started',
      'cancel restart',
      'standIn stop',
      'warn degraded_mode_stopped',
      'degraded=0',
      'drained',
    ],
    state: { standIn: undefined, degradedSince: undefined },
  },
  {
    name: 'drain during an upgrade with a standby: the standby is killed, the candidate abandoned',
    given: after(withSpare(), { t: 'upgrade', spec: V2, at: T0 + 3000 }),
    event: { t: 'drain', deadlineMs: 5000, at: T0 + 3100 },
    effects: ['info drain_started', 'kill #2 draining', 'drain #1 5000', 'drain #3 5000', 'drain #2 5000'],
  },
  {
    name: 'regression: a candidate abandoned by drain that reports ready anyway did not succeed',
    given: after(upgrading(), { t: 'drain', deadlineMs: 5000, at: T0 + 3100 }),
    event: { t: 'ready', id: 2, at: T0 + 3200 },
    effects: [],
    state: { active: { id: 1 }, candidate: { engine: { id: 2 } }, lastUpgrade: undefined },
  },
  {
    name: 'its exit then rolls the upgrade back',
    given: after(
      upgrading(),
      { t: 'drain', deadlineMs: 5000, at: T0 + 3100 },
      { t: 'ready', id: 2, at: T0 + 3200 },
    ),
    event: { t: 'exit', id: 2, reason: 'abandoned before it was ready', at: T0 + 3300 },
    effects: [
      'retire g2',
      'warn upgrade_rolled_back',
      'upgrade rolled back: generation 2 (version v2) abandoned before it was ready',
    ],
  },
  {
    name: 'the standby exits while draining: drain waits for the others',
    given: after(withSpare(), { t: 'drain', deadlineMs: 5000, at: T0 + 2000 }),
    event: { t: 'exit', id: 2, reason: 'draining', at: T0 + 2100 },
    effects: [],
    state: { spare: undefined },
  },
  {
    name: 'close: the stand-in ends every relayed connection, the sockets are released',
    given: resetting(),
    event: { t: 'close', at: T0 + 1100 },
    effects: ['standIn destroy', 'release'],
    state: { phase: 'stopped', standIn: undefined },
  },
  {
    name: 'close with a standby waiting: it is killed',
    given: withSpare(),
    event: { t: 'close', at: T0 + 1200 },
    effects: ['kill #2 stopping', 'standIn destroy', 'release'],
  },
  {
    name: 'close with the standby fork due and the wait bound running: both cancelled',
    given: after(withSpare(), { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 2100 }),
    event: { t: 'close', at: T0 + 2200 },
    effects: ['cancel standby', 'standIn destroy', 'cancel wait', 'release'],
  },
];

describe('decide(state, event) → (state, effects): every transition', () => {
  it.each(rows)('$name', (row) => {
    const given = deepFreeze(row.given);
    const step = decide(given, row.event);
    expect(step.effects.map(brief)).toEqual(row.effects);
    if (row.state !== undefined) expect(step.state).toMatchObject(row.state);
  });
});

describe('what the effects carry', () => {
  it('engine_exited says which generation died, why, and whether it had served', () => {
    const { effects } = run(serving(), { t: 'exit', id: 1, reason: 'killed by SIGKILL', at: T0 + 1100 });
    expect(effects.find((e) => e.t === 'log' && e.event === 'engine_exited')).toMatchObject({
      level: 'warn',
      fields: { generation: 1, version: 'builtin', reason: 'killed by SIGKILL', wasReady: true },
    });
  });

  it('log lines about an engine ask the shell for its pid; degraded_mode_started for the governed ports', () => {
    const spawned = run(fresh(), { t: 'start', at: T0 }).effects;
    expect(spawned[1]).toMatchObject({ event: 'engine_starting', pidOf: 1 });
    const degraded = run(starting({ failureMode: 'degrade' }), { t: 'timer', timer: 'wait', at: T0 + 1000 });
    expect(degraded.effects[1]).toMatchObject({
      event: 'degraded_mode_started',
      withAuthzPorts: true,
      fields: { failureMode: 'degrade', reason: 'no engine ready' },
    });
  });

  it('regression: stand-down lines said "an engine serves again" when a drain stopped the relay', () => {
    const drained = run(crashed({ failureMode: 'degrade' }), { t: 'drain', deadlineMs: 0, at: T0 + 2200 });
    expect(drained.effects.find((e) => e.t === 'log' && e.event === 'degraded_mode_stopped')).toMatchObject({
      msg: 'degraded mode stopped: the proxy is draining',
      fields: { durationMs: 100 },
    });
    const back = run(resetting(), { t: 'ready', id: 1, at: T0 + 1500 });
    expect(back.effects.find((e) => e.t === 'log' && e.event === 'connection_resets_stopped')).toMatchObject({
      msg: 'an engine serves again',
      fields: { durationMs: 500 },
    });
  });

  it('the upgrade answer: running, previous, duration, and the time it was decided', () => {
    const { effects } = run(upgrading(), { t: 'ready', id: 2, at: T0 + 3500 });
    expect(effects.find((e) => e.t === 'upgradeDone')).toEqual({
      t: 'upgradeDone',
      result: {
        ok: true,
        at: new Date(T0 + 3500).toISOString(),
        durationMs: 500,
        running: { generation: 2, version: 'v2' },
        previous: { generation: 1, version: 'builtin' },
      },
    });
  });

  it('backoff: 0, 100, 200, 400 ... capped at the maximum, for engines that never get ready', () => {
    let s = starting();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const id = s.active?.id ?? 0;
      const step = run(s, { t: 'exit', id, reason: 'exited with code 1', at: T0 + i * 10 });
      const armed = step.effects.find((e) => e.t === 'arm' && e.timer === 'restart');
      delays.push(armed?.t === 'arm' ? armed.ms : -1);
      s = after(step.state, { t: 'timer', timer: 'restart', at: T0 + i * 10 + 1 });
    }
    expect(delays).toEqual([0, 100, 200, 400, 800, 1600, 3200, 5000]);
  });
});

describe('queries', () => {
  it('readiness: ready when an engine serves or the degraded relay stands in; never while draining', () => {
    expect(readiness(starting())).toEqual({ ready: false, reason: 'no engine ready' });
    expect(readiness(serving())).toEqual({ ready: true, reason: 'engine generation 1 ready' });
    expect(readiness(crashed({ failureMode: 'degrade' }))).toEqual({
      ready: true,
      reason: 'degraded: supervisor relays at L4',
    });
    expect(readiness(crashed({ failureMode: 'degrade', mtlsMode: 'strict' })).ready).toBe(false);
    expect(readiness(resetting()).ready).toBe(false);
    expect(readiness(draining())).toEqual({ ready: false, reason: 'draining' });
  });

  it('liveness fails only in restart mode, after the grace period without a ready engine', () => {
    const down = crashed({ failureMode: 'restart' });
    expect(liveness(down, T0 + 2100 + 2000).live).toBe(true);
    expect(liveness(down, T0 + 2100 + 2001)).toEqual({ live: false, reason: 'no engine ready for 2001 ms' });
    expect(liveness(crashed(), T0 + 60_000).live).toBe(true);
    expect(liveness(serving({ failureMode: 'restart' }), T0 + 60_000).live).toBe(true);
    const drainingDown = after(down, { t: 'drain', deadlineMs: 0, at: T0 + 2200 });
    expect(liveness(drainingDown, T0 + 60_000).live).toBe(true);
  });

  it('upgradeBusy: one upgrade at a time, none while draining', () => {
    expect(upgradeBusy(serving())).toBeUndefined();
    expect(upgradeBusy(upgrading())).toBe('an upgrade to generation 2 is in progress');
    expect(upgradeBusy(draining())).toBe('the proxy is draining');
  });
});
