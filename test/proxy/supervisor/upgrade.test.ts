/**
 * The supervisor with the real engine (proxy/dist/engine-child.js) in explicit mode on loopback:
 * the inbound listener forwards to an app server started by the test.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import {
  config,
  get,
  loadLoop,
  metric,
  sleep,
  startLoad,
  startSupervisor,
  upgrade,
  waitFor,
} from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

const ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));

let app: http.Server;
let appPort = 0;
let sup: RunningSupervisor | undefined;
const bundleDir = mkdtempSync(join(tmpdir(), 'remora-bundles-'));

beforeAll(async () => {
  app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('app ok\n'));
  });
  app.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;
});
afterAll(() => {
  rmSync(bundleDir, { recursive: true, force: true });
  app.closeAllConnections();
  app.close();
});
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

function withBundles(dir: string): string {
  const root = join(dir, 'bundles');
  const write = (version: string, source: string): void => {
    mkdirSync(join(root, version), { recursive: true });
    writeFileSync(join(root, version, 'engine.js'), source);
  };
  write('v2', `import ${JSON.stringify(ENGINE)};\n`);
  write('broken', `throw new Error('this engine bundle is broken');\n`);
  return root;
}

async function start(env: Record<string, string> = {}): Promise<RunningSupervisor> {
  return startSupervisor({
    engine: ENGINE,
    env: {
      [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
      [ENV.accessLog]: 'off',
      [ENV.drainSeconds]: '2',
      ...env,
    },
  });
}

describe('supervisor with the real engine (explicit mode, loopback)', () => {
  it('kill -9 of the engine under load: zero refused, service comes back, request counters continue', async () => {
    sup = await start();
    const s = sup;
    expect((await get(s.ports.inbound, '/')).body).toBe('app ok\n');
    const load = loadLoop(s.ports.inbound, 5000, 6);
    let seen = 0;
    for (let i = 0; i < 3; i++) {
      await sleep(1300);
      seen = await metric(s, 'remora_requests_total');
      const c = await config(s);
      process.kill(c.engines.find((e) => e.role === 'active')?.pid as number, 'SIGKILL');
    }
    const stats = await load;
    expect(stats.refused).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
    await waitFor('ready', async () => (await get(s.ports.health, '/healthz/ready')).status === 200);
    expect(await metric(s, 'remora_requests_total')).toBeGreaterThanOrEqual(seen);
    expect(await metric(s, 'remora_engine_restarts_total')).toBe(3);
  });

  it('20 upgrades in a row under load: zero failed, zero refused, zero reset', async () => {
    sup = await start();
    const s = sup;
    // two clients (one keep-alive, one new connection per request): steady, and light enough
    // that 20 engine starts fit in the test's time on a shared 2-core machine
    const load = startLoad(s.ports.inbound, 2);
    const results: { ok: boolean; reason?: string; durationMs: number }[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await upgrade(s, i % 2 === 0 ? {} : { config: { logLevel: 'warn' } });
      results.push(JSON.parse(r.body) as { ok: boolean; durationMs: number });
    }
    // the last old engine drains while the load goes on
    await sleep(500);
    const stats = await load.stop();
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(stats).toMatchObject({ badStatus: 0, refused: 0, reset: 0, other: 0 });
    expect(stats.ok).toBeGreaterThan(200);
    expect((await config(s)).generation).toBe(21);
    // the engine's start time (its imports) bounds this test: about 1 s per upgrade here
  }, 120_000);

  it('an upgrade to a broken engine version rolls back by itself: the old engine keeps serving', async () => {
    const root = withBundles(bundleDir);
    sup = await start({ [ENV.engineBundleRoot]: root });
    const t = sup;
    const load = startLoad(t.ports.inbound, 4);
    const r = await upgrade(t, { version: 'broken' });
    expect(r.status).toBe(500);
    const body = JSON.parse(r.body) as {
      ok: boolean;
      rolledBack: boolean;
      reason: string;
      running: { generation: number };
    };
    expect(body).toMatchObject({ ok: false, rolledBack: true, running: { generation: 1 } });
    expect(body.reason).toMatch(/version broken/);
    const missing = await upgrade(t, { version: 'v9' });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatch(/no engine bundle at/);
    const good = await upgrade(t, { version: 'v2' });
    expect(JSON.parse(good.body)).toMatchObject({ ok: true, running: { version: 'v2', generation: 3 } });
    const stats = await load.stop();
    expect(stats).toMatchObject({ badStatus: 0, refused: 0, reset: 0, other: 0 });
    const c = await config(t);
    expect(c).toMatchObject({ version: 'v2', generation: 3 });
    expect(t.logs().some((l) => l.event === 'upgrade_rolled_back')).toBe(true);
  });
});
