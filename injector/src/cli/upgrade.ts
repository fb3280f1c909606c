/**
 * `remora upgrade --restart`: the image path of DESIGN §5. Finds the meshed pods whose proxy
 * (their `remora.dev/status` version) differs from the control plane's, maps each to the
 * workload that owns it, and restarts each workload once, as `kubectl rollout restart` does; the
 * proxy's drain makes the rolling restart lossless. Pods no workload owns, and Jobs, are named
 * but left alone (restarting them would lose work; they take the new proxy when next created).
 */
import { INJECTOR, VERSION } from '@remora/proxy/contract';
import type { V1Pod } from '@kubernetes/client-node';
import type { ClusterReader, RestartableKind } from './cluster.js';
import { imageVersion, proxyVersionOf, reasonOf } from './check.js';

/** The pod-template annotation a restart sets (kubectl uses kubectl.kubernetes.io/restartedAt). */
export const RESTARTED_AT = 'remora.dev/restarted-at';

export interface Workload {
  kind: RestartableKind;
  namespace: string;
  name: string;
  /** The out-of-date pods it owns, `name (version)`. */
  pods: string[];
}

export interface RestartPlan {
  target: string;
  workloads: Workload[];
  /** Out-of-date pods that are not restarted, with the reason. */
  left: string[];
}

const RESTARTABLE: readonly string[] = ['Deployment', 'StatefulSet', 'DaemonSet'];

export async function planRestart(
  api: ClusterReader,
  opts: { namespace?: string; controlPlane?: string } = {},
): Promise<RestartPlan> {
  let target = VERSION;
  try {
    const d = await api.deployment(opts.controlPlane ?? INJECTOR.namespace, INJECTOR.serviceName);
    target =
      imageVersion(d.spec?.template.spec?.containers.find((c) => c.name === INJECTOR.serviceName)?.image) ??
      VERSION;
  } catch {
    // No control plane to read: the CLI's own version is the target.
  }
  const pods = (await api.pods()).filter(
    (p: V1Pod) =>
      (opts.namespace === undefined || p.metadata?.namespace === opts.namespace) &&
      proxyVersionOf(p) !== undefined &&
      proxyVersionOf(p) !== target,
  );
  const byKey = new Map<string, Workload>();
  const left: string[] = [];
  for (const pod of pods) {
    const ns = pod.metadata?.namespace ?? 'default';
    const label = `${ns}/${pod.metadata?.name ?? '?'} (${proxyVersionOf(pod) ?? '?'})`;
    const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
    let kind = owner?.kind;
    let name = owner?.name;
    if (kind === 'ReplicaSet' && name !== undefined) {
      try {
        const rsOwner = await api.replicaSetOwner(ns, name);
        kind = rsOwner?.kind ?? 'ReplicaSet';
        name = rsOwner?.name ?? name;
      } catch (err) {
        left.push(`${label}: its ReplicaSet ${name}: ${reasonOf(err)}`);
        continue;
      }
    }
    if (owner === undefined || kind === undefined || name === undefined) {
      left.push(`${label}: no controller owns it; delete and recreate it`);
      continue;
    }
    if (!RESTARTABLE.includes(kind)) {
      left.push(
        `${label}: owned by ${kind}/${name}, not restarted (it takes the new proxy when next created)`,
      );
      continue;
    }
    const key = `${kind}/${ns}/${name}`;
    const w = byKey.get(key) ?? { kind: kind as RestartableKind, namespace: ns, name, pods: [] };
    w.pods.push(label);
    byKey.set(key, w);
  }
  return { target, workloads: [...byKey.values()], left };
}

/** Restarts every planned workload; one line per workload, failures named and counted. */
export async function runRestart(
  api: ClusterReader,
  plan: RestartPlan,
  out: (line: string) => void,
  now = new Date(),
): Promise<number> {
  let failed = 0;
  for (const w of plan.workloads) {
    try {
      await api.restart(w.kind, w.namespace, w.name, RESTARTED_AT, now.toISOString());
      out(`restarted ${w.kind}/${w.name} in ${w.namespace}: ${w.pods.join(', ')}`);
    } catch (err) {
      failed++;
      out(`FAILED ${w.kind}/${w.name} in ${w.namespace}: ${reasonOf(err)}`);
    }
  }
  return failed;
}
