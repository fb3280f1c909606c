/**
 * Upgrades driven by the control plane (docs/upgrades.md), the compiled supervisor with the real
 * engine on loopback against the injector's real CA listener (its engine routes, static tokens):
 * the mesh config names v2 and the proxy fetches, verifies and runs it in place under load; a
 * broken version rolls back by itself and is not retried; a tampered bundle (its bytes changed
 * after the injector hashed them) is refused and nothing runs from it; builtin brings it back.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { DEFAULT_MESH_CONFIG } from '../../../injector/src/config/mesh.js';
import type { EngineSpec, MeshConfig } from '../../../injector/src/config/mesh.js';
import { buildEngineBundle } from '../../../injector/src/engine/build.js';
import { BundleDir } from '../../../injector/src/engine/bundles.js';
import { Leases } from '../../../injector/src/engine/leases.js';
import { engineRoutes } from '../../../injector/src/engine/routes.js';
import type { EngineRoutes } from '../../../injector/src/engine/routes.js';
import { PolicyStore } from '../../../injector/src/policy/store.js';
import { policyRoute } from '../../../injector/src/policy/stream.js';
import { startLoopbackCa } from '../../helpers/workload-cert.js';
import { pinoLines } from '../../injector/policy/helpers.js';
import { config, metric, startLoad, startSupervisor, waitFor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

const ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));
const PROXY_DIR = fileURLToPath(new URL('../../../proxy/', import.meta.url));
const TD = 'rollout.test';
const TOKEN = 'token-of-the-shop-web-pod-0123';

const dir = mkdtempSync(join(tmpdir(), 'remora-rollout-'));
const bundleDir = join(dir, 'served');
const bundleRoot = join(dir, 'root');
let engine: EngineSpec = DEFAULT_MESH_CONFIG.engine;
const mesh = (): MeshConfig => ({ ...DEFAULT_MESH_CONFIG, engine });
const { log, lines } = pinoLines();
const leases = new Leases();
const bundles = new BundleDir(bundleDir);
let routes: EngineRoutes;
let ca: CaServer;
let app: http.Server;
let sup: RunningSupervisor | undefined;

beforeAll(async () => {
  const root = newRoot(TD);
  routes = engineRoutes({ bundles, mesh, leases, logger: log, pollMs: 100 });
  ca = await startLoopbackCa(root, TD, {
    reviewer: staticTokenReviewer(new Map([[TOKEN, { namespace: 'shop', serviceAccount: 'web' }]])),
    routes: [policyRoute(new PolicyStore(log)), ...routes.routes],
    logger: log,
  });
  writeFileSync(join(dir, 'bundle.pem'), root.certPem);
  writeFileSync(join(dir, 'token'), TOKEN);
  app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('app ok\n'));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  await sup?.stop();
  routes?.stop();
  await ca?.close();
  app?.closeAllConnections();
  app?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface RolloutStatus {
  state: string;
  detail: string | null;
  running: string;
  failed: { version: string; outcome: string }[];
}
const rollout = async (s: RunningSupervisor): Promise<RolloutStatus> =>
  (await config(s)).rollout as RolloutStatus;
const set = (version: string): void => {
  engine = { ...DEFAULT_MESH_CONFIG.engine, version };
};

describe('control-plane upgrades (supervisor + real engine + the injector routes, loopback)', () => {
  it('v2 in place under load, a broken version rolled back, a tampered bundle refused, builtin again: zero failed requests', async () => {
    buildEngineBundle({ proxyDir: PROXY_DIR, version: 'v2', outDir: bundleDir });
    buildEngineBundle({
      proxyDir: PROXY_DIR,
      version: 'broken',
      outDir: bundleDir,
      entry: "throw new Error('this engine build is broken');\n",
    });
    sup = await startSupervisor({
      engine: ENGINE,
      env: {
        [ENV.inboundTarget]: `127.0.0.1:${(app.address() as AddressInfo).port}`,
        [ENV.accessLog]: 'off',
        [ENV.drainSeconds]: '2',
        [ENV.caAddress]: `127.0.0.1:${ca.port}`,
        [ENV.discoveryAddress]: `127.0.0.1:${ca.port}`,
        [ENV.caBundleFile]: join(dir, 'bundle.pem'),
        [ENV.tokenFile]: join(dir, 'token'),
        [ENV.trustDomain]: TD,
        [ENV.podName]: 'web-0',
        [ENV.podNamespace]: 'shop',
        [ENV.engineBundleRoot]: bundleRoot,
      },
    });
    const s = sup;
    await waitFor('rollout current on builtin', async () => (await rollout(s)).state === 'current', 15_000);
    const load = startLoad(s.ports.inbound, 4, 90_000);

    // v2: fetched, verified, upgraded in place
    set('v2');
    await waitFor('v2 runs', async () => (await config(s)).version === 'v2', 30_000);
    const c = await config(s);
    expect(c.engines.find((e) => e.role === 'active')?.version).toBe('v2');
    expect(readFileSync(join(bundleRoot, 'v2', '.digest'), 'utf8').trim()).toBe(
      (routes.current() as { digest: string }).digest,
    );
    expect(await metric(s, 'remora_engine_rollout_upgrades_total', { outcome: 'succeeded' })).toBe(1);
    await waitFor('lease released', () => Promise.resolve(leases.list().length === 0));
    expect(lines.find((l) => l.event === 'engine_lease_granted')).toMatchObject({
      pod: 'shop/web-0',
      version: 'v2',
    });
    expect(lines.find((l) => l.event === 'engine_lease_released')).toMatchObject({ outcome: 'succeeded' });

    // broken: not ready, rolled back by itself; v2 keeps serving; not tried again
    set('broken');
    await waitFor('rolled back', async () => (await rollout(s)).state === 'rolled-back', 30_000);
    expect((await config(s)).version).toBe('v2');
    expect(await metric(s, 'remora_engine_rollout_upgrades_total', { outcome: 'rolled_back' })).toBe(1);
    expect(s.logs().find((l) => l.event === 'engine_rolled_back')).toMatchObject({ version: 'broken' });
    await waitFor('reported', () =>
      Promise.resolve(
        [...routes.reports.values()].some((r) => r.state === 'rolled-back' && r.version === 'v2'),
      ),
    );

    // tampered: the injector hashed v3, then its bytes changed on disk; the proxy refuses them
    const v3 = buildEngineBundle({ proxyDir: PROXY_DIR, version: 'v3', outDir: bundleDir });
    const announced = await bundles.resolve('v3');
    expect(announced).toMatchObject({ ok: true, bundle: { digest: v3.digest } });
    const bytes = readFileSync(v3.path);
    bytes[100] = (bytes[100] as number) ^ 0xff;
    writeFileSync(v3.path, bytes);
    set('v3');
    await waitFor('refused', async () => (await rollout(s)).state === 'refused', 30_000);
    expect((await rollout(s)).detail).toMatch(/digest mismatch/);
    expect(s.logs().find((l) => l.event === 'engine_bundle_digest_mismatch')).toMatchObject({
      version: 'v3',
    });
    expect(readdirSync(bundleRoot).filter((n) => n.startsWith('v3') || n.startsWith('.unpack'))).toEqual([]);
    expect(s.logs().filter((l) => l.event === 'engine_starting' && l.version === 'v3')).toEqual([]);
    expect(await metric(s, 'remora_engine_rollout_upgrades_total', { outcome: 'refused' })).toBe(1);
    expect((await config(s)).version).toBe('v2');

    // builtin: the whole mesh back to the image's engine by config
    set('builtin');
    await waitFor('builtin runs', async () => (await config(s)).version === 'builtin', 30_000);
    const stats = await load.stop();
    expect(stats).toMatchObject({ badStatus: 0, refused: 0, reset: 0, other: 0 });
    expect(stats.ok).toBeGreaterThan(100);
  }, 150_000);
});
