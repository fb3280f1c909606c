/**
 * The manifests and the admission webhook against a real kube-apiserver (with etcd and
 * kube-controller-manager, test/k8s/harness.ts): every object of deploy/ applied server-side
 * (real schema and admission validation); the injector, running as a process with its own
 * ServiceAccount's token, reached through the base webhook's clientConfig.service (the API
 * server's cluster egress is routed to it, harness/cmd/k8s-apiserver/egress.go) with the
 * caBundle it writes itself; pods and controllers come back stored with remora-init and
 * remora-proxy; every skip case untouched; bad annotations refused by name; failurePolicy.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  missingControlPlane,
  ROOT,
  startControlPlane,
  startMeshedInjector,
} from './harness.js';
import type { ControlPlane, InjectorProcess } from './harness.js';

const skip = missingControlPlane();
const SETUP_MS = 240_000;

interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
}
interface Pod {
  metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: { containers: Container[]; initContainers?: Container[] };
}

interface Workload {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { namespace?: string };
  spec?: Record<string, unknown>;
  status?: unknown;
}
interface Template {
  metadata?: Record<string, unknown>;
  spec?: { serviceAccountName?: string; serviceAccount?: string };
}
const CANONICAL: Record<string, string> = {
  Pod: 'v1',
  ReplicationController: 'v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  ReplicaSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
};
function templateOf(o: Workload): Template | undefined {
  const spec = o.spec as
    { template?: Template; jobTemplate?: { spec?: { template?: Template } } } | undefined;
  return spec?.template ?? spec?.jobTemplate?.spec?.template;
}
function podSpecOf(o: Workload): Template['spec'] {
  return o.kind === 'Pod' ? (o.spec as Template['spec']) : templateOf(o)?.spec;
}

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

let cp: ControlPlane;
let injector: InjectorProcess | undefined;
const uniq = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const MESHED = `meshed-${uniq}`;
const PLAIN = `plain-${uniq}`;
const DISABLED = `disabled-${uniq}`;

function names(pod: Pod): string[] {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map((c) => c.name);
}

function injected(pod: Pod): boolean {
  const n = names(pod);
  return n.includes('remora-init') && n.includes('remora-proxy');
}

function podManifest(
  name: string,
  o: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    spec?: Record<string, unknown>;
  } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name, ...o.labels }, annotations: o.annotations ?? {} },
    spec: {
      containers: [{ name: 'app', image: 'registry.local/app:1', ports: [{ containerPort: 8080 }] }],
      ...o.spec,
    },
  };
}

async function createPod(ns: string, manifest: Record<string, unknown>): Promise<Pod> {
  const out = await cp.kubectlOk(['-n', ns, 'create', '-o', 'json', '-f', '-'], {
    input: JSON.stringify(manifest),
  });
  return JSON.parse(out) as Pod;
}

async function getPod(ns: string, name: string): Promise<Pod> {
  return JSON.parse(await cp.kubectlOk(['-n', ns, 'get', 'pod', name, '-o', 'json'])) as Pod;
}

async function podsOf(ns: string, selector: string, want: number, ms = 90_000): Promise<Pod[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const out = await cp.kubectlOk(['-n', ns, 'get', 'pods', '-l', selector, '-o', 'json']);
    const items = (JSON.parse(out) as { items: Pod[] }).items;
    if (items.length >= want) return items;
    if (Date.now() > deadline) {
      const ev = await cp.kubectl(['-n', ns, 'get', 'events', '-o', 'custom-columns=R:.reason,M:.message']);
      throw new Error(
        `${ns}: ${items.length}/${want} pods for ${selector} after ${ms} ms; events:\n${ev.stdout}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The kustomizations of deploy/: the base, every overlay, every example. */
function kustomizations(): string[] {
  const out = ['deploy/base'];
  for (const group of ['overlays', 'examples']) {
    for (const d of readdirSync(join(ROOT, 'deploy', group)).sort()) {
      if (statSync(join(ROOT, 'deploy', group, d)).isDirectory()) out.push(`deploy/${group}/${d}`);
    }
  }
  return out;
}

describe.skipIf(skip !== undefined)(
  `webhook against kube-apiserver${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    beforeAll(async () => {
      cp = await startControlPlane();
    }, SETUP_MS);

    afterAll(async () => {
      await injector?.stop();
      await cp?.stop();
    }, 60_000);

    it('kubectl apply --server-side -k deploy/base: every object accepted', async () => {
      const out = await cp.kubectlOk(['apply', '--server-side', '-k', join(ROOT, 'deploy/base')]);
      const built = await cp.kubectlOk(['kustomize', join(ROOT, 'deploy/base')]);
      const objects = built.split(/^---$/m).filter((d) => /\bkind:/.test(d)).length;
      expect(
        out
          .trim()
          .split('\n')
          .filter((l) => l.endsWith('serverside-applied')),
      ).toHaveLength(objects);
      // Stored as applied: the webhook keeps its Fail policy and service reference.
      const mwc = JSON.parse(
        await cp.kubectlOk(['get', 'mutatingwebhookconfiguration', 'remora-injector', '-o', 'json']),
      ) as {
        webhooks: { failurePolicy: string; clientConfig: { service?: { name: string } } }[];
      };
      expect(mwc.webhooks.map((w) => [w.failurePolicy, w.clientConfig.service?.name])).toEqual([
        ['Fail', 'remora-injector'],
        ['Fail', 'remora-injector'],
      ]);
    });

    it('every overlay and example of deploy/ passes server-side validation (--dry-run=server)', async () => {
      const all = kustomizations();
      expect(all.length).toBeGreaterThan(2);
      for (const k of all) {
        // A dry run cannot create a namespace for the objects in it: the namespaces for real first.
        const built = await cp.kubectlOk(['kustomize', join(ROOT, k)]);
        const namespaces = parseAllDocuments(built)
          .map((d) => d.toJSON() as { kind?: string } | null)
          .filter((d) => d?.kind === 'Namespace');
        if (namespaces.length > 0)
          await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
            input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: namespaces }),
          });
        const r = await cp.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], {
          input: built,
        });
        expect({ k, code: r.code, stderr: r.stderr }).toEqual({ k, code: 0, stderr: '' });
      }
    });

    it('the injector, on its ServiceAccount token, writes its caBundle into the real MutatingWebhookConfiguration', async () => {
      injector = await startMeshedInjector(cp);
      const mwc = JSON.parse(
        await cp.kubectlOk(['get', 'mutatingwebhookconfiguration', 'remora-injector', '-o', 'json']),
      ) as {
        webhooks: { clientConfig: { caBundle?: string } }[];
      };
      for (const w of mwc.webhooks) {
        expect(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString()).toContain(
          'BEGIN CERTIFICATE',
        );
      }
      await createNamespace(cp, MESHED, { 'remora.dev/inject': 'enabled' });
      await createNamespace(cp, PLAIN);
      await createNamespace(cp, DISABLED, { 'remora.dev/inject': 'disabled' });
    }, 90_000);

    it('a pod created with kubectl in a labelled namespace is stored with remora-init and remora-proxy', async () => {
      const created = await createPod(MESHED, podManifest('web'));
      expect(injected(created)).toBe(true);
      const stored = await getPod(MESHED, 'web');
      expect(injected(stored)).toBe(true);
      expect(stored.metadata.annotations?.['remora.dev/status']).toBeDefined();
      // The injector's log names the admission.
      expect(injector?.logs()).toContain(`${MESHED}`);
    });

    it('a pod labelled remora.dev/inject=true in an unlabelled namespace is injected (second webhook)', async () => {
      const pod = await createPod(PLAIN, podManifest('opt-in', { labels: { 'remora.dev/inject': 'true' } }));
      expect(injected(pod)).toBe(true);
    });

    const skips: [string, string, Record<string, unknown>][] = [
      ['unlabelled namespace', PLAIN, podManifest('plain')],
      ['namespace labelled disabled', DISABLED, podManifest('ns-off')],
      [
        'pod labelled remora.dev/inject=false',
        MESHED,
        podManifest('label-off', { labels: { 'remora.dev/inject': 'false' } }),
      ],
      [
        'pod annotated remora.dev/inject=false',
        MESHED,
        podManifest('ann-off', { annotations: { 'remora.dev/inject': 'false' } }),
      ],
      [
        'sidecar.istio.io/inject=false',
        MESHED,
        podManifest('istio-off', { annotations: { 'sidecar.istio.io/inject': 'false' } }),
      ],
      [
        'linkerd.io/inject=disabled',
        MESHED,
        podManifest('linkerd-off', { annotations: { 'linkerd.io/inject': 'disabled' } }),
      ],
      [
        'hostNetwork',
        MESHED,
        podManifest('host-net', {
          spec: { hostNetwork: true, containers: [{ name: 'app', image: 'registry.local/app:1' }] },
        }),
      ],
      [
        'an istio-proxy container present',
        MESHED,
        podManifest('has-istio', {
          spec: {
            containers: [
              { name: 'app', image: 'registry.local/app:1' },
              { name: 'istio-proxy', image: 'registry.local/istio:1' },
            ],
          },
        }),
      ],
      ['kube-system', 'kube-system', podManifest(`sys-${uniq}`)],
    ];
    for (const [what, ns, manifest] of skips) {
      it(`skip case untouched: ${what}`, async () => {
        const pod = await createPod(ns, manifest);
        expect(names(pod)).toEqual(names({ spec: manifest.spec } as unknown as Pod));
        expect(pod.metadata.annotations?.['remora.dev/status']).toBeUndefined();
        if (ns === 'kube-system')
          await cp.kubectlOk(['-n', ns, 'delete', 'pod', pod.metadata.name, '--wait=false']);
      });
    }

    it('an invalid annotation makes kubectl fail with a message naming it, and nothing is stored', async () => {
      const r = await cp.kubectl(['-n', MESHED, 'create', '-f', '-'], {
        input: JSON.stringify(podManifest('bad-cpu', { annotations: { 'remora.dev/proxy-cpu': 'lots' } })),
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('remora.dev/proxy-cpu');
      expect(r.stderr).toContain('inject.remora.dev');
      const g = await cp.kubectl(['-n', MESHED, 'get', 'pod', 'bad-cpu']);
      expect(g.stderr).toContain('NotFound');
    });

    it('a second admission of an injected pod changes nothing', async () => {
      const first = await getPod(MESHED, 'web');
      const again = podManifest('web-again');
      again.metadata = {
        name: 'web-again',
        labels: first.metadata.labels,
        annotations: first.metadata.annotations,
      };
      // The spec as stored, minus what the API server itself fills per pod.
      const spec = structuredClone(first.spec) as unknown as Record<string, unknown>;
      delete spec.nodeName;
      again.spec = spec;
      const second = await createPod(MESHED, again);
      const strip = (cs: Container[] | undefined) => JSON.stringify(cs ?? []);
      expect(strip(second.spec.initContainers)).toBe(strip(first.spec.initContainers));
      expect(strip(second.spec.containers)).toBe(strip(first.spec.containers));
      expect(second.metadata.annotations?.['remora.dev/status']).toBe(
        first.metadata.annotations?.['remora.dev/status'],
      );
    });

    it('Pod Security admission judges the injected pod: a meshed namespace enforcing baseline refuses it, naming remora-init', async () => {
      // The API server's PodSecurity plugin runs after the mutating webhooks, on the pod with
      // remora-init's NET_ADMIN/NET_RAW (docs: meshed namespaces need the privileged level).
      const ns = `baseline-${uniq}`;
      await createNamespace(cp, ns, {
        'remora.dev/inject': 'enabled',
        'pod-security.kubernetes.io/enforce': 'baseline',
      });
      const r = await cp.kubectl(['-n', ns, 'create', '-f', '-'], {
        input: JSON.stringify(podManifest('psa')),
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/violates PodSecurity "baseline/);
      expect(r.stderr).toContain('remora-init');
      // The same pod in a privileged meshed namespace is admitted (the example's label).
      await cp.kubectlOk([
        'label',
        'namespace',
        ns,
        'pod-security.kubernetes.io/enforce=privileged',
        '--overwrite',
      ]);
      expect(injected(await createPod(ns, podManifest('psa')))).toBe(true);
    });

    it('--dry-run=server returns the injected pod and stores nothing (sideEffects: None)', async () => {
      const out = await cp.kubectlOk(['-n', MESHED, 'create', '--dry-run=server', '-o', 'json', '-f', '-'], {
        input: JSON.stringify(podManifest('dry')),
      });
      expect(injected(JSON.parse(out) as Pod)).toBe(true);
      const g = await cp.kubectl(['-n', MESHED, 'get', 'pod', 'dry']);
      expect(g.stderr).toContain('NotFound');
    });

    it('Deployments, StatefulSets, Jobs and CronJobs: the controller manager creates injected pods', async () => {
      const labels = (app: string) => ({ matchLabels: { app } });
      const tmpl = (app: string, restartPolicy?: string) => ({
        metadata: { labels: { app } },
        spec: {
          ...(restartPolicy ? { restartPolicy } : {}),
          containers: [{ name: 'app', image: 'registry.local/app:1' }],
        },
      });
      const objs = [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'dep' },
          spec: { replicas: 2, selector: labels('dep'), template: tmpl('dep') },
        },
        {
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          metadata: { name: 'sts' },
          spec: { replicas: 1, serviceName: 'sts', selector: labels('sts'), template: tmpl('sts') },
        },
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: { name: 'job' },
          spec: { template: tmpl('job', 'Never') },
        },
        {
          apiVersion: 'batch/v1',
          kind: 'CronJob',
          metadata: { name: 'cron' },
          spec: { schedule: '0 0 1 1 *', jobTemplate: { spec: { template: tmpl('cron', 'OnFailure') } } },
        },
      ];
      await cp.kubectlOk(['-n', MESHED, 'apply', '--server-side', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }),
      });
      // The CronJob's template, run now through the API server (the schedule is far away).
      await cp.kubectlOk(['-n', MESHED, 'create', 'job', 'cron-now', '--from=cronjob/cron']);
      for (const [app, n] of [
        ['dep', 2],
        ['sts', 1],
        ['job', 1],
        ['cron', 1],
      ] as const) {
        const pods = await podsOf(MESHED, `app=${app}`, n);
        for (const p of pods)
          expect({ app, pod: p.metadata.name, injected: injected(p) }).toEqual({
            app,
            pod: p.metadata.name,
            injected: true,
          });
      }
    }, 200_000);

    it('deploy/examples/two-services: its Deployments come up injected', async () => {
      await cp.kubectlOk(['apply', '--server-side', '-k', join(ROOT, 'deploy/examples/two-services')]);
      const server = await podsOf('remora-demo', 'app.kubernetes.io/name=server', 2);
      for (const p of server) expect(injected(p)).toBe(true);
    }, 120_000);

    it('every workload of ../shared/corpus/istio and linkerd is created through the API server and stored valid', async () => {
      const corpus = join(ROOT, '..', 'shared', 'corpus');
      const files: string[] = [];
      for (const mesh of ['istio', 'linkerd']) {
        for (const f of readdirSync(join(corpus, mesh)).sort())
          if (/\.ya?ml$/.test(f)) files.push(join(corpus, mesh, f));
      }
      expect(files.length).toBeGreaterThan(20);
      const ns = `corpus-${uniq}`;
      await createNamespace(cp, ns, { 'remora.dev/inject': 'enabled' });
      const failures: string[] = [];
      let workloads = 0;
      let injectedPods = 0;
      for (const [fi, file] of files.entries()) {
        for (const [di, doc] of parseAllDocuments(readFileSync(file, 'utf8')).entries()) {
          const obj = doc.toJSON() as Workload | null;
          if (!obj || !(obj.kind in CANONICAL)) continue;
          workloads++;
          const name = `c${fi}-${di}-${obj.kind.toLowerCase()}`.slice(0, 50);
          const o = structuredClone(obj);
          // The corpus files name their own namespaces and (Linkerd's) file Pods under apps/v1.
          o.apiVersion = CANONICAL[obj.kind] as string;
          o.metadata = { ...o.metadata, name };
          delete o.metadata.namespace;
          delete o.status;
          for (const k of ['creationTimestamp', 'resourceVersion', 'uid', 'ownerReferences'] as const)
            delete o.metadata[k];
          const spec = podSpecOf(o);
          const sa = spec?.serviceAccountName ?? spec?.serviceAccount;
          if (sa) await cp.kubectl(['-n', ns, 'create', 'serviceaccount', sa]);
          const where = `${file.slice(corpus.length + 1)}#${di} ${obj.kind}`;
          const r = await cp.kubectl(['-n', ns, 'create', '-o', 'json', '-f', '-'], {
            input: JSON.stringify(o),
          });
          if (r.code !== 0) {
            failures.push(`${where}: ${r.stderr.trim()}`);
            continue;
          }
          // The pods it holds, through the webhook now (no waiting on controllers; a DaemonSet has
          // no node to make pods for): its template as a Pod.
          const pod: Pod =
            obj.kind === 'Pod'
              ? (JSON.parse(r.stdout) as Pod)
              : await createPod(ns, {
                  apiVersion: 'v1',
                  kind: 'Pod',
                  metadata: { ...(templateOf(o)?.metadata ?? {}), name: `${name}-pod`.slice(0, 60) },
                  spec: templateOf(o)?.spec,
                }).catch((err: unknown) => {
                  failures.push(`${where} template as Pod: ${(err as Error).message}`);
                  return undefined as unknown as Pod;
                });
          if (!pod) continue;
          const stored = await getPod(ns, pod.metadata.name);
          const n = names(stored);
          // Injected means both containers, never one of them.
          if (n.includes('remora-init') !== n.includes('remora-proxy'))
            failures.push(`${where}: half injected: ${n.join(',')}`);
          if (injected(stored)) injectedPods++;
        }
      }
      expect(failures).toEqual([]);
      expect(workloads).toBeGreaterThan(20);
      expect(injectedPods).toBeGreaterThan(10);
    }, 300_000);

    it('remora check validates the mesh config as stored in the API server', async () => {
      const mesh = await cp.kubectlOk([
        '-n',
        'remora-system',
        'get',
        'configmap',
        'remora-mesh-config',
        '-o',
        'jsonpath={.data.mesh\\.yaml}',
      ]);
      expect(mesh.length).toBeGreaterThan(0);
      const file = join(cp.dir, 'mesh.yaml');
      writeFileSync(file, mesh);
      const r = await run(process.execPath, [
        join(ROOT, 'injector/dist/bin/remora.js'),
        'check',
        '--mesh-config',
        file,
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/mesh config .*: ok, proxy image /);
    });

    it('remora check, version and upgrade --restart against the real API server', async () => {
      const remora = (...args: string[]) =>
        run(process.execPath, [
          join(ROOT, 'injector/dist/bin/remora.js'),
          ...args,
          '--kubeconfig',
          cp.kubeconfig,
        ]);
      const check = await remora('check');
      const line = (name: string): string =>
        check.stdout.split('\n').find((l) => l.includes(` ${name}: `)) ?? `(no line for ${name})`;
      // No kubelet runs here: the injector Deployment has no ready replica and its Service no
      // ready endpoint, so those two fail; everything the API server itself answers passes. The
      // dry-run pod goes through the real webhook call with the caBundle the injector wrote.
      expect(line('Kubernetes API reachable')).toMatch(
        /^\[ok\] {3}Kubernetes API reachable: server v1\.36\./,
      );
      expect(line('injector ready')).toMatch(/^\[FAIL\] injector ready: 0\/2 replicas ready/);
      expect(line('CA serving')).toMatch(
        /^\[FAIL\] CA serving: Service remora-system\/remora-injector has no ready endpoint/,
      );
      expect(line('webhook configured')).toMatch(
        /^\[ok\] {3}webhook configured: 2 webhook\(s\), failurePolicy Fail/,
      );
      expect(line('webhook answers with a matching caBundle')).toMatch(
        /^\[ok\] {3}.*dry-run pod in .* injected/,
      );
      expect(line('namespaces labelled')).toContain(MESHED);
      expect(line('proxies on the control plane version')).toMatch(
        /^\[ok\] {3}.* meshed pod\(s\) on 0\.1\.0/,
      );
      expect(check.code).toBe(1);
      const version = await remora('version');
      expect(version.code).toBe(0);
      expect(version.stdout).toMatch(
        /^client: 0\.1\.0\ncontrol plane: 0\.1\.0\nproxies: 0\.1\.0 \(\d+ pods?\)\n$/,
      );

      // A newer control plane: every meshed pod is now behind; restart the MESHED namespace's.
      const image = (tag: string) => `remora-injector=ghcr.io/remora-mesh/remora-injector:${tag}`;
      await cp.kubectlOk([
        '-n',
        'remora-system',
        'set',
        'image',
        'deployment/remora-injector',
        image('0.2.0'),
      ]);
      try {
        const dry = await remora('upgrade', '--restart', '--dry-run', '-n', MESHED);
        expect(dry.code).toBe(0);
        expect(dry.stdout).toContain('would restart Deployment/dep in');
        expect(dry.stdout).toMatch(/left alone: .*owned by Job\/job/);
        const before = await cp.kubectlOk([
          '-n',
          MESHED,
          'get',
          'replicasets',
          '-l',
          'app=dep',
          '-o',
          'name',
        ]);
        const up = await remora('upgrade', '--restart', '-n', MESHED);
        expect(up.stderr).toBe('');
        expect(up.stdout).toContain(`restarted Deployment/dep in ${MESHED}`);
        expect(up.stdout).toContain(`restarted StatefulSet/sts in ${MESHED}`);
        expect(up.code).toBe(0);
        const stamp = await cp.kubectlOk([
          '-n',
          MESHED,
          'get',
          'deployment/dep',
          '-o',
          'jsonpath={.spec.template.metadata.annotations.remora\\.dev/restarted-at}',
        ]);
        expect(Date.parse(stamp)).toBeGreaterThan(Date.now() - 120_000);
        // The controller rolls it: a new ReplicaSet, whose pods come through the webhook again.
        const deadline = Date.now() + 60_000;
        let after = before;
        while (after.trim().split('\n').length <= before.trim().split('\n').length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 500));
          after = await cp.kubectlOk(['-n', MESHED, 'get', 'replicasets', '-l', 'app=dep', '-o', 'name']);
        }
        expect(after.trim().split('\n').length).toBe(before.trim().split('\n').length + 1);
      } finally {
        await cp.kubectlOk([
          '-n',
          'remora-system',
          'set',
          'image',
          'deployment/remora-injector',
          image('0.1.0'),
        ]);
      }
    }, 120_000);

    it('remora inject output of the example is accepted by the API server (--dry-run=server)', async () => {
      const r = await run(process.execPath, [
        join(ROOT, 'injector/dist/bin/remora.js'),
        'inject',
        '-f',
        join(ROOT, 'deploy/examples/two-services/server.yaml'),
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('remora-proxy');
      const a = await cp.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], {
        input: r.stdout,
      });
      expect({ code: a.code, stderr: a.stderr }).toEqual({ code: 0, stderr: '' });
    });

    it('injector stopped: failurePolicy Fail refuses pods; the Ignore overlay admits them uninjected', async () => {
      await injector?.stop();
      injector = undefined;
      const r = await cp.kubectl(['-n', MESHED, 'create', '-f', '-'], {
        input: JSON.stringify(podManifest('while-down')),
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/failed calling webhook "inject\.remora\.dev"/);
      await cp.kubectlOk([
        'apply',
        '--server-side',
        '-k',
        join(ROOT, 'deploy/overlays/failure-policy-ignore'),
      ]);
      const pod = await createPod(MESHED, podManifest('while-down'));
      expect(names(pod)).toEqual(['app']);
    }, 60_000);
  },
);
