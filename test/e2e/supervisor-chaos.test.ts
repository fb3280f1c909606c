// Chaos in real network namespaces (issue 6 §4): pod A runs remora-init, remora-proxy (the
// supervisor) as UID/GID 1337 and an HTTP app; pod B paces 500 req/s (what a busy machine
// delivers is in the printed stats) of mixed keep-alive and new connections to A's app through
// real iptables capture for 10 s while the test kill -9s the engine once a second whenever one
// is ready (a restart can take more than a second on a loaded machine). Each failure mode's expectation, and in every mode: the supervisor
// never dies and the kernel never refuses a connection.
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ENV } from '../../proxy/src/contract.js';
import type { FailureMode } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, eventually, httpJson, httpRequest } from './harness/index.js';
import type { Identity, Pod, Proc } from './harness/index.js';
import { runInit, startProxy } from './harness/remora.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv', 'ss'],
});
const LOAD = fileURLToPath(new URL('./supervisor-load.mjs', import.meta.url));
const APP: Identity = { uid: 1000, gid: 1000 };
const HTTP_PORT = 8080;
const RATE = 500;
const SECONDS = 10;

interface LoadStats {
  ok: number;
  badStatus: number;
  refused: number;
  reset: number;
  other: number;
  errors: Record<string, number>;
  okPerSecond: number[];
  failPerSecond: number[];
}

interface Engine {
  pid: number;
  role: string;
  state: string;
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.teardown();
  h = undefined;
});

async function chaos(
  mode: FailureMode,
  extraEnv: Record<string, string> = {},
): Promise<{ stats: LoadStats; kills: number; readySeen: number[]; proxy: Proc; a: Pod }> {
  h = Harness.create();
  const harness = h;
  const a = harness.addPod('a');
  const b = harness.addPod('b');
  await runInit(harness, a);
  const proxy = await startProxy(harness, a, {
    [ENV.failureMode]: mode,
    [ENV.accessLog]: 'off',
    [ENV.logLevel]: 'warn',
    ...extraEnv,
  });
  await harness.startAgent(a, 'http-server', [String(HTTP_PORT)], { as: APP });
  const load = harness.spawn(
    b,
    process.execPath,
    [LOAD, `http://${a.ip}:${HTTP_PORT}/`, String(RATE), String(SECONDS)],
    { label: 'load' },
  );
  const readySeen: number[] = [];
  let kills = 0;
  const started = Date.now();
  let loadDone = false;
  void load.exited.then(() => (loadDone = true));
  // Once a second, kill the engine if one is ready (a new one may take longer than a second
  // to start on a busy machine; killing it while it starts would only test the backoff).
  while (!loadDone && Date.now() - started < SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    const cfg = await httpJson<{ engines: Engine[] }>(harness, a, 'http://127.0.0.1:15000/config');
    const active = cfg.engines.find((e) => e.role === 'active' && e.state === 'ready');
    if (active !== undefined) {
      process.kill(active.pid, 'SIGKILL');
      kills += 1;
    }
    const r = await httpRequest(harness, a, 'http://127.0.0.1:15020/healthz/ready');
    readySeen.push(r.ok ? r.status : 0);
  }
  await load.exited;
  const line = load.output().trim().split('\n').pop() ?? '{}';
  return { stats: JSON.parse(line) as LoadStats, kills, readySeen, proxy, a };
}

async function supervisorAlive(proxy: Proc): Promise<boolean> {
  return Promise.race([
    proxy.exited.then(() => false),
    new Promise<boolean>((r) => setTimeout(() => r(true), 50)),
  ]);
}

describe.skipIf(skip !== undefined)(
  `supervisor chaos in namespaces, engine killed every second it is up, ${RATE} req/s paced ${skip ?? ''}`,
  () => {
    it('degrade: zero refused and the app answers in every second of the run', async () => {
      const { stats, kills, proxy, a } = await chaos('degrade');
      console.log(`degrade chaos: ${JSON.stringify({ ...stats, kills })}`);
      expect(kills).toBeGreaterThanOrEqual(2);
      expect(stats.refused).toBe(0);
      expect(stats.okPerSecond.length).toBeGreaterThanOrEqual(SECONDS - 1);
      expect(stats.okPerSecond.slice(0, SECONDS - 1).every((n) => n > 0)).toBe(true);
      expect(stats.badStatus).toBe(0);
      expect(await supervisorAlive(proxy)).toBe(true);
      const ready = await httpRequest(h as Harness, a, 'http://127.0.0.1:15020/healthz/ready');
      expect(ready).toMatchObject({ ok: true, status: 200 });
    }, 40_000);

    it('fail-closed: zero refused, readiness flips and comes back, service resumes', async () => {
      const { stats, kills, readySeen, proxy, a } = await chaos('fail-closed');
      console.log(`fail-closed chaos: ${JSON.stringify({ ...stats, kills, readySeen })}`);
      expect(kills).toBeGreaterThanOrEqual(2);
      expect(stats.refused).toBe(0);
      expect(stats.ok).toBeGreaterThan(0);
      expect(await supervisorAlive(proxy)).toBe(true);
      // after the last kill an engine comes back and readiness with it
      await eventually(
        'ready',
        () => httpRequest(h as Harness, a, 'http://127.0.0.1:15020/healthz/ready'),
        (r) => r.ok && r.status === 200,
        15_000,
      );
    }, 40_000);

    it('restart: zero refused, the supervisor stays up and live', async () => {
      const { stats, kills, proxy, a } = await chaos('restart');
      console.log(`restart chaos: ${JSON.stringify({ ...stats, kills })}`);
      expect(kills).toBeGreaterThanOrEqual(2);
      expect(stats.refused).toBe(0);
      expect(await supervisorAlive(proxy)).toBe(true);
      expect(await httpRequest(h as Harness, a, 'http://127.0.0.1:15020/healthz/live')).toMatchObject({
        ok: true,
        status: 200,
      });
    }, 40_000);

    it('fail-closed with REMORA_ENGINE_STANDBY=on: zero refused, a new standby is waiting afterwards', async () => {
      const { stats, kills, readySeen, proxy, a } = await chaos('fail-closed', { [ENV.engineStandby]: 'on' });
      console.log(`fail-closed+standby chaos: ${JSON.stringify({ ...stats, kills, readySeen })}`);
      expect(kills).toBeGreaterThanOrEqual(2);
      expect(stats.refused).toBe(0);
      expect(stats.ok).toBeGreaterThan(0);
      expect(await supervisorAlive(proxy)).toBe(true);
      expect(proxy.output()).not.toMatch(/"level":"(error|fatal)"/);
      await eventually(
        `a loaded standby (proxy output: ${proxy.output().slice(-3000)})`,
        () =>
          httpJson<{ engines: (Engine & { loaded: boolean })[] }>(
            h as Harness,
            a,
            'http://127.0.0.1:15000/config',
          ),
        (c) => c.engines.some((e) => e.role === 'standby' && e.loaded),
        15_000,
      );
    }, 40_000);
  },
);
