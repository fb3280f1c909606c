/**
 * The manifests under deploy/: every YAML document parses, every Kubernetes object validates
 * against the Kubernetes schemas (kubernetes-models), every kustomization builds with
 * `kubectl kustomize` (when kubectl is present), and the objects keep the contract the injector
 * is built to (proxy/src/contract.ts: INJECTOR, INJECTOR_ENV, ...). No API server runs here, so
 * selectors are evaluated by a small matcher with the API server's semantics (test/deploy/k8s.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IMutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  ANNOTATIONS,
  ENGINE_STATUS_CONFIGMAP,
  ENV,
  INIT_CONTAINER_NAME,
  PROXY_CONTAINER_NAME,
  FAILURE_MODES,
  INJECTOR,
  INJECTOR_ENV,
  INJECT_LABEL,
  MTLS_MODES,
  PROXY_UID,
  REVISION_LABEL,
  SYSTEM_NAMESPACES,
  TRUST_BUNDLE,
  VERSION,
} from '@remora/proxy/contract';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from '../../injector/src/config/mesh.js';
import { decide } from '../../injector/src/inject/decide.js';
import type { PodLike } from '../../injector/src/inject/types.js';
import { missingPrerequisite } from '../helpers/env.js';
import {
  isK8sObject,
  kustomizationObjects,
  one,
  parseYamlDocs,
  selects,
  validateObject,
  yamlFiles,
} from './k8s.js';
import type { K8sObject } from './k8s.js';
import { linkedBins, parseDockerfile } from './dockerfile-lint.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');

/** Kustomizations that must build; each is also applied as a unit in docs/deploy.md. */
const KUSTOMIZATIONS = [
  'deploy/base',
  'deploy/overlays/failure-policy-ignore',
  'deploy/examples/two-services',
];
/** Plain (non-Kubernetes) YAML is allowed only in the telemetry helper's monitoring configs. */
const PLAIN_YAML_DIRS = ['deploy/monitoring/'];
/** Objects kubernetes-models has no model for, and how they are checked instead. */
const NO_MODEL: Record<string, string> = {
  'kustomize.config.k8s.io/v1beta1 Kustomization': 'built by `kubectl kustomize` below',
  'monitoring.coreos.com/v1 PrometheusRule':
    'generated from remora-rules.yaml; its spec is checked by promtool in test/deploy/monitoring',
};

const base = kustomizationObjects(ROOT, 'deploy/base');
const example = kustomizationObjects(ROOT, 'deploy/examples/two-services');

describe('every YAML document under deploy/', () => {
  const docs = yamlFiles(ROOT, 'deploy').flatMap((f) => parseYamlDocs(read(f), f));

  it('parses, and each Kubernetes object validates against the Kubernetes schemas', async () => {
    expect(docs.length).toBeGreaterThan(10);
    const problems: string[] = [];
    const unmodelled = new Set<string>();
    for (const d of docs) {
      const where = `${d.file} document ${d.index}`;
      if (!isK8sObject(d.value)) {
        if (!PLAIN_YAML_DIRS.some((p) => d.file.startsWith(p))) problems.push(`${where}: no apiVersion/kind`);
        continue;
      }
      const r = await validateObject(d.value);
      if (typeof r === 'string') problems.push(`${where} (${d.value.kind} ${d.value.metadata.name}): ${r}`);
      else if (r) unmodelled.add(r.noModel);
    }
    expect(problems).toEqual([]);
    for (const k of unmodelled)
      expect(NO_MODEL, `no schema for ${k}: add a check and list it`).toHaveProperty([k]);
  });

  it('the validator really rejects a bad object (bad input)', async () => {
    const bad = structuredClone(one<IDeployment>(base, 'Deployment'));
    const c = bad.spec?.template.spec?.containers[0] as unknown as { ports: { containerPort: unknown }[] };
    c.ports = [{ containerPort: 'eight thousand' }];
    expect(await validateObject(bad)).toMatch(/containerPort must be integer/);
    expect(await validateObject({ ...bad, apiVersion: 'example.invalid/v1' })).toEqual({
      noModel: 'example.invalid/v1 Deployment',
    });
    expect(() => parseYamlDocs('a: 1\na: 2\n', 'dup.yaml')).toThrow(/dup.yaml document 1/);
  });
});

describe('kubectl kustomize', () => {
  const skip = missingPrerequisite({ tools: ['kubectl'] });
  const build = (dir: string): K8sObject[] => {
    const out = execFileSync('kubectl', ['kustomize', join(ROOT, dir)], { encoding: 'utf8' });
    return parseYamlDocs(out, `kubectl kustomize ${dir}`).map((d) => d.value as K8sObject);
  };

  it.skipIf(skip !== undefined)(
    'kubectl embeds kustomize v5 (the kustomizations use `patches:` and directory resources)',
    () => {
      // Debian's kubernetes-client (kubectl 1.20) embeds kustomize v2.0.3, which reads neither.
      const v = execFileSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
      expect(v).toMatch(/Kustomize Version: v5\./);
    },
  );

  it.skipIf(skip !== undefined).each(KUSTOMIZATIONS)('%s builds, and its output validates', async (dir) => {
    expect(existsSync(join(ROOT, dir, 'kustomization.yaml'))).toBe(true);
    const objs = build(dir);
    expect(objs.length).toBeGreaterThan(0);
    for (const o of objs) expect(await validateObject(o), `${o.kind} ${o.metadata.name}`).toBeUndefined();
  });

  it.skipIf(skip !== undefined)(
    'base output is exactly the listed resources (no generator or transformer surprises)',
    () => {
      const key = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
      expect(build('deploy/base').map(key).sort()).toEqual(base.map(key).sort());
    },
  );

  it.skipIf(skip !== undefined)(
    'the failure-policy-ignore overlay changes failurePolicy and nothing else',
    () => {
      const strip = (objs: K8sObject[]): K8sObject[] =>
        objs.map((o) => {
          if (o.kind !== 'MutatingWebhookConfiguration') return o;
          const w = o as unknown as IMutatingWebhookConfiguration;
          return { ...o, webhooks: (w.webhooks ?? []).map((h) => ({ ...h, failurePolicy: 'X' })) };
        });
      const overlay = build('deploy/overlays/failure-policy-ignore');
      const hooks =
        one<IMutatingWebhookConfiguration>(overlay, 'MutatingWebhookConfiguration').webhooks ?? [];
      expect(hooks.map((h) => h.failurePolicy)).toEqual(['Ignore', 'Ignore']);
      expect(strip(overlay)).toEqual(strip(build('deploy/base')));
    },
  );
});

describe('deploy/base keeps the injector contract', () => {
  const deployment = one<IDeployment>(base, 'Deployment', INJECTOR.serviceName);
  const pod = deployment.spec?.template;
  const podLabels = pod?.metadata?.labels ?? {};
  const container = pod?.spec?.containers.find((c) => c.name === INJECTOR.serviceName);
  const service = one<IService>(base, 'Service', INJECTOR.serviceName);
  const webhookConfig = one<IMutatingWebhookConfiguration>(base, 'MutatingWebhookConfiguration');
  const hooks = webhookConfig.webhooks ?? [];
  const [webhook, podWebhook] = hooks;

  it('every namespaced object lives in the injector namespace, which the base creates and restricts', () => {
    const ns = one(base, 'Namespace', INJECTOR.namespace);
    expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    const cluster = new Set([
      'Namespace',
      'ClusterRole',
      'ClusterRoleBinding',
      'MutatingWebhookConfiguration',
    ]);
    for (const o of base)
      expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(
        cluster.has(o.kind) ? undefined : INJECTOR.namespace,
      );
  });

  it('Deployment: 2 replicas spread over nodes, non-root, read-only, no capabilities, probes over HTTPS, resources', () => {
    expect(deployment.spec?.replicas).toBe(2);
    expect(selects(deployment.spec?.selector, podLabels)).toBe(true);
    const spread = pod?.spec?.topologySpreadConstraints ?? [];
    expect(spread.map((t) => t.topologyKey)).toContain('kubernetes.io/hostname');
    for (const t of spread) expect(selects(t.labelSelector, podLabels)).toBe(true);
    expect(pod?.spec?.serviceAccountName).toBe(one(base, 'ServiceAccount').metadata.name);
    expect(pod?.spec?.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container?.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container?.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(container?.securityContext?.capabilities?.add).toBeUndefined();
    expect(container?.image).toMatch(new RegExp(`:${VERSION.replace(/\./g, '\\.')}$`));
    expect(container?.resources?.requests).toMatchObject({
      cpu: expect.any(String),
      memory: expect.any(String),
    });
    expect(container?.resources?.limits).toMatchObject({ memory: expect.any(String) });
    const portName = container?.ports?.find((p) => p.containerPort === INJECTOR.port)?.name;
    expect(portName).toBeDefined();
    for (const [probe, path] of [
      [container?.readinessProbe, '/readyz'],
      [container?.livenessProbe, '/healthz'],
    ] as const)
      expect(probe?.httpGet).toEqual({ path, port: portName, scheme: 'HTTPS' });
  });

  it('Deployment env is the interface: port, TLS dir (mounted), webhook name, mesh ConfigMap, namespace', () => {
    const env = new Map((container?.env ?? []).map((e) => [e.name, e]));
    expect(env.get(INJECTOR_ENV.port)?.value).toBe(String(INJECTOR.port));
    expect(env.get(INJECTOR_ENV.tlsDir)?.value).toBe(INJECTOR.tlsDir);
    expect(env.get(INJECTOR_ENV.webhookConfigName)?.value).toBe(webhookConfig.metadata?.name);
    expect(env.get(INJECTOR_ENV.meshConfigMap)?.value).toBe(
      `${INJECTOR.namespace}/${INJECTOR.meshConfigMap}`,
    );
    expect(env.get(INJECTOR_ENV.namespace)?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
    const mount = container?.volumeMounts?.find((m) => m.mountPath === INJECTOR.tlsDir);
    const volume = pod?.spec?.volumes?.find((v) => v.name === mount?.name);
    // Optional: without the Secret the injector self-signs (the default install).
    expect(volume?.secret?.optional).toBe(true);
    // The read-only root filesystem gets a writable /tmp.
    expect(container?.volumeMounts?.map((m) => m.mountPath)).toContain('/tmp');
  });

  it('Service: 443 reaches the webhook port and the CA port the CA port, on the pods it selects', () => {
    expect(service.metadata?.namespace).toBe(INJECTOR.namespace);
    expect(selects({ matchLabels: service.spec?.selector ?? {} }, podLabels)).toBe(true);
    const resolve = (servicePort: number): number | undefined => {
      const target = service.spec?.ports?.find((p) => p.port === servicePort)?.targetPort;
      return typeof target === 'number'
        ? target
        : container?.ports?.find((p) => p.name === target)?.containerPort;
    };
    expect(resolve(443)).toBe(INJECTOR.port);
    expect(resolve(INJECTOR.caPort)).toBe(INJECTOR.caPort);
    expect(pod?.spec?.serviceAccountName).toBe(INJECTOR.serviceAccount);
  });

  it('PodDisruptionBudget keeps one of the Deployment pods', () => {
    const pdb = one<IPodDisruptionBudget>(base, 'PodDisruptionBudget');
    expect(pdb.spec?.minAvailable).toBe(1);
    expect(selects(pdb.spec?.selector, podLabels)).toBe(true);
    expect(Number(pdb.spec?.minAvailable)).toBeLessThan(deployment.spec?.replicas ?? 0);
  });

  it('MutatingWebhookConfiguration: the interface, with failurePolicy Fail and no static caBundle, on both entries', () => {
    expect(webhookConfig.metadata?.name).toBe(INJECTOR.webhookConfigName);
    // The namespace opt-in, then the pod-level opt-in (the failure-policy overlay tests both names).
    expect(hooks.map((h) => h.name)).toEqual(['inject.remora.dev', 'pod-inject.remora.dev']);
    for (const h of hooks) {
      expect(h, h.name).toMatchObject({
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        timeoutSeconds: 10,
        reinvocationPolicy: 'IfNeeded',
        matchPolicy: 'Equivalent',
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
      });
      expect(h.clientConfig, h.name).toEqual({
        service: {
          name: service.metadata?.name,
          namespace: INJECTOR.namespace,
          path: INJECTOR.injectPath,
          port: 443,
        },
      });
      expect(h.clientConfig.caBundle).toBeUndefined();
    }
  });

  it('the two entries together send exactly the pods the injector would inject, and never one pod twice', () => {
    const nsLabels = (name: string, labels: Record<string, string>): Record<string, string> => ({
      'kubernetes.io/metadata.name': name,
      ...labels,
    });
    const nsVariants: Record<string, string>[] = [
      {},
      { [INJECT_LABEL]: 'enabled' },
      { [INJECT_LABEL]: 'disabled' },
      { [INJECT_LABEL]: 'false' },
      { [REVISION_LABEL]: 'canary' },
      { [INJECT_LABEL]: 'enabled', [REVISION_LABEL]: 'canary' },
    ];
    const podVariants: Record<string, string>[] = [
      {},
      { [INJECT_LABEL]: 'true' },
      { [INJECT_LABEL]: 'enabled' },
      { [INJECT_LABEL]: 'false' },
      { [INJECT_LABEL]: 'disabled' },
      { [INJECT_LABEL]: 'maybe' },
    ];
    const problems: string[] = [];
    let checked = 0;
    for (const name of ['shop', ...SYSTEM_NAMESPACES, INJECTOR.namespace])
      for (const nl of nsVariants)
        for (const pl of podVariants) {
          const matched = hooks.filter(
            (h) => selects(h.namespaceSelector, nsLabels(name, nl)) && selects(h.objectSelector, pl),
          );
          const pod: PodLike = { metadata: { labels: pl }, spec: { containers: [{ name: 'app' }] } };
          const d = decide(pod, { name, labels: nl }, DEFAULT_MESH_CONFIG);
          // A namespace picking a revision is that revision's; the injector's own is never injected.
          const want = d.inject && nl[REVISION_LABEL] === undefined && name !== INJECTOR.namespace ? 1 : 0;
          checked++;
          if (matched.length !== want)
            problems.push(
              `${name} ${JSON.stringify(nl)} pod ${JSON.stringify(pl)}: decide ${d.reason}, webhooks [${matched.map((h) => h.name).join(', ')}]`,
            );
        }
    expect(checked).toBe(5 * nsVariants.length * podVariants.length);
    expect(problems).toEqual([]);
    // The pod-level entry is the one that serves an opted-in pod of an unlabelled namespace.
    expect(selects(podWebhook?.namespaceSelector, nsLabels('shop', {}))).toBe(true);
    expect(selects(podWebhook?.objectSelector, { [INJECT_LABEL]: 'true' })).toBe(true);
    expect(selects(podWebhook?.objectSelector, {})).toBe(false);
  });

  it('the webhook selects labelled namespaces only, never the system ones or its own, and honours the pod opt-out', () => {
    const ns = (name: string, labels: Record<string, string> = {}): Record<string, string> => ({
      'kubernetes.io/metadata.name': name,
      ...labels,
    });
    const on = { [INJECT_LABEL]: 'enabled' };
    const sel = webhook?.namespaceSelector;
    expect(selects(sel, ns('shop', on))).toBe(true);
    expect(selects(sel, ns('shop'))).toBe(false);
    expect(selects(sel, ns('shop', { [INJECT_LABEL]: 'disabled' }))).toBe(false);
    for (const system of [...SYSTEM_NAMESPACES, INJECTOR.namespace])
      expect(selects(sel, ns(system, on)), `${system} labelled for injection`).toBe(false);
    // The example namespace is one the webhook serves.
    const demo = one(example, 'Namespace');
    expect(selects(sel, ns(demo.metadata.name ?? '', demo.metadata.labels ?? {}))).toBe(true);
    const obj = webhook?.objectSelector;
    expect(selects(obj, {})).toBe(true);
    expect(selects(obj, { [ANNOTATIONS.inject]: 'true' })).toBe(true);
    expect(selects(obj, { [ANNOTATIONS.inject]: 'false' })).toBe(false);
    expect(selects(obj, { [ANNOTATIONS.inject]: 'disabled' })).toBe(false);
  });

  it('revisions: the default webhook leaves namespaces that pick another revision, and its objects carry their revision', () => {
    const sel = webhook?.namespaceSelector;
    const labels = { 'kubernetes.io/metadata.name': 'shop', [INJECT_LABEL]: 'enabled' };
    expect(selects(sel, labels)).toBe(true);
    expect(selects(sel, { ...labels, [REVISION_LABEL]: 'canary' })).toBe(false);
    // Selectors include the revision, so a second injector's pods never join this Service or PDB.
    const rev = podLabels[REVISION_LABEL];
    expect(rev).toBe('default');
    expect(deployment.spec?.selector.matchLabels?.[REVISION_LABEL]).toBe(rev);
    expect(service.spec?.selector?.[REVISION_LABEL]).toBe(rev);
    expect(
      one<IPodDisruptionBudget>(base, 'PodDisruptionBudget').spec?.selector?.matchLabels?.[REVISION_LABEL],
    ).toBe(rev);
    expect(webhookConfig.metadata?.labels?.[REVISION_LABEL]).toBe(rev);
  });

  it('RBAC is exactly the least-privilege grant of what the code calls: no wildcards, the CA Secret by name only', () => {
    const rules = (kind: string): unknown =>
      (one<IRole | IClusterRole>(base, kind).rules ?? []).map((r) => ({
        apiGroups: r.apiGroups,
        resources: r.resources,
        verbs: [...r.verbs].sort(),
        ...(r.resourceNames ? { resourceNames: r.resourceNames } : {}),
      }));
    expect(rules('Role')).toEqual([
      // The mesh config watch.
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
      // The identity CA's shared root: read by name; create cannot be limited by name.
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: [INJECTOR.caSecretName] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      // What proxies report about their engines (remora upgrade --version reads it).
      {
        apiGroups: [''],
        resources: ['configmaps'],
        verbs: ['update'],
        resourceNames: [ENGINE_STATUS_CONFIGMAP],
      },
      // Upgrade leases: slots as Lease objects, so the bound holds across replicas.
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        verbs: ['create', 'delete', 'list', 'update'],
      },
    ]);
    expect(rules('ClusterRole')).toEqual([
      {
        apiGroups: ['admissionregistration.k8s.io'],
        resources: ['mutatingwebhookconfigurations'],
        verbs: ['get', 'patch', 'update'],
        resourceNames: [INJECTOR.webhookConfigName],
      },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
      // The CA checks the proxies' projected tokens.
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      // The trust bundle in every non-system namespace: read and replace by name, create.
      {
        apiGroups: [''],
        resources: ['configmaps'],
        verbs: ['get', 'update'],
        resourceNames: [TRUST_BUNDLE.configMap],
      },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
      // Discovery's informers: list and watch only.
      { apiGroups: [''], resources: ['services', 'pods'], verbs: ['list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    ]);
    const all = JSON.stringify(base.filter((o) => o.kind.endsWith('Role')));
    expect(all).not.toContain('"*"');
    // Secrets only in the injector's own namespace, never cluster-wide.
    expect(JSON.stringify(one(base, 'ClusterRole'))).not.toMatch(/secrets/);
    const sa = one(base, 'ServiceAccount');
    for (const kind of ['RoleBinding', 'ClusterRoleBinding']) {
      const b = one<IRoleBinding>(base, kind);
      expect(b.roleRef.kind).toBe(kind.replace('Binding', ''));
      one(base, b.roleRef.kind, b.roleRef.name);
      expect(b.subjects).toEqual([
        { kind: 'ServiceAccount', name: sa.metadata.name, namespace: INJECTOR.namespace },
      ]);
    }
  });

  it('the mesh ConfigMap has the name and key the injector watches, and the injector parses its mesh.yaml', () => {
    const cm = one<IConfigMap>(base, 'ConfigMap', INJECTOR.meshConfigMap);
    const text = cm.data?.[INJECTOR.meshConfigKey] ?? '';
    const mesh = parseMeshConfig(text);
    expect(mesh.proxyImage).toBe(`${INJECTOR.defaultProxyImageRepo}:${VERSION}`);
    expect(FAILURE_MODES).toContain(mesh.defaultFailureMode);
    expect(MTLS_MODES).toContain(mesh.defaultMtlsMode);
    // Every field is written out, so the file documents the defaults (otlpEndpoint is optional).
    const written = Object.keys(parseYaml(text) as object);
    for (const f of [
      'proxyImage',
      'imagePullPolicy',
      'proxyResources',
      'initResources',
      'defaultFailureMode',
      'defaultMtlsMode',
      'trustDomain',
      'nativeSidecar',
      'holdApp',
      'drainSeconds',
      'logLevel',
      'traceSampling',
      'caAddress',
      'discoveryAddress',
    ])
      expect(written).toContain(f);
    // The addresses are Service ports that reach the injector.
    const svc = `${INJECTOR.serviceName}.${INJECTOR.namespace}.svc`;
    expect(mesh.caAddress).toBe(`${svc}:${INJECTOR.caPort}`);
    // Discovery and the policy stream are served on the CA listener (injector/src/ca/server.ts).
    expect(mesh.discoveryAddress).toBe(`${svc}:${INJECTOR.caPort}`);
    // Drain fits in the pod's grace period, with time left for the app.
    expect(mesh.drainSeconds).toBeLessThan(30);
  });
});

describe('deploy/examples/two-services', () => {
  const deployments = example.filter((o): o is IDeployment & K8sObject => o.kind === 'Deployment');
  const services = example.filter((o): o is IService & K8sObject => o.kind === 'Service');

  it('has two Deployments, each Service selecting one of them on a port its container serves', () => {
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['client', 'server']);
    expect(services.length).toBeGreaterThan(0);
    for (const s of services) {
      const targets = deployments.filter((d) =>
        selects({ matchLabels: s.spec?.selector ?? {} }, d.spec?.template.metadata?.labels ?? {}),
      );
      expect(targets, `Service ${s.metadata.name}`).toHaveLength(1);
      const containerPorts = targets[0]?.spec?.template.spec?.containers.flatMap((c) => c.ports ?? []) ?? [];
      for (const p of s.spec?.ports ?? [])
        expect(
          containerPorts.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort),
          `${s.metadata.name}:${p.port}`,
        ).toBe(true);
    }
  });

  it('the client calls the server Service by its DNS name and port', () => {
    const server = one<IService>(example, 'Service', 'server');
    const client = one<IDeployment>(example, 'Deployment', 'client');
    const script = JSON.stringify(client.spec?.template.spec?.containers[0]);
    const port = server.spec?.ports?.[0]?.port;
    const host = `${server.metadata?.name}.${server.metadata?.namespace}.svc`;
    expect(script).toContain(port === 80 ? `http://${host}/` : `http://${host}:${port}/`);
  });

  it('uses only contract annotations with valid values, failure-mode degrade on one, app UIDs not the proxy', () => {
    const modes: string[] = [];
    for (const d of deployments) {
      const ann = d.spec?.template.metadata?.annotations ?? {};
      for (const [k, v] of Object.entries(ann)) {
        if (!k.startsWith('remora.dev/')) continue;
        expect(Object.values(ANNOTATIONS), k).toContain(k);
        if (k === ANNOTATIONS.failureMode) {
          expect(FAILURE_MODES).toContain(v);
          modes.push(v);
        }
        if (k === ANNOTATIONS.mtlsMode) expect(MTLS_MODES).toContain(v);
      }
      // Traffic of the proxy's UID is not captured: an app running as it would bypass the mesh.
      const spec = d.spec?.template.spec;
      for (const uid of [
        spec?.securityContext?.runAsUser,
        ...(spec?.containers ?? []).map((c) => c.securityContext?.runAsUser),
      ])
        expect(uid).not.toBe(PROXY_UID);
    }
    expect(modes).toContain('degrade');
  });

  it('injected by `remora inject` with the base mesh config, every pod gets the configured proxy and its failure mode', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-deploy-'));
    try {
      const meshFile = join(dir, 'mesh.yaml');
      const cm = one<IConfigMap>(base, 'ConfigMap', INJECTOR.meshConfigMap);
      writeFileSync(meshFile, cm.data?.[INJECTOR.meshConfigKey] ?? '');
      const files = ['server.yaml', 'client.yaml'].map((f) => join(ROOT, 'deploy/examples/two-services', f));
      const out = execFileSync(
        process.execPath,
        [
          join(ROOT, 'injector/dist/bin/remora.js'),
          'inject',
          ...files.flatMap((f) => ['-f', f]),
          '--mesh-config',
          meshFile,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const objs = parseYamlDocs(out, 'remora inject output').map((d) => d.value as K8sObject);
      const injected = objs.filter((o): o is IDeployment & K8sObject => o.kind === 'Deployment');
      expect(injected.map((d) => d.metadata.name).sort()).toEqual(['client', 'server']);
      const proxyImage = parseMeshConfig(cm.data?.[INJECTOR.meshConfigKey] ?? '').proxyImage;
      // What the injected containers run must exist in the image Dockerfile.proxy builds.
      const runtime = parseDockerfile(read('Dockerfile.proxy')).stages.at(-1);
      const onPath = runtime ? linkedBins(runtime) : (new Map() as ReturnType<typeof linkedBins>);
      const entrypoint = runtime?.instructions.find((i) => i.keyword === 'ENTRYPOINT')?.exec;
      const installsTini =
        runtime?.instructions.some(
          (i) => i.keyword === 'RUN' && /apt-get install[^&;|]*\stini\b/.test(i.args),
        ) ?? false;
      const runnable = (cmd: readonly string[] | undefined): boolean =>
        cmd === undefined ||
        // tini from Debian's package, at the path the image's own ENTRYPOINT uses, then a command.
        (cmd[0] === '/usr/bin/tini'
          ? installsTini &&
            entrypoint?.[0] === cmd[0] &&
            cmd[1] === '--' &&
            cmd.length > 2 &&
            runnable(cmd.slice(2))
          : cmd[0] === 'node'
            ? existsSync(
                join(
                  ROOT,
                  (cmd[1] ?? '')
                    .replace(/^\/app\//, '')
                    .replace('/dist/', '/src/')
                    .replace(/\.js$/, '.ts'),
                ),
              )
            : onPath.get(cmd[0] ?? '')?.executable === true);
      for (const d of injected) {
        expect(await validateObject(d), d.metadata.name).toBeUndefined();
        const spec = d.spec?.template.spec;
        const all = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
        const init = all.find((c) => c.name === INIT_CONTAINER_NAME);
        const proxy = all.find((c) => c.name === PROXY_CONTAINER_NAME);
        expect([init?.image, proxy?.image]).toEqual([proxyImage, proxyImage]);
        expect(init?.command).toBeDefined();
        // The pod's command replaces the image's ENTRYPOINT: the sidecar must name tini itself.
        expect(proxy?.command?.[0]).toBe(entrypoint?.[0]);
        for (const c of [init, proxy])
          expect(runnable(c?.command), `${c?.name}: ${c?.command?.join(' ')}`).toBe(true);
        expect(proxy?.securityContext?.runAsUser).toBe(PROXY_UID);
        const mode = d.spec?.template.metadata?.annotations?.[ANNOTATIONS.failureMode];
        expect(proxy?.env?.find((e) => e.name === ENV.failureMode)?.value).toBe(mode);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
