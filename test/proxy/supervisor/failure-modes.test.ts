/**
 * REMORA_FAILURE_MODE (DESIGN §4) with a fixture engine whose next starts the test makes fail
 * (through a control file), so the outage lasts as long as the test wants.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { config, get, metric, request, sleep, startLoad, startSupervisor, waitFor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

let app: http.Server;
let appPort = 0;
let sup: RunningSupervisor | undefined;
const controlDir = mkdtempSync(join(tmpdir(), 'remora-fm-'));

beforeAll(async () => {
  app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('app direct\n'));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;
});
afterAll(() => {
  rmSync(controlDir, { recursive: true, force: true });
  app.closeAllConnections();
  app.close();
});
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

/** Starts a supervisor in `mode`; `outage()` kills the engine and makes every restart fail. */
async function withMode(
  mode: string,
  env: Record<string, string> = {},
): Promise<{ s: RunningSupervisor; outage(): Promise<void>; recover(): void }> {
  const control = join(controlDir, `engine-${mode}-${Date.now()}`);
  writeFileSync(control, 'ok');
  const s = await startSupervisor({
    env: {
      [ENV.failureMode]: mode,
      [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
      FIXTURE_ENGINE_FILE: control,
      ...env,
    },
  });
  sup = s;
  return {
    s,
    outage: async () => {
      writeFileSync(control, 'fail-start');
      const c = await config(s);
      process.kill(c.engines.find((e) => e.role === 'active')?.pid as number, 'SIGKILL');
    },
    recover: () => writeFileSync(control, 'ok'),
  };
}

function events(s: RunningSupervisor, name: string): Record<string, unknown>[] {
  return s.logs().filter((l) => l.event === name);
}

describe('failure modes (fixture engine, loopback, explicit mode)', () => {
  it('degrade: while no engine runs the supervisor relays at L4 to the app; zero refused; security events and gauge', async () => {
    const { s, outage, recover } = await withMode('degrade');
    expect((await get(s.ports.inbound, '/')).body).toMatch(/^engine 1/);
    const load = startLoad(s.ports.inbound, 4);
    await sleep(300);
    await outage();
    await waitFor('degraded', async () => (await get(s.ports.inbound, '/')).body === 'app direct\n');
    const ready = await get(s.ports.health, '/healthz/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatch(/degraded/);
    expect(await metric(s, 'remora_proxy_degraded')).toBe(1);
    expect((await config(s)).degraded).toBe(true);
    await sleep(1000);
    recover();
    await waitFor(
      'engine back',
      async () => (await get(s.ports.inbound, '/')).body.startsWith('engine'),
      15_000,
    );
    const stats = await load.stop();
    expect(stats.refused).toBe(0);
    expect(stats.badStatus).toBe(0);
    expect(await metric(s, 'remora_proxy_degraded')).toBe(0);
    expect(
      await metric(s, 'remora_supervisor_relayed_connections_total', { listener: 'inbound' }),
    ).toBeGreaterThan(0);
    const started = events(s, 'degraded_mode_started');
    const stopped = events(s, 'degraded_mode_stopped');
    expect(started).toHaveLength(1);
    expect(started[0]?.level).toBe('warn');
    expect(stopped).toHaveLength(1);
    expect(stopped[0]?.level).toBe('warn');
  });

  it('degrade under strict mTLS: no relay (connections reset), not ready, a security event says why', async () => {
    const { s, outage } = await withMode('degrade', { [ENV.mtlsMode]: 'strict' });
    await outage();
    await waitFor('refused event', () => events(s, 'degraded_mode_refused').length === 1);
    const err = await request(s.ports.inbound, '/').then(
      () => 'answered',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(err).toBe('ECONNRESET');
    expect((await get(s.ports.health, '/healthz/ready')).status).toBe(503);
    expect(await metric(s, 'remora_proxy_degraded')).toBe(0);
    expect(await metric(s, 'remora_supervisor_relayed_connections_total')).toBe(0);
  });

  it('fail-closed: connections wait for the bound, then are reset; not ready but live; served again after recovery', async () => {
    const { s, outage, recover } = await withMode('fail-closed', { [ENV.engineWaitSeconds]: '0.8' });
    await outage();
    await waitFor('not ready', async () => (await get(s.ports.health, '/healthz/ready')).status === 503);
    expect((await get(s.ports.health, '/healthz/live')).status).toBe(200);
    const err = await request(s.ports.inbound, '/').then(
      () => 'answered',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(err).toBe('ECONNRESET');
    // The log line travels through the supervisor's stdout pipe, which may trail the reset.
    await waitFor('wait-expired event', () => events(s, 'engine_wait_expired').length > 0);
    expect(events(s, 'engine_wait_expired')).toHaveLength(1);
    expect(
      await metric(s, 'remora_supervisor_reset_connections_total', { reason: 'no_engine' }),
    ).toBeGreaterThan(0);
    recover();
    await waitFor(
      'ready again',
      async () => (await get(s.ports.health, '/healthz/ready')).status === 200,
      15_000,
    );
    expect((await get(s.ports.inbound, '/')).body).toMatch(/^engine/);
  });

  it('restart: liveness fails after the grace period without an engine, and passes again once one is ready', async () => {
    const { s, outage, recover } = await withMode('restart', {
      [ENV.restartGraceSeconds]: '0.5',
      [ENV.engineWaitSeconds]: '30',
    });
    expect((await get(s.ports.health, '/healthz/live')).status).toBe(200);
    await outage();
    await waitFor('not live', async () => (await get(s.ports.health, '/healthz/live')).status === 503);
    expect((await get(s.ports.health, '/healthz/live')).body).toMatch(/no engine ready for \d+ ms/);
    // connections still wait (not reset) inside the engine-wait bound, and get served after recovery
    const pending = request(s.ports.inbound, '/', { timeoutMs: 20_000 });
    await sleep(200);
    recover();
    expect((await pending).body).toMatch(/^engine/);
    expect((await get(s.ports.health, '/healthz/live')).status).toBe(200);
  });
});
