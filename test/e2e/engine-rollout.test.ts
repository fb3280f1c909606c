// Upgrades driven by the control plane, end to end in network namespaces (issue 14 §1,
// docs/upgrades.md). A real remora-injector process (identity CA with static tokens, the mesh
// config from a file, engine bundles from a directory) runs in pod ctrl; pods a, b and c run
// remora-init, remora-proxy as UID/GID 1337 and an HTTP app behind real capture; pod l paces load
// at each app through its proxy the whole time. The mesh config then names:
//   1. v2, a second engine build from this tree (another version stamp): every pod fetches it,
//      checks the digest and upgrades in place, one pod at a time (rollout.maxConcurrent 1);
//   2. broken, a build whose engine fails at start: every pod rolls back by itself, v2 serves;
//   3. v3 pinned to the digest of its good build while the file on the injector was tampered
//      with: every pod refuses it and nothing runs from it.
// Zero failed requests over all of it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ENV, INJECTOR_ENV, PORTS } from '../../proxy/src/contract.js';
import { newRoot } from '../../injector/src/ca/root.js';
import { buildEngineBundle } from '../../injector/src/engine/build.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, eventually, httpJson } from './harness/index.js';
import type { Identity, Pod, Proc } from './harness/index.js';
import { PROXY_IDENTITY, runInit, startProxy } from './harness/remora.js';
import { REPO_ROOT } from './harness/harness.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv', 'ss'],
});
const LOAD = fileURLToPath(new URL('./supervisor-load.mjs', import.meta.url));
const INJECTOR_BIN = `${REPO_ROOT}injector/dist/bin/remora-injector.js`;
const APP: Identity = { uid: 1000, gid: 1000 };
const TD = 'cluster.local';
const CA_PORT = 15012;
const HTTP_PORT = 8080;
/** paced per target pod; three targets */
const RATE = 60;

interface RolloutStatus {
  state: string;
  detail: string | null;
  last: { version: string; outcome: string; at: string; durationMs: number } | null;
}
interface Config {
  version: string;
  engines: { version: string; role: string }[];
  rollout: RolloutStatus;
}

let h: Harness | undefined;
afterAll(() => h?.teardown());

describe.skipIf(skip !== undefined)(`control-plane engine rollout in namespaces ${skip ?? ''}`, () => {
  it('three meshed pods under load: v2 one pod at a time, broken rolled back, tampered refused, zero failed requests', async () => {
    h = Harness.create();
    const harness = h;
    const ctrl = harness.addPod('ctrl');
    const meshed = ['a', 'b', 'c'].map((n) => harness.addPod(n));
    const l = harness.addPod('l');
    const dir = harness.tempDir(PROXY_IDENTITY);
    const served = harness.tempDir();

    // bundles: v2 and v3 from this tree (their own version stamps), broken fails at start
    const v2 = buildEngineBundle({ proxyDir: `${REPO_ROOT}proxy`, version: 'v2', outDir: served });
    buildEngineBundle({
      proxyDir: `${REPO_ROOT}proxy`,
      version: 'broken',
      outDir: served,
      entry: "throw new Error('this engine build is broken');\n",
    });
    const v3 = buildEngineBundle({ proxyDir: `${REPO_ROOT}proxy`, version: 'v3', outDir: served });
    // tampered on the injector's disk after it was built (and its digest published)
    const bytes = readFileSync(v3.path);
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] as number) ^ 0x55;
    writeFileSync(v3.path, bytes);

    const root = newRoot(TD);
    const caDir = harness.tempDir();
    writeFileSync(join(caDir, 'ca.crt'), root.certPem);
    writeFileSync(join(caDir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const tokens = Object.fromEntries(meshed.map((p) => [`token-of-pod-${p.name}-0123456789`, 'shop/web']));
    writeFileSync(join(caDir, 'tokens.json'), JSON.stringify(tokens));
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    const meshFile = join(caDir, 'mesh.yaml');
    const setMesh = (engine: string): void =>
      writeFileSync(meshFile, `engine:\n${engine}  rollout: {maxConcurrent: 1, leaseSeconds: 60}\n`);
    setMesh('  version: builtin\n');
    const injector = harness.spawn(
      ctrl,
      process.execPath,
      [INJECTOR_BIN, '--no-kubernetes', '--mesh-config', meshFile],
      {
        label: 'remora-injector',
        env: {
          [INJECTOR_ENV.caDir]: caDir,
          [INJECTOR_ENV.staticTokens]: join(caDir, 'tokens.json'),
          [INJECTOR_ENV.caPort]: String(CA_PORT),
          [INJECTOR_ENV.port]: String(CA_PORT + 1000),
          [INJECTOR_ENV.engineBundleDir]: served,
          [INJECTOR_ENV.logLevel]: 'info',
        },
      },
    );
    await injector.waitForLine(/"event":"ca_started"/, 15_000);

    const proxies = new Map<Pod, Proc>();
    for (const p of meshed) {
      await runInit(harness, p);
      const tokenFile = join(dir, `${p.name}.token`);
      writeFileSync(tokenFile, `token-of-pod-${p.name}-0123456789`);
      proxies.set(
        p,
        await startProxy(harness, p, {
          [ENV.caAddress]: `${ctrl.ip}:${CA_PORT}`,
          [ENV.discoveryAddress]: `${ctrl.ip}:${CA_PORT}`,
          [ENV.caBundleFile]: join(dir, 'bundle.pem'),
          [ENV.tokenFile]: tokenFile,
          [ENV.trustDomain]: TD,
          [ENV.podName]: `web-${p.name}`,
          [ENV.podNamespace]: 'shop',
          [ENV.engineBundleRoot]: join(dir, `engines-${p.name}`),
          [ENV.accessLog]: 'off',
          [ENV.drainSeconds]: '3',
          // the readiness bound of a new engine: on this shared 2-core machine under load an
          // engine start takes seconds, so a good build gets room; the broken one fails at once
          [ENV.engineReadySeconds]: '60',
          [ENV.logLevel]: 'info',
        }),
      );
      await harness.startAgent(p, 'http-server', [String(HTTP_PORT)], { as: APP });
    }
    const cfg = (p: Pod): Promise<Config> =>
      httpJson<Config>(harness, p, `http://127.0.0.1:${PORTS.admin}/config`);
    const all = async (what: string, ok: (c: Config) => boolean, timeoutMs: number): Promise<Config[]> =>
      eventually(
        what,
        () => Promise.all(meshed.map(cfg)),
        (cs) => cs.every(ok),
        timeoutMs,
      );
    await all('every pod current on builtin', (c) => c.rollout?.state === 'current', 30_000);

    const loads = meshed.map((p) =>
      harness.spawn(l, process.execPath, [LOAD, `http://${p.ip}:${HTTP_PORT}/`, String(RATE), '300'], {
        label: `load ${p.name}`,
      }),
    );
    await new Promise((r) => setTimeout(r, 1000));

    // 1. v2: every pod, one at a time
    const t0 = Date.now();
    setMesh('  version: v2\n');
    const onV2 = await all(
      'every pod on v2',
      (c) => c.version === 'v2' && c.rollout.state === 'current',
      150_000,
    );
    const v2Seconds = (Date.now() - t0) / 1000;
    for (const c of onV2) expect(c.engines.find((e) => e.role === 'active')?.version).toBe('v2');
    const intervals = onV2
      .map((c) => c.rollout.last as NonNullable<RolloutStatus['last']>)
      .map((x) => ({ end: Date.parse(x.at), start: Date.parse(x.at) - x.durationMs, ms: x.durationMs }))
      .sort((x, y) => x.start - y.start);
    for (let i = 1; i < intervals.length; i++)
      expect(intervals[i]?.start).toBeGreaterThanOrEqual((intervals[i - 1] as { end: number }).end);
    const grants = injector
      .output()
      .split('\n')
      .filter((x) => x.includes('"event":"engine_lease_granted"'))
      .map((x) => JSON.parse(x) as { pod: string; version: string; holders: number });
    expect(
      grants
        .filter((g) => g.version === 'v2')
        .map((g) => g.pod)
        .sort(),
    ).toEqual(['shop/web-a', 'shop/web-b', 'shop/web-c']);
    expect(Math.max(...grants.map((g) => g.holders))).toBe(1);
    const served2 = injector
      .output()
      .split('\n')
      .filter((x) => x.includes('"event":"engine_bundle_served"') && x.includes(v2.digest));
    expect(served2).toHaveLength(3);

    // 2. broken: each pod tries once, rolls back by itself, v2 keeps serving
    setMesh('  version: broken\n');
    await all('every pod rolled back', (c) => c.rollout.state === 'rolled-back', 150_000);
    for (const c of await Promise.all(meshed.map(cfg))) {
      expect(c.version).toBe('v2');
      expect(c.rollout.last).toMatchObject({ version: 'broken', outcome: 'rolled_back' });
    }
    for (const p of meshed) expect(proxies.get(p)?.output()).toContain('"event":"engine_rolled_back"');

    // 3. v3 pinned to its good build's digest, the file tampered: refused, nothing runs
    setMesh(`  version: v3\n  digest: ${v3.digest}\n`);
    await all('every pod refused v3', (c) => c.rollout.state === 'refused', 150_000);
    for (const p of meshed) {
      const c = await cfg(p);
      expect(c.version).toBe('v2');
      expect(c.rollout.detail).toMatch(/digest mismatch/);
      expect(c.engines.filter((e) => e.version === 'v3')).toEqual([]);
      const out = proxies.get(p)?.output() ?? '';
      expect(out).toContain('"event":"engine_bundle_digest_mismatch"');
      expect(out).not.toMatch(/"event":"engine_starting"[^\n]*"version":"v3"/);
    }

    await new Promise((r) => setTimeout(r, 1000));
    const stats: Record<string, unknown>[] = [];
    for (const p of loads) {
      process.kill(p.pid, 'SIGTERM');
      await p.exited;
      stats.push(JSON.parse(p.output().trim().split('\n').pop() ?? '{}') as Record<string, unknown>);
    }
    console.log(
      `engine rollout in namespaces: ${JSON.stringify({
        v2Seconds,
        perPodMs: intervals.map((x) => x.ms),
        requests: stats.map((s) => ({
          ok: s.ok,
          badStatus: s.badStatus,
          refused: s.refused,
          reset: s.reset,
          other: s.other,
        })),
      })}`,
    );
    for (const s of stats) {
      expect(s).toMatchObject({ badStatus: 0, refused: 0, reset: 0, other: 0 });
      expect(s.ok as number).toBeGreaterThan(0);
    }
  }, 600_000);
});
