/**
 * `remora check`: the cluster checks, as linkerd's `check` does them, each a function of what the
 * cluster answered through a ClusterReader. A check passes, warns (the mesh works, something
 * deserves a look) or fails (the mesh does not work as installed), and a failure says what to do.
 * Checks run in order; one whose premise failed (no API, no webhook) is reported as skipped.
 */
import {
  ANNOTATIONS,
  INJECTOR,
  INJECT_LABEL,
  SYSTEM_NAMESPACES,
  TRUST_BUNDLE,
  VERSION,
} from '@remora/proxy/contract';
import type { V1Pod } from '@kubernetes/client-node';
import type { ClusterReader } from './cluster.js';

/** The HTTP status of a client-node error, if it has one. */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A one-line reason for a client-node error (its Status message when the server sent one). */
export function reasonOf(err: unknown): string {
  const body = (err as { body?: unknown } | undefined)?.body;
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as { message?: unknown };
      if (typeof status.message === 'string') return status.message;
    } catch {
      // not JSON: fall through to the error's own message
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

export type Verdict = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  name: string;
  verdict: Verdict;
  /** What was seen, one line. */
  detail: string;
  /** What to do about a warn or fail. */
  hint?: string;
}

/** Native sidecars (init containers with restartPolicy Always) are on by default from 1.29. */
export const MIN_KUBERNETES = { major: 1, minor: 28 } as const;
const NATIVE_SIDECAR_MINOR = 29;

export function parseGitVersion(v: string): { major: number; minor: number } | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec(v);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** The version a pod's proxy was injected with (`remora.dev/status`), or undefined. */
export function proxyVersionOf(pod: V1Pod): string | undefined {
  const raw = pod.metadata?.annotations?.[ANNOTATIONS.status];
  if (raw === undefined) return undefined;
  try {
    const v = (JSON.parse(raw) as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The injector's version from its Deployment's image tag (`…/remora-injector:0.1.0`). */
export function imageVersion(image: string | undefined): string | undefined {
  if (image === undefined) return undefined;
  const noDigest = image.split('@')[0] as string;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(colon + 1) : undefined;
}

const podName = (p: V1Pod): string => `${p.metadata?.namespace ?? '?'}/${p.metadata?.name ?? '?'}`;

/** A pod that only asks for injection, created with dryRun=All to see the webhook answer. */
function probePod(labelPod: boolean): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'remora-check-',
      ...(labelPod ? { labels: { [INJECT_LABEL]: 'true' } } : {}),
    },
    spec: { containers: [{ name: 'app', image: 'registry.invalid/remora-check:0' }] },
  };
}

export interface CheckOptions {
  /** Only the checks that make sense before `kubectl apply -k deploy/base`. */
  pre?: boolean;
  /** The control plane's namespace (default remora-system). */
  namespace?: string;
}

export async function runChecks(api: ClusterReader, opts: CheckOptions = {}): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const ns = opts.namespace ?? INJECTOR.namespace;
  const skip = (name: string, why: string): void => void out.push({ name, verdict: 'skip', detail: why });

  // 1. The API server.
  let gitVersion: string;
  try {
    gitVersion = await api.version();
    out.push({ name: 'Kubernetes API reachable', verdict: 'pass', detail: `server ${gitVersion}` });
  } catch (err) {
    out.push({
      name: 'Kubernetes API reachable',
      verdict: 'fail',
      detail: reasonOf(err),
      hint: 'check --kubeconfig / $KUBECONFIG and --context; `kubectl version` should answer',
    });
    return out;
  }
  const v = parseGitVersion(gitVersion);
  if (
    v === undefined ||
    v.major < MIN_KUBERNETES.major ||
    (v.major === 1 && v.minor < MIN_KUBERNETES.minor)
  ) {
    out.push({
      name: 'Kubernetes version supported',
      verdict: 'fail',
      detail: `${gitVersion} is older than ${MIN_KUBERNETES.major}.${MIN_KUBERNETES.minor}`,
      hint: 'upgrade the cluster',
    });
  } else {
    const native = v.minor >= NATIVE_SIDECAR_MINOR;
    out.push({
      name: 'Kubernetes version supported',
      verdict: 'pass',
      detail: `${v.major}.${v.minor}: ${native ? 'native sidecars' : 'legacy sidecar ordering (no native sidecars before 1.29)'}`,
    });
  }

  if (opts.pre) {
    await preChecks(api, ns, out);
    return out;
  }

  // 2. The control plane.
  let injectorVersion: string | undefined;
  try {
    const d = await api.deployment(ns, INJECTOR.serviceName);
    const want = d.spec?.replicas ?? 1;
    const ready = d.status?.readyReplicas ?? 0;
    const image = d.spec?.template.spec?.containers.find((c) => c.name === INJECTOR.serviceName)?.image;
    injectorVersion = imageVersion(image);
    out.push(
      ready >= 1
        ? {
            name: 'injector ready',
            verdict: ready < want ? 'warn' : 'pass',
            detail: `${ready}/${want} replicas ready, image ${image ?? '?'}`,
            ...(ready < want ? { hint: `kubectl -n ${ns} describe deployment ${INJECTOR.serviceName}` } : {}),
          }
        : {
            name: 'injector ready',
            verdict: 'fail',
            detail: `0/${want} replicas ready`,
            hint: `kubectl -n ${ns} get pods -l app.kubernetes.io/name=${INJECTOR.serviceName}; kubectl -n ${ns} logs deploy/${INJECTOR.serviceName}`,
          },
    );
  } catch (err) {
    out.push({
      name: 'injector ready',
      verdict: 'fail',
      detail: statusOf(err) === 404 ? `no Deployment ${ns}/${INJECTOR.serviceName}` : reasonOf(err),
      hint: 'install the control plane: kubectl apply -k deploy/base',
    });
  }

  try {
    const slices = await api.endpointSlices(ns, INJECTOR.serviceName);
    const ready = slices.flatMap((s) =>
      (s.ports ?? []).some((p) => p.port === INJECTOR.caPort)
        ? s.endpoints.filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses)
        : [],
    );
    out.push(
      ready.length > 0
        ? {
            name: 'CA serving',
            verdict: 'pass',
            detail: `${ready.length} ready endpoint(s) on port ${INJECTOR.caPort}`,
          }
        : {
            name: 'CA serving',
            verdict: 'fail',
            detail: `Service ${ns}/${INJECTOR.serviceName} has no ready endpoint for port ${INJECTOR.caPort}`,
            hint: 'proxies cannot get certificates or discovery; see the injector check above',
          },
    );
  } catch (err) {
    out.push({
      name: 'CA serving',
      verdict: 'fail',
      detail: reasonOf(err),
      hint: 'kubectl apply -k deploy/base',
    });
  }

  // 3. The webhook: configured, with a caBundle, and answering (a dry-run pod comes back injected).
  let webhookOk = false;
  try {
    const cfg = await api.webhook(INJECTOR.webhookConfigName);
    const hooks = cfg.webhooks ?? [];
    const missing = hooks.filter((h) => !h.clientConfig.caBundle).map((h) => h.name);
    if (hooks.length === 0) {
      out.push({
        name: 'webhook configured',
        verdict: 'fail',
        detail: 'no webhooks',
        hint: 'kubectl apply -k deploy/base',
      });
    } else if (missing.length > 0) {
      out.push({
        name: 'webhook configured',
        verdict: 'fail',
        detail: `no caBundle on ${missing.join(', ')}`,
        hint: 'the injector writes it at start: check its logs (ensureCaBundle), or set it for a mounted certificate',
      });
    } else {
      webhookOk = true;
      out.push({
        name: 'webhook configured',
        verdict: 'pass',
        detail: `${hooks.length} webhook(s), failurePolicy ${[...new Set(hooks.map((h) => h.failurePolicy ?? 'Fail'))].join('/')}`,
      });
    }
  } catch (err) {
    out.push({
      name: 'webhook configured',
      verdict: 'fail',
      detail:
        statusOf(err) === 404
          ? `no MutatingWebhookConfiguration ${INJECTOR.webhookConfigName}`
          : reasonOf(err),
      hint: 'kubectl apply -k deploy/base',
    });
  }

  let namespaces: string[] = [];
  try {
    namespaces = (await api.namespaces())
      .filter((n) => n.metadata?.labels?.[INJECT_LABEL] === 'enabled')
      .map((n) => n.metadata?.name ?? '')
      .filter((n) => n !== '' && !(SYSTEM_NAMESPACES as readonly string[]).includes(n) && n !== ns);
  } catch (err) {
    out.push({ name: 'namespaces labelled', verdict: 'fail', detail: reasonOf(err) });
  }

  if (!webhookOk) skip('webhook answers with a matching caBundle', 'the webhook is not configured');
  else {
    // A labelled namespace goes through the first webhook entry; without one, the pod label
    // through the second in `default` (which carries no inject label unless the user set one).
    const target = namespaces[0] ?? 'default';
    try {
      const pod = await api.dryRunPod(target, probePod(namespaces.length === 0));
      const names = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
      const injected = names.includes('remora-proxy');
      out.push(
        injected
          ? {
              name: 'webhook answers with a matching caBundle',
              verdict: 'pass',
              detail: `dry-run pod in ${target} injected`,
            }
          : {
              name: 'webhook answers with a matching caBundle',
              verdict: 'fail',
              detail: `a dry-run pod in ${target} came back without remora-proxy`,
              hint: `is ${target} labelled ${INJECT_LABEL}=enabled, or selected by the webhook? kubectl get mutatingwebhookconfiguration ${INJECTOR.webhookConfigName} -o yaml`,
            },
      );
    } catch (err) {
      const reason = reasonOf(err);
      out.push({
        name: 'webhook answers with a matching caBundle',
        verdict: 'fail',
        detail: reason,
        hint: /x509|certificate/i.test(reason)
          ? "the caBundle does not match the injector's serving certificate: restart the injector (it rewrites the bundle) or fix the mounted certificate"
          : 'the API server could not call the webhook: is the injector ready and its Service reachable?',
      });
    }
  }

  // 4. The trust bundle in every labelled namespace, all the same.
  out.push(
    namespaces.length > 0
      ? { name: 'namespaces labelled', verdict: 'pass', detail: namespaces.join(', ') }
      : {
          name: 'namespaces labelled',
          verdict: 'warn',
          detail: `no namespace labelled ${INJECT_LABEL}=enabled`,
          hint: `kubectl label namespace NAME ${INJECT_LABEL}=enabled, then restart its workloads`,
        },
  );
  const bundles = new Map<string, string[]>();
  const missingBundle: string[] = [];
  for (const n of namespaces) {
    try {
      const cm = await api.configMap(n, TRUST_BUNDLE.configMap);
      const pem = cm.data?.[TRUST_BUNDLE.key];
      if (!pem) missingBundle.push(n);
      else bundles.set(pem, [...(bundles.get(pem) ?? []), n]);
    } catch {
      missingBundle.push(n);
    }
  }
  if (namespaces.length === 0) skip('trust bundle distributed', 'no labelled namespace');
  else if (missingBundle.length > 0)
    out.push({
      name: 'trust bundle distributed',
      verdict: 'fail',
      detail: `no ConfigMap ${TRUST_BUNDLE.configMap} (key ${TRUST_BUNDLE.key}) in ${missingBundle.join(', ')}`,
      hint: 'the injector publishes it into every namespace it may inject: check its logs (trust_bundle_published) and RBAC',
    });
  else if (bundles.size > 1)
    out.push({
      name: 'trust bundle distributed',
      verdict: 'fail',
      detail: `${bundles.size} different bundles across ${namespaces.length} namespaces`,
      hint: 'a namespace holds a stale bundle: the injector replaces it on its next pass, or delete the ConfigMap',
    });
  else
    out.push({
      name: 'trust bundle distributed',
      verdict: 'pass',
      detail: `same bundle in ${namespaces.length} namespace(s)`,
    });

  // 5. Proxies on another version than the control plane.
  try {
    const meshed = (await api.pods()).filter((p) => proxyVersionOf(p) !== undefined);
    const want = injectorVersion ?? VERSION;
    const behind = meshed.filter((p) => proxyVersionOf(p) !== want);
    out.push(
      behind.length === 0
        ? {
            name: 'proxies on the control plane version',
            verdict: 'pass',
            detail: `${meshed.length} meshed pod(s) on ${want}`,
          }
        : {
            name: 'proxies on the control plane version',
            verdict: 'warn',
            detail: `${behind.length} of ${meshed.length} on another version: ${behind
              .slice(0, 5)
              .map((p) => `${podName(p)} (${proxyVersionOf(p) ?? '?'})`)
              .join(', ')}${behind.length > 5 ? ', …' : ''}`,
            hint: 'remora upgrade --restart restarts their workloads (or kubectl rollout restart)',
          },
    );
  } catch (err) {
    out.push({ name: 'proxies on the control plane version', verdict: 'fail', detail: reasonOf(err) });
  }
  return out;
}

/** Before the install: can this user create what deploy/base holds, and is the name free? */
async function preChecks(api: ClusterReader, ns: string, out: CheckResult[]): Promise<void> {
  const needs: [string, string, string][] = [
    ['create', '', 'namespaces'],
    ['create', 'admissionregistration.k8s.io', 'mutatingwebhookconfigurations'],
    ['create', 'rbac.authorization.k8s.io', 'clusterroles'],
    ['create', 'rbac.authorization.k8s.io', 'clusterrolebindings'],
    ['create', 'apps', 'deployments'],
  ];
  const denied: string[] = [];
  for (const [verb, group, resource] of needs) {
    try {
      if (!(await api.canI(verb, group, resource, resource === 'deployments' ? ns : undefined)))
        denied.push(`${verb} ${resource}`);
    } catch (err) {
      denied.push(`${verb} ${resource} (${reasonOf(err)})`);
    }
  }
  out.push(
    denied.length === 0
      ? { name: 'can install the control plane', verdict: 'pass', detail: needs.map((n) => n[2]).join(', ') }
      : {
          name: 'can install the control plane',
          verdict: 'fail',
          detail: `not allowed: ${denied.join(', ')}`,
          hint: 'install as a cluster admin',
        },
  );
  try {
    await api.namespace(ns);
    out.push({
      name: 'control plane namespace free',
      verdict: 'warn',
      detail: `namespace ${ns} exists already`,
      hint: 'an earlier install? `remora check` (without --pre) checks it',
    });
  } catch (err) {
    out.push(
      statusOf(err) === 404
        ? { name: 'control plane namespace free', verdict: 'pass', detail: `${ns} does not exist yet` }
        : { name: 'control plane namespace free', verdict: 'fail', detail: reasonOf(err) },
    );
  }
}

const MARK: Record<Verdict, string> = { pass: '[ok]  ', warn: '[warn]', fail: '[FAIL]', skip: '[skip]' };

/** One line per check, the hint indented under a warn or fail, then a summary line. */
export function formatChecks(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${MARK[r.verdict]} ${r.name}: ${r.detail}`);
    if (r.hint !== undefined && (r.verdict === 'fail' || r.verdict === 'warn'))
      lines.push(`       hint: ${r.hint}`);
  }
  const count = (v: Verdict): number => results.filter((r) => r.verdict === v).length;
  lines.push(
    `checks: ${count('pass')} ok, ${count('warn')} warning(s), ${count('fail')} failing, ${count('skip')} not run`,
  );
  return `${lines.join('\n')}\n`;
}
