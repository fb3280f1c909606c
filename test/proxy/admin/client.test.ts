/**
 * `remora-proxy admin …` (proxy/src/admin/client.ts) against a real supervisor running the real
 * engine on loopback, and the supervisor's GET /config carrying the engine's effective config.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall } from '../../../proxy/src/admin/client.js';
import { ENV } from '../../../proxy/src/contract.js';
import { config, startSupervisor, waitFor } from '../supervisor/helpers.js';
import type { RunningSupervisor } from '../supervisor/helpers.js';

const ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));
const BIN = fileURLToPath(new URL('../../../proxy/dist/bin/remora-proxy.js', import.meta.url));

let app: http.Server;
let appPort = 0;
let sup: RunningSupervisor;

function admin(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'admin', ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

beforeAll(async () => {
  app = http.createServer((_req, res) => res.end('ok\n'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;
  sup = await startSupervisor({
    engine: ENGINE,
    env: { [ENV.inboundTarget]: `127.0.0.1:${appPort}`, [ENV.accessLog]: 'off', [ENV.drainSeconds]: '1' },
  });
});
afterAll(async () => {
  await sup.stop();
  app.close();
});

const envOf = (s: RunningSupervisor): Record<string, string> => ({
  [ENV.adminPort]: String(s.ports.admin),
  [ENV.bindHost]: '127.0.0.1',
  [ENV.adminTokenFile]: join(s.dir, 'admin-token'),
});

describe('the supervisor shows the serving engine on GET /config', () => {
  it("carries the engine's effective config, its listeners and state beside the supervisor's own", async () => {
    await waitFor('engine view', async () => (await config(sup)).engine != null, 10_000);
    const c = await config(sup);
    const engine = c.engine as {
      config: Record<string, unknown>;
      listeners: Record<string, unknown>;
      state: string;
    };
    expect(engine.config.inboundTarget).toEqual({ host: '127.0.0.1', port: appPort });
    expect(engine.config.failureMode).toBe('fail-closed');
    expect(Object.keys(engine.listeners)).toContain('inbound');
    expect(engine.state).toBe('serving');
    // The supervisor's own part is still there.
    expect(c.listeners).toBeDefined();
    expect(c.engines).toHaveLength(1);
  });
});

describe('remora-proxy admin (the compiled binary, against the running supervisor)', () => {
  it('admin config prints the same JSON as GET /config, without a token', async () => {
    const env = envOf(sup);
    const r = await admin(['config'], { ...env, [ENV.adminTokenFile]: '/nonexistent/token' });
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.out) as { engine: { config: Record<string, unknown> } };
    expect(printed.engine.config.inboundTarget).toEqual({ host: '127.0.0.1', port: appPort });
  });

  it('admin upgrade replaces the engine (token from the file); a wrong token exits 1 with the 401', async () => {
    const env = envOf(sup);
    const before = (await config(sup)).generation as number;
    const r = await admin(['upgrade'], env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { ok: boolean }).ok).toBe(true);
    expect((await config(sup)).generation).toBe(before + 1);
    const bad = await admin(['drain'], { ...env, [ENV.adminTokenFile]: join(sup.dir, 'no-such-token') });
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('cannot read the admin token');
    const wrongPort = await admin(['config'], { ...env, [ENV.adminPort]: '1' });
    expect(wrongPort.code).toBe(1);
    expect(wrongPort.err).toContain('ECONNREFUSED');
  });

  it('usage errors exit 2; --help exits 0', async () => {
    const env = envOf(sup);
    const r = await admin(['frob'], env);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command "frob"');
    expect((await admin(['--help'], env)).out).toContain('usage: remora-proxy admin COMMAND');
  });
});

describe('adminCall (pure)', () => {
  it('maps each command line to one admin call', () => {
    expect(adminCall(['config'])).toEqual({ method: 'GET', path: '/config', auth: false });
    expect(adminCall(['upgrade', '--version', 'v2'])).toEqual({
      method: 'POST',
      path: '/upgrade',
      auth: true,
      body: '{"version":"v2"}',
    });
    expect(adminCall(['upgrade', '--version=v2'])).toMatchObject({ body: '{"version":"v2"}' });
    expect(adminCall(['logging', 'debug'])).toEqual({
      method: 'POST',
      path: '/logging?level=debug',
      auth: true,
    });
    expect(adminCall(['upgrade', '--version'])).toBe('upgrade takes only --version V');
    expect(adminCall(['logging', 'a b'])).toBe('logging takes one LEVEL');
    expect(adminCall([])).toBe('a command is required');
  });
});
