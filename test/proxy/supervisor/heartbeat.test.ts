/**
 * The light heartbeat (docs/supervisor.md, "Heartbeats and metrics"): the first heartbeat
 * carries the engine's whole registry, later ones only the series that changed; the supervisor's
 * /metrics stays exact on scrape and across a SIGKILL, and a malformed delta kills the engine as
 * any malformed message does. Fixture engine (fixtures/engine.mjs) over the real protocol.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { config, get, metric, sleep, startSupervisor, waitFor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

let sup: RunningSupervisor | undefined;
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

async function requests(s: RunningSupervisor, n: number): Promise<void> {
  for (let i = 0; i < n; i++) expect((await get(s.ports.inbound, '/')).status).toBe(200);
}

async function activePid(s: RunningSupervisor): Promise<{ pid: number; generation: number }> {
  const c = await config(s);
  const e = c.engines.find((x) => x.role === 'active' && x.state === 'ready');
  if (e === undefined) throw new Error(`no ready engine: ${JSON.stringify(c)}`);
  return e;
}

describe('heartbeat deltas (fixture engine, loopback)', () => {
  it.each([
    ['deltas', 'on'],
    ['whole snapshots, as an older engine sends', 'off'],
  ])(
    '%s: a count shows on /metrics at once, and a SIGKILL after a heartbeat loses none of it',
    async (_name, mode) => {
      sup = await startSupervisor({ env: { FIXTURE_DELTA: mode } });
      const s = sup;
      await requests(s, 5);
      // the scrape asks for a fresh heartbeat: exact
      expect(await metric(s, 'remora_requests_total')).toBe(5);
      await requests(s, 7);
      // no scrape now: only the periodic heartbeat (1 s) carries these 7
      await sleep(1600);
      const first = await activePid(s);
      process.kill(first.pid, 'SIGKILL');
      await waitFor(
        'the next generation',
        async () => (await activePid(s).catch(() => first)).generation > 1,
      );
      expect(await metric(s, 'remora_requests_total')).toBe(12);
      await requests(s, 3);
      await sleep(600); // past the scrape coalescing window (snapshots.ts): this scrape asks anew
      expect(await metric(s, 'remora_requests_total')).toBe(15);
      expect(await metric(s, 'remora_engine_restarts_total')).toBe(1);
    },
  );

  it.each([
    ['bad-labels', /heartbeat: malformed metrics snapshot/],
    ['reshape', /heartbeat: remora_requests_total: a delta changed the metric's type, labels or buckets/],
  ])('a malformed delta (%s) kills the engine; what the supervisor had stands', async (mode, reason) => {
    sup = await startSupervisor({ env: { FIXTURE_DELTA: mode } });
    const s = sup;
    await requests(s, 4);
    // the first heartbeat (whole) was fine; the scrape's fresh one is the bad delta
    await get(s.ports.metrics, '/metrics');
    await waitFor('the engine killed', () =>
      s.logs().some((l) => l.event === 'engine_exited' && reason.test(String(l.reason))),
    );
    // the 4 requests were never in a good heartbeat (the first came before them): at most 4 lost,
    // never a negative or garbage value
    const n = await metric(s, 'remora_requests_total');
    expect(n).toBeGreaterThanOrEqual(0);
    expect(n).toBeLessThanOrEqual(4);
    expect(await metric(s, 'remora_engine_restarts_total')).toBeGreaterThanOrEqual(1);
  });
});
