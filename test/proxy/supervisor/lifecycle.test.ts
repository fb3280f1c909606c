/**
 * Shutdown and control: SIGTERM drains the real engine (in-flight requests finish) and the
 * supervisor exits after it; /quitquitquit exits at once but needs the token (unless the pod
 * asked); /drain needs the token; SIGHUP
 * upgrades in place; bad config exits non-zero listing every error.
 */
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { FIXTURES, config, get, request, sleep, startSupervisor, waitFor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

const ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));
const BIN = fileURLToPath(new URL('../../../proxy/dist/bin/remora-proxy.js', import.meta.url));

let app: http.Server;
let appPort = 0;
let sup: RunningSupervisor | undefined;

beforeAll(async () => {
  app = http.createServer((req, res) => {
    req.resume();
    const delay = req.url === '/slow' ? 1500 : 0;
    setTimeout(() => res.end(`done ${req.url}\n`), delay);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;
});
afterAll(() => {
  app.closeAllConnections();
  app.close();
});
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

function start(extra: Readonly<Record<string, string>> = {}): Promise<RunningSupervisor> {
  return startSupervisor({
    engine: ENGINE,
    env: {
      [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
      [ENV.accessLog]: 'off',
      [ENV.drainSeconds]: '5',
      ...extra,
    },
  });
}

describe('supervisor lifecycle (real engine, loopback)', () => {
  it('SIGTERM under load: every in-flight request completes, then the supervisor and the engine exit 0', async () => {
    sup = await start();
    const s = sup;
    const enginePid = (await config(s)).engines[0]?.pid as number;
    const inflight = Array.from({ length: 5 }, () => request(s.ports.inbound, '/slow'));
    await sleep(300);
    s.proc.kill('SIGTERM');
    const replies = await Promise.all(inflight);
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(() => process.kill(enginePid, 0)).toThrow();
    expect(s.logs().some((l) => l.event === 'shutdown')).toBe(true);
  });

  it('the app cannot stop its sidecar: /quitquitquit without the token is 401 and the proxy keeps serving', async () => {
    sup = await start();
    const s = sup;
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: s.token },
    ];
    for (const headers of attempts) {
      const r = await request(s.ports.admin, '/quitquitquit', { method: 'POST', headers });
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toMatchObject({ error: 'RMR_SUP_UNAUTHORIZED' });
    }
    // Still up and still proxying after the refusals.
    expect((await request(s.ports.inbound, '/after')).body).toBe('done /after\n');
    expect((await get(s.ports.health, '/healthz/ready')).status).toBe(200);
    expect(s.proc.exitCode).toBe(null);
    expect(s.logs().some((l) => l.event === 'admin_unauthorized' && l.path === '/quitquitquit')).toBe(true);
  });

  it('/quitquitquit with the token makes the supervisor exit 0 promptly', async () => {
    sup = await start();
    const s = sup;
    const r = await request(s.ports.admin, '/quitquitquit', {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
    });
    expect(r.status).toBe(200);
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });

  it('/quitquitquit without the token works only for a pod that asked (REMORA_QUIT_WITHOUT_TOKEN=on)', async () => {
    sup = await start({ [ENV.quitWithoutToken]: 'on' });
    const s = sup;
    const r = await request(s.ports.admin, '/quitquitquit', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.logs().some((l) => l.event === 'supervisor_listening' && l.quitWithoutToken === true)).toBe(
      true,
    );
  });

  it('a bad REMORA_QUIT_WITHOUT_TOKEN exits non-zero naming it', () => {
    const r = spawnSync(process.execPath, [BIN], {
      env: { PATH: process.env.PATH ?? '', [ENV.quitWithoutToken]: 'maybe' },
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${ENV.quitWithoutToken}: must be on or off: "maybe"`);
  });

  it('/drain with the token drains and answers when done; readiness turns 503; the supervisor stays up', async () => {
    sup = await start();
    const s = sup;
    const r = await request(s.ports.admin, '/drain', {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
    });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ drained: true });
    expect((await get(s.ports.health, '/healthz/ready')).status).toBe(503);
    expect((await config(s)).engines).toEqual([]);
    expect(s.proc.exitCode).toBe(null);
    const up = await request(s.ports.admin, '/upgrade', {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
    });
    expect(up.status).toBe(409);
  });

  it('SIGHUP upgrades in place to a new generation', async () => {
    sup = await start();
    const s = sup;
    s.proc.kill('SIGHUP');
    await waitFor('generation 2 serving', async () => (await config(s)).generation === 2, 20_000);
    expect((await get(s.ports.inbound, '/x')).body).toBe('done /x\n');
    await waitFor('gen 1 retired', async () => (await config(s)).engines.length === 1, 20_000);
  });

  it('bad configuration exits non-zero before binding, listing every error', () => {
    const r = spawnSync(process.execPath, [BIN], {
      env: {
        PATH: process.env.PATH ?? '',
        [ENV.failureMode]: 'sometimes',
        [ENV.engineWaitSeconds]: 'soon',
        [ENV.appProbes]: '{"/nope": {}}',
        [ENV.adminTokenFile]: `${FIXTURES}/never-written`,
      },
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/REMORA_FAILURE_MODE: must be one of/);
    expect(r.stderr).toMatch(/REMORA_ENGINE_WAIT_SECONDS: not a number of seconds/);
    expect(r.stderr).toMatch(/REMORA_APP_PROBES: key "\/nope"/);
  });
});
