/**
 * `remora check` and `remora version` over an in-memory ClusterReader (a fake at the cluster
 * edge, named so in each suite): each check's pass, warn and fail, the hints, the exit codes.
 * The same checks against a real kube-apiserver: test/k8s/.
 */
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type {
  V1ConfigMap,
  V1Deployment,
  V1EndpointSlice,
  V1MutatingWebhookConfiguration,
  V1Namespace,
  V1Pod,
} from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { formatChecks, imageVersion, parseGitVersion, runChecks } from '../../../injector/src/cli/check.js';
import type { CheckResult } from '../../../injector/src/cli/check.js';
import type { ClusterReader } from '../../../injector/src/cli/cluster.js';
import { runCli } from '../../../injector/src/cli/main.js';
import type { CliDeps, CliIo } from '../../../injector/src/cli/main.js';
import { planRestart } from '../../../injector/src/cli/upgrade.js';
import { clusterVersions, formatVersions } from '../../../injector/src/cli/version.js';

const BIN = fileURLToPath(new URL('../../../injector/dist/bin/remora.js', import.meta.url));

class NotFound extends Error {
  code = 404;
  body = JSON.stringify({ message: 'not found' });
}

interface World {
  version?: string | Error;
  deployment?: V1Deployment;
  slices?: V1EndpointSlice[];
  webhook?: V1MutatingWebhookConfiguration;
  namespaces?: V1Namespace[];
  configMaps?: Record<string, V1ConfigMap>;
  pods?: V1Pod[];
  dryRun?: (ns: string, pod: V1Pod) => V1Pod;
  allowed?: boolean;
  /** ReplicaSet name → its Deployment. */
  replicaSets?: Record<string, string>;
  restarted?: string[];
  failRestart?: string;
}

function reader(w: World): ClusterReader {
  const found = <T>(v: T | undefined): Promise<T> =>
    v === undefined ? Promise.reject(new NotFound()) : Promise.resolve(v);
  return {
    version: () =>
      w.version instanceof Error ? Promise.reject(w.version) : Promise.resolve(w.version ?? 'v1.35.1'),
    webhook: () => found(w.webhook),
    deployment: () => found(w.deployment),
    endpointSlices: () => Promise.resolve(w.slices ?? []),
    namespaces: () => Promise.resolve(w.namespaces ?? []),
    namespace: (name) => found(w.namespaces?.find((n) => n.metadata?.name === name)),
    configMap: (ns) => found(w.configMaps?.[ns]),
    replaceConfigMap: () => Promise.reject(new Error('remora check never writes')),
    pods: () => Promise.resolve(w.pods ?? []),
    dryRunPod: (ns, pod) => (w.dryRun ? Promise.resolve(w.dryRun(ns, pod)) : Promise.reject(new NotFound())),
    canI: () => Promise.resolve(w.allowed ?? true),
    replicaSetOwner: (_ns, name) =>
      Promise.resolve(w.replicaSets?.[name] ? { kind: 'Deployment', name: w.replicaSets[name] } : undefined),
    restart: (kind, namespace, name, annotation, value) => {
      if (name === w.failRestart) return Promise.reject(Object.assign(new Error('conflict'), { code: 409 }));
      (w.restarted ??= []).push(`${kind}/${namespace}/${name} ${annotation}=${value}`);
      return Promise.resolve();
    },
  };
}

const ns = (name: string, labels: Record<string, string> = {}): V1Namespace => ({
  metadata: { name, labels },
});
const status = (version: string): string =>
  JSON.stringify({
    version,
    mode: 'native',
    initContainers: [],
    containers: [],
    volumes: [],
    rewrittenProbes: [],
  });
const pod = (namespace: string, name: string, version?: string, owner?: [string, string]): V1Pod => ({
  metadata: {
    namespace,
    name,
    annotations: version ? { 'remora.dev/status': status(version) } : {},
    ...(owner
      ? {
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: owner[0], name: owner[1], uid: 'u', controller: true },
          ],
        }
      : {}),
  },
});

/** A healthy install: every check passes. */
function healthy(): World {
  return {
    deployment: {
      spec: {
        replicas: 2,
        selector: {},
        template: {
          spec: {
            containers: [{ name: 'remora-injector', image: 'ghcr.io/remora-mesh/remora-injector:0.1.0' }],
          },
        },
      },
      status: { readyReplicas: 2 },
    },
    slices: [
      {
        addressType: 'IPv4',
        ports: [{ port: 8443 }, { port: 15012 }],
        endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true } }],
      },
    ],
    webhook: {
      webhooks: [
        {
          name: 'inject.remora.dev',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          clientConfig: { caBundle: 'LS0t' },
        },
      ],
    },
    namespaces: [ns('shop', { 'remora.dev/inject': 'enabled' }), ns('default'), ns('kube-system')],
    configMaps: { shop: { data: { 'ca.crt': 'PEM' } } },
    pods: [pod('shop', 'web-1', '0.1.0'), pod('default', 'plain')],
    dryRun: (_ns, p) => ({
      ...p,
      spec: { containers: [...(p.spec?.containers ?? []), { name: 'remora-proxy' }] },
    }),
  };
}

const verdicts = (rs: CheckResult[]): Record<string, string> =>
  Object.fromEntries(rs.map((r) => [r.name, r.verdict]));

describe('remora check (in-memory cluster reader)', () => {
  it('a healthy install passes every check', async () => {
    const rs = await runChecks(reader(healthy()));
    expect(rs.filter((r) => r.verdict !== 'pass')).toEqual([]);
    expect(rs.map((r) => r.name)).toEqual([
      'Kubernetes API reachable',
      'Kubernetes version supported',
      'injector ready',
      'CA serving',
      'webhook configured',
      'webhook answers with a matching caBundle',
      'namespaces labelled',
      'trust bundle distributed',
      'proxies on the control plane version',
    ]);
    expect(formatChecks(rs)).toContain(
      '[ok]   webhook answers with a matching caBundle: dry-run pod in shop injected',
    );
  });

  it('an unreachable API fails at once with a hint and runs nothing else', async () => {
    const rs = await runChecks(reader({ version: new Error('connect ECONNREFUSED 127.0.0.1:6443') }));
    expect(rs).toHaveLength(1);
    expect(rs[0]).toMatchObject({ verdict: 'fail', detail: 'connect ECONNREFUSED 127.0.0.1:6443' });
    expect(formatChecks(rs)).toContain('hint: check --kubeconfig');
  });

  it('names what is wrong: injector not ready, no CA endpoint, caBundle missing, bundle missing, old proxies', async () => {
    const w = healthy();
    w.deployment = { ...w.deployment, status: { readyReplicas: 0 } };
    w.slices = [];
    w.webhook = {
      webhooks: [
        { name: 'inject.remora.dev', admissionReviewVersions: ['v1'], sideEffects: 'None', clientConfig: {} },
      ],
    };
    w.configMaps = {};
    w.pods = [pod('shop', 'web-1', '0.0.9'), pod('shop', 'web-2', '0.1.0')];
    const rs = await runChecks(reader(w));
    expect(verdicts(rs)).toMatchObject({
      'injector ready': 'fail',
      'CA serving': 'fail',
      'webhook configured': 'fail',
      'webhook answers with a matching caBundle': 'skip',
      'trust bundle distributed': 'fail',
      'proxies on the control plane version': 'warn',
    });
    const text = formatChecks(rs);
    expect(text).toContain('no caBundle on inject.remora.dev');
    expect(text).toContain('1 of 2 on another version: shop/web-1 (0.0.9)');
    expect(text).toContain('hint: remora upgrade --restart');
  });

  it('a webhook the API server cannot verify (x509) is reported as a caBundle mismatch', async () => {
    const w = healthy();
    w.dryRun = () => {
      throw Object.assign(new Error('x'), {
        code: 500,
        body: JSON.stringify({
          message:
            'Internal error occurred: failed calling webhook "inject.remora.dev": tls: failed to verify certificate: x509: certificate signed by unknown authority',
        }),
      });
    };
    const rs = await runChecks(reader(w));
    const r = rs.find((x) => x.name === 'webhook answers with a matching caBundle');
    expect(r).toMatchObject({ verdict: 'fail' });
    expect(r?.detail).toContain('x509: certificate signed by unknown authority');
    expect(r?.hint).toContain("does not match the injector's serving certificate");
  });

  it('without a labelled namespace the dry run uses the pod label in default, and the labels check warns', async () => {
    const w = healthy();
    w.namespaces = [ns('default')];
    const seen: [string, V1Pod][] = [];
    const dry = w.dryRun as (n: string, p: V1Pod) => V1Pod;
    w.dryRun = (n, p) => (seen.push([n, p]), dry(n, p));
    const rs = await runChecks(reader(w));
    expect(seen[0]?.[0]).toBe('default');
    expect(seen[0]?.[1].metadata?.labels).toEqual({ 'remora.dev/inject': 'true' });
    expect(verdicts(rs)).toMatchObject({ 'namespaces labelled': 'warn', 'trust bundle distributed': 'skip' });
  });

  it('--pre: fails when the user may not create the control plane, warns when the namespace exists', async () => {
    const denied = await runChecks(reader({ allowed: false, namespaces: [] }), { pre: true });
    expect(verdicts(denied)).toMatchObject({
      'can install the control plane': 'fail',
      'control plane namespace free': 'pass',
    });
    const again = await runChecks(reader({ namespaces: [ns('remora-system')] }), { pre: true });
    expect(verdicts(again)).toMatchObject({
      'can install the control plane': 'pass',
      'control plane namespace free': 'warn',
    });
  });

  it('an old cluster fails the version check', async () => {
    const rs = await runChecks(reader({ ...healthy(), version: 'v1.27.3' }));
    expect(verdicts(rs)['Kubernetes version supported']).toBe('fail');
    expect(parseGitVersion('v1.35.0-alpha.1')).toEqual({ major: 1, minor: 35 });
    expect(imageVersion('reg:5000/remora-injector:0.2.0@sha256:ab')).toBe('0.2.0');
    expect(imageVersion('reg:5000/remora-injector')).toBeUndefined();
  });

  it('runCli check exits 1 when a check fails and 0 when all pass or warn', async () => {
    let out = '';
    const io: CliIo = {
      readFile: () => '',
      readStdin: () => '',
      stdout: (t) => (out += t),
      stderr: () => {},
    };
    const deps = (w: World): CliDeps => ({
      cluster: () => Promise.resolve(reader(w)),
      run: () => Promise.resolve(0),
    });
    expect(await runCli(['check'], io, deps(healthy()))).toBe(0);
    expect(out).toMatch(/checks: 9 ok, 0 warning\(s\), 0 failing, 0 not run\n$/);
    expect(await runCli(['check'], io, deps({ ...healthy(), deployment: undefined }))).toBe(1);
  });
});

describe('remora version (in-memory cluster reader)', () => {
  it('counts the proxies per version and names the control plane version from its image', async () => {
    const w = healthy();
    w.pods = [pod('a', 'x', '0.1.0'), pod('a', 'y', '0.1.0'), pod('b', 'z', '0.0.9'), pod('b', 'plain')];
    expect(formatVersions(await clusterVersions(reader(w)))).toBe(
      'client: 0.1.0\ncontrol plane: 0.1.0\nproxies: 0.1.0 (2 pods), 0.0.9 (1 pod)\n',
    );
  });
});

describe('remora upgrade --restart (in-memory cluster reader)', () => {
  function outdated(): World {
    const w = healthy();
    w.pods = [
      pod('shop', 'web-abc-1', '0.0.9', ['ReplicaSet', 'web-abc']),
      pod('shop', 'web-abc-2', '0.0.9', ['ReplicaSet', 'web-abc']),
      pod('shop', 'db-0', '0.0.9', ['StatefulSet', 'db']),
      pod('shop', 'new-1', '0.1.0', ['ReplicaSet', 'new-x']),
      pod('shop', 'batch-1', '0.0.9', ['Job', 'batch']),
      pod('shop', 'loner', '0.0.9'),
      pod('ops', 'agent-1', '0.0.9', ['DaemonSet', 'agent']),
      pod('shop', 'plain', undefined, ['ReplicaSet', 'plain-rs']),
    ];
    w.replicaSets = { 'web-abc': 'web', 'new-x': 'new' };
    return w;
  }

  it('restarts each owning workload once, leaves Jobs and bare pods, skips pods already current', async () => {
    const w = outdated();
    const plan = await planRestart(reader(w));
    expect(plan.target).toBe('0.1.0');
    expect(plan.workloads.map((x) => `${x.kind}/${x.namespace}/${x.name}:${x.pods.length}`)).toEqual([
      'Deployment/shop/web:2',
      'StatefulSet/shop/db:1',
      'DaemonSet/ops/agent:1',
    ]);
    expect(plan.left).toEqual([
      'shop/batch-1 (0.0.9): owned by Job/batch, not restarted (it takes the new proxy when next created)',
      'shop/loner (0.0.9): no controller owns it; delete and recreate it',
    ]);
    let out = '';
    const io: CliIo = {
      readFile: () => '',
      readStdin: () => '',
      stdout: (t) => (out += t),
      stderr: (t) => (out += t),
    };
    const deps: CliDeps = { cluster: () => Promise.resolve(reader(w)), run: () => Promise.resolve(0) };
    expect(await runCli(['upgrade', '--restart', '--dry-run'], io, deps)).toBe(0);
    expect(w.restarted).toBeUndefined();
    expect(out).toContain(
      'would restart Deployment/web in shop: shop/web-abc-1 (0.0.9), shop/web-abc-2 (0.0.9)',
    );
    expect(await runCli(['upgrade', '--restart', '-n', 'shop'], io, deps)).toBe(0);
    expect(w.restarted?.map((r) => r.split(' ')[0])).toEqual(['Deployment/shop/web', 'StatefulSet/shop/db']);
    expect(w.restarted?.[0]).toMatch(/ remora\.dev\/restarted-at=\d{4}-\d\d-\d\dT/);
    expect(out).toContain('2 of 2 workload(s) restarted toward proxy 0.1.0');
  });

  it('a failed restart is named and exits 1; without --restart it is a usage error', async () => {
    const w = { ...outdated(), failRestart: 'db' };
    let out = '';
    const io: CliIo = {
      readFile: () => '',
      readStdin: () => '',
      stdout: (t) => (out += t),
      stderr: (t) => (out += t),
    };
    const deps: CliDeps = { cluster: () => Promise.resolve(reader(w)), run: () => Promise.resolve(0) };
    expect(await runCli(['upgrade', '--restart'], io, deps)).toBe(1);
    expect(out).toContain('FAILED StatefulSet/db in shop: conflict');
    expect(await runCli(['upgrade'], io, deps)).toBe(2);
    expect(out).toContain('--version V (in place) or --restart (the image path) is required');
  });
});

describe('the compiled remora binary against an unreachable cluster', () => {
  it('check exits 1 naming the API failure; version still prints the client', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'remora-cli-'));
    try {
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`,
      );
      const check = spawnSync(process.execPath, [BIN, 'check', '--kubeconfig', kubeconfig], {
        encoding: 'utf8',
      });
      expect(check.status).toBe(1);
      expect(check.stdout).toContain('[FAIL] Kubernetes API reachable');
      expect(check.stdout).toContain('ECONNREFUSED');
      const version = spawnSync(process.execPath, [BIN, 'version', `--kubeconfig=${kubeconfig}`], {
        encoding: 'utf8',
      });
      expect(version.status).toBe(0);
      expect(version.stdout).toMatch(/^client: 0\.1\.0\ncontrol plane: unavailable \(.*ECONNREFUSED/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
