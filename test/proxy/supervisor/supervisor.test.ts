import { afterEach, describe, expect, it } from 'vitest';
import {
  config,
  get,
  loadLoop,
  metric,
  request,
  sleep,
  startLoad,
  startSupervisor,
  upgrade,
  waitFor,
} from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

let sup: RunningSupervisor | undefined;
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

async function killEngine(s: RunningSupervisor): Promise<number> {
  const c = await config(s);
  const active = c.engines.find((e) => e.role === 'active' && e.state === 'ready');
  if (active === undefined) throw new Error(`no ready engine: ${JSON.stringify(c)}`);
  process.kill(active.pid, 'SIGKILL');
  return active.generation;
}

describe('supervisor (fixture engine, loopback)', () => {
  it('kill -9 of the engine under load: no connection refused, service comes back, counters continue', async () => {
    sup = await startSupervisor();
    const s = sup;
    const load = loadLoop(s.ports.inbound, 4000, 6);
    let before = 0;
    for (let i = 0; i < 3; i++) {
      await sleep(800);
      before = await metric(s, 'remora_requests_total');
      await killEngine(s);
    }
    const stats = await load;
    expect(stats.refused).toBe(0);
    expect(stats.ok).toBeGreaterThan(0);
    await waitFor('ready again', async () => (await get(s.ports.health, '/healthz/ready')).status === 200);
    expect((await get(s.ports.inbound, '/')).status).toBe(200);
    expect(await metric(s, 'remora_engine_restarts_total')).toBe(3);
    // counters of dead generations are kept: never below what was seen before the last kill
    expect(await metric(s, 'remora_requests_total')).toBeGreaterThanOrEqual(before);
    const c = await config(s);
    expect(c.generation).toBe(4);
    // the supervisor's own listeners never went away
    expect((await get(s.ports.admin, '/config')).status).toBe(200);
  });

  it('REMORA_ENGINE_STANDBY=on: a killed engine is replaced by the waiting standby, and a new standby follows', async () => {
    sup = await startSupervisor({ env: { REMORA_ENGINE_STANDBY: 'on' } });
    const s = sup;
    const standbyOf = async (): Promise<number | undefined> =>
      (await config(s)).engines.find((e) => e.role === 'standby')?.pid;
    await waitFor('standby', async () => (await standbyOf()) !== undefined);
    const spare = (await standbyOf()) as number;
    const load = startLoad(s.ports.inbound, 4);
    await sleep(200);
    await killEngine(s);
    await waitFor('standby serving', async () => {
      const c = await config(s);
      return c.engines.some((e) => e.role === 'active' && e.state === 'ready' && e.pid === spare);
    });
    const c = await config(s);
    expect(c.generation).toBe(2);
    await waitFor('a new standby', async () => ((await standbyOf()) ?? spare) !== spare);
    const stats = await load.stop();
    expect(stats.refused).toBe(0);
    expect(await metric(s, 'remora_engine_restarts_total')).toBe(1);
    expect(s.logs().some((l) => l.event === 'engine_starting' && l.standby === true)).toBe(true);
    // a standby does not hold up shutdown (regression: drain waited for it forever)
    s.proc.kill('SIGTERM');
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });

  it('connections wait in the kernel backlog while the engine is frozen and killed; the next generation serves them', async () => {
    sup = await startSupervisor({ env: { FIXTURE_ENGINE: 'ok' } });
    const s = sup;
    // Stop the engine from accepting by freezing it: connections queue in the kernel.
    const c = await config(s);
    const pid = c.engines[0]?.pid as number;
    process.kill(pid, 'SIGSTOP');
    const pending = request(s.ports.inbound, '/', { timeoutMs: 20_000 });
    await sleep(300);
    process.kill(pid, 'SIGKILL');
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.headers['x-generation']).toBe('2');
  });

  it('an engine that never becomes ready is killed and restarted with growing backoff; readiness stays 503', async () => {
    sup = await startSupervisor({
      env: { FIXTURE_ENGINE: 'never-ready', REMORA_ENGINE_READY_SECONDS: '0.2' },
      waitReady: false,
    });
    const s = sup;
    await waitFor('four attempts', () => s.logs().filter((l) => l.event === 'engine_starting').length >= 4);
    const ready = await get(s.ports.health, '/healthz/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/no engine ready/);
    const exits = s.logs().filter((l) => l.event === 'engine_exited');
    expect(exits[0]?.reason).toMatch(/not ready within 200 ms/);
    const starts = s
      .logs()
      .filter((l) => l.event === 'engine_starting')
      .map((l) => Date.parse(l.time as string));
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    // 200 ms ready bound + 0, 100, 200 ms of backoff: each gap longer than the one before
    expect(gaps[2] as number).toBeGreaterThan(gaps[0] as number);
    expect(await metric(s, 'remora_engine_restarts_total')).toBeGreaterThanOrEqual(3);
    // fail-closed: still live
    expect((await get(s.ports.health, '/healthz/live')).status).toBe(200);
  });

  it('health, liveness and metrics answer from the supervisor', async () => {
    sup = await startSupervisor();
    const s = sup;
    expect((await get(s.ports.health, '/healthz/live')).status).toBe(200);
    expect((await get(s.ports.health, '/healthz/nope')).status).toBe(404);
    expect((await get(s.ports.metrics, '/metrics')).headers['content-type']).toMatch(
      /text\/plain; version=0.0.4/,
    );
    const text = (await get(s.ports.metrics, '/metrics')).body;
    expect(text).toMatch(/remora_build_info\{version="0.1.0",node="v\d+/);
    expect(text).toMatch(/remora_proxy_degraded 0/);
  });

  it('upgrade without a token is 401, with a bad body 400 naming the problem, and nothing changes', async () => {
    sup = await startSupervisor();
    const s = sup;
    const noToken = await request(s.ports.admin, '/upgrade', { method: 'POST' });
    expect(noToken.status).toBe(401);
    expect(noToken.headers['www-authenticate']).toBe('Bearer');
    const wrong = await request(s.ports.admin, '/upgrade', {
      method: 'POST',
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.status).toBe(401);
    const drainNoToken = await request(s.ports.admin, '/drain', { method: 'POST' });
    expect(drainNoToken.status).toBe(401);
    const bad = await upgrade(s, { version: '../etc', config: { nope: 1, logLevel: 'loud' }, extra: true });
    expect(bad.status).toBe(400);
    const body = JSON.parse(bad.body) as { errors: string[] };
    expect(body.errors.join('\n')).toMatch(/unknown field "extra"/);
    const bad2 = await upgrade(s, { version: '../etc', config: { nope: 1 } });
    expect(bad2.status).toBe(400);
    const e2 = (JSON.parse(bad2.body) as { errors: string[] }).errors.join('\n');
    expect(e2).toMatch(/not a bundle directory name/);
    expect(e2).toMatch(/unknown field "nope"/);
    const bad3 = await upgrade(s, { config: { logLevel: 'loud', inboundPort: 1 } });
    const e3 = (JSON.parse(bad3.body) as { errors: string[] }).errors.join('\n');
    expect(bad3.status).toBe(400);
    expect(e3).toMatch(/inboundPort belongs to the supervisor/);
    const bad4 = await upgrade(s, { config: { logLevel: 'loud' } });
    expect((JSON.parse(bad4.body) as { errors: string[] }).errors.join('\n')).toMatch(
      /REMORA_LOG_LEVEL.*loud/,
    );
    const notJson = await request(s.ports.admin, '/upgrade', {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
      body: '{',
    });
    expect(notJson.status).toBe(400);
    expect((await config(s)).generation).toBe(1);
    expect((await request(s.ports.admin, '/config', { method: 'POST' })).status).toBe(405);
    expect((await get(s.ports.admin, '/nope')).status).toBe(404);
  });
});
