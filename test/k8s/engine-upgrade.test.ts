/**
 * `remora upgrade --version` against a real kube-apiserver with the injector process on its own
 * ServiceAccount (deploy/base RBAC): the CLI writes engine.version into the mesh ConfigMap as
 * stored (the rest of it kept); proxies' reports (the supervisor's own control-plane client,
 * certificate from the real TokenReview) land in remora-engine-status through the injector; the
 * CLI follows per pod, ignores a report made for another pod (wrong address), and exits 1 naming
 * the pod that rolled back. No kubelet runs pods here: their status (podIP) is written by the test.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATIONS, ENGINE_STATUS_CONFIGMAP } from '../../proxy/src/contract.js';
import { ControlPlane as ProxyControlPlane } from '../../proxy/src/supervisor/control-plane.js';
import { createSupervisorLogger } from '../../proxy/src/supervisor/log.js';
import {
  ROOT,
  createNamespace,
  injectorKubeconfig,
  missingControlPlane,
  startControlPlaneWithInjector,
  startInjectorProcess,
} from './harness.js';
import type { ControlPlane, InjectorProcess } from './harness.js';

const skip = missingControlPlane();
const uniq = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const NS = `eng-${uniq}`;
const silent = createSupervisorLogger('silent', {});

let cp: ControlPlane;
let injector: InjectorProcess;
let trustBundle = '';

async function podWithIp(name: string, ip: string): Promise<void> {
  await cp.kubectlOk(['-n', NS, 'create', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, annotations: { [ANNOTATIONS.status]: JSON.stringify({ version: '0.1.0' }) } },
      spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
    }),
  });
  await cp.kubectlOk([
    '-n',
    NS,
    'patch',
    'pod',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { podIP: ip, podIPs: [{ ip }] } }),
  ]);
}

/** The supervisor's own client, speaking for `pod` from loopback (as `sa`, through `via`). */
async function proxyClient(
  pod: string,
  sa = 'web',
  via: InjectorProcess = injector,
): Promise<ProxyControlPlane> {
  const tokenFile = join(cp.dir, `${pod}-${sa}-${via.caPort}.token`);
  writeFileSync(
    tokenFile,
    (await cp.kubectlOk(['-n', NS, 'create', 'token', sa, '--audience', 'remora'])).trim(),
  );
  const c = new ProxyControlPlane({
    address: { host: '127.0.0.1', port: via.caPort },
    caAddress: { host: '127.0.0.1', port: via.caPort },
    caBundle: trustBundle,
    tokenFile,
    trustDomain: 'cluster.local',
    pod: { name: pod, namespace: NS },
    log: silent,
  });
  c.watch(
    () => undefined,
    () => undefined,
  );
  await c.ready();
  return c;
}

async function statusData(): Promise<Record<string, string>> {
  const r = await cp.kubectl([
    '-n',
    'remora-system',
    'get',
    'configmap',
    ENGINE_STATUS_CONFIGMAP,
    '-o',
    'json',
  ]);
  return r.code === 0 ? ((JSON.parse(r.stdout) as { data?: Record<string, string> }).data ?? {}) : {};
}

async function until<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${ms} ms: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe.skipIf(skip !== undefined)(
  `remora upgrade --version against kube-apiserver${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    beforeAll(async () => {
      ({ cp, injector } = await startControlPlaneWithInjector());
      await createNamespace(cp, NS);
      await cp.kubectlOk(['-n', NS, 'create', 'serviceaccount', 'web']);
      await cp.kubectlOk(['-n', NS, 'create', 'serviceaccount', 'other']);
      trustBundle = await until(
        'trust bundle',
        async () => {
          const r = await cp.kubectl([
            '-n',
            NS,
            'get',
            'configmap',
            'remora-trust-bundle',
            '-o',
            'jsonpath={.data.ca\\.crt}',
          ]);
          return r.code === 0 ? r.stdout : '';
        },
        (t) => t.includes('BEGIN CERTIFICATE'),
      );
      await podWithIp('web-0', '127.0.0.1');
      await podWithIp('web-1', '10.0.0.9');
    }, 240_000);
    afterAll(async () => {
      await injector?.stop();
      await cp?.stop();
    }, 60_000);

    it('upgrade leases hold across two injector replicas: the bound is one slot, a release through the other replica frees it', async () => {
      const replica = await startInjectorProcess(await injectorKubeconfig(cp));
      const a = await proxyClient('web-0');
      const b = await proxyClient('web-1', 'other', replica);
      const aOther = await proxyClient('web-0', 'web', replica);
      try {
        const acquire = { op: 'acquire', version: 'builtin', digest: null };
        expect(await a.lease(acquire)).toMatchObject({ granted: true, holders: 1, maxConcurrent: 1 });
        expect(await b.lease(acquire)).toMatchObject({ granted: false, holders: 1, maxConcurrent: 1 });
        const slot = JSON.parse(
          await cp.kubectlOk([
            '-n',
            'remora-system',
            'get',
            'lease',
            'remora-engine-upgrade-0',
            '-o',
            'json',
          ]),
        ) as { spec: { holderIdentity: string } };
        expect(slot.spec.holderIdentity).toBe(`spiffe://cluster.local/ns/${NS}/sa/web@127.0.0.1`);
        // released through the other replica (a new connection may reach either)
        expect(await aOther.lease({ op: 'release', version: 'builtin', outcome: 'succeeded' })).toEqual({
          released: true,
        });
        expect(await b.lease(acquire)).toMatchObject({ granted: true, holders: 1 });
        expect(await b.lease({ op: 'release', version: 'builtin', outcome: 'succeeded' })).toEqual({
          released: true,
        });
      } finally {
        a.close();
        b.close();
        aOther.close();
        await replica.stop();
      }
    });

    it('sets engine.version in the stored mesh config, follows per pod, ignores a report for another pod, exits 1 on a rollback', async () => {
      const before = await cp.kubectlOk([
        '-n',
        'remora-system',
        'get',
        'configmap',
        'remora-mesh-config',
        '-o',
        'jsonpath={.data.mesh\\.yaml}',
      ]);
      let out = '';
      const cli = spawn(process.execPath, [
        join(ROOT, 'injector/dist/bin/remora.js'),
        'upgrade',
        '--version',
        'v2',
        '-n',
        NS,
        '--timeout',
        '90',
        '--kubeconfig',
        cp.kubeconfig,
      ]);
      cli.stdout.on('data', (c: Buffer) => (out += c.toString()));
      cli.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number>((r) => cli.on('exit', (code) => r(code ?? 1)));
      try {
        const after = await until(
          'mesh config written',
          () =>
            cp.kubectlOk([
              '-n',
              'remora-system',
              'get',
              'configmap',
              'remora-mesh-config',
              '-o',
              'jsonpath={.data.mesh\\.yaml}',
            ]),
          (t) => /engine:\s*\n\s+version: v2/.test(t),
        );
        // the rest of the stored text is kept (every line of it but the engine field)
        for (const line of before
          .split('\n')
          .filter((x) => x.trim() !== '' && !/^engine:|^\s+version:/.test(x)))
          expect(after).toContain(line);
        expect(out).toContain('mesh config: engine builtin -> v2');
        // the injector announces v2 (it has no bundle directory here: unavailable, said so)
        await until(
          'announced',
          () => Promise.resolve(injector.logs()),
          (l) => l.includes('"event":"engine_version_unavailable"'),
        );

        const web0 = await proxyClient('web-0');
        const spoof = await proxyClient('web-1'); // speaks for web-1, but from web-0's address
        try {
          expect(await web0.lease({ op: 'report', version: 'v2', desired: 'v2', state: 'current' })).toEqual({
            ok: true,
          });
          expect(await spoof.lease({ op: 'report', version: 'v2', desired: 'v2', state: 'current' })).toEqual(
            { ok: true },
          );
        } finally {
          web0.close();
          spoof.close();
        }
        const data = await until(
          'reports recorded',
          statusData,
          (d) => `${NS}.web-0` in d && `${NS}.web-1` in d,
        );
        expect(JSON.parse(data[`${NS}.web-0`] as string)).toMatchObject({
          version: 'v2',
          state: 'current',
          ip: '127.0.0.1',
          identity: `spiffe://cluster.local/ns/${NS}/sa/web`,
        });
        await until(
          'web-0 on v2',
          () => Promise.resolve(out),
          (o) => o.includes(`${NS}/web-0: engine v2 (current)`),
        );
        // web-1's "report" came from 127.0.0.1, not its pod IP: it does not count
        await new Promise((r) => setTimeout(r, 3000));
        expect(out).toContain(`${NS}/web-1: no engine report yet`);
        expect(out).not.toContain(`${NS}/web-1: engine v2`);

        // web-1's proxy rolled back (written here as the injector would record it)
        await cp.kubectlOk([
          '-n',
          'remora-system',
          'patch',
          'configmap',
          ENGINE_STATUS_CONFIGMAP,
          '--type=merge',
          '-p',
          JSON.stringify({
            data: {
              [`${NS}.web-1`]: JSON.stringify({
                version: 'v1',
                desired: 'v2',
                state: 'rolled-back',
                detail: 'generation 2 (version v2) exited',
                at: new Date().toISOString(),
                identity: `spiffe://cluster.local/ns/${NS}/sa/web`,
                ip: '10.0.0.9',
              }),
            },
          }),
        ]);
        expect(await exited).toBe(1);
        expect(out).toContain(
          `${NS}/web-1: FAILED on the way to v2 (rolled-back), runs v1: generation 2 (version v2) exited`,
        );
        expect(out).toContain('1 of 2 meshed pod(s) on engine v2, 1 rolled back or refused it');
      } finally {
        cli.kill('SIGKILL');
      }
    }, 180_000);
  },
);
