/**
 * The workload a pod belongs to, for REMORA_WORKLOAD and OTEL_SERVICE_NAME: the name its series
 * and spans carry, the same for every replica and across rollouts. A pure function of the pod as
 * the webhook sees it: at admission a pod made by a controller often has no `metadata.name` yet
 * (the API server generates it later from `generateName`), so the name is the last resort.
 *
 * In order: label `app.kubernetes.io/name`; label `app`; the controller's name (the owner
 * reference with `controller: true`, else the first one, else `generateName` without its final
 * `-`), with the suffix its own controller added removed: a Deployment's ReplicaSet
 * `<deployment>-<pod-template-hash>` gives `<deployment>` (the hash is the pod's
 * `pod-template-hash` label), a CronJob's Job `<cronjob>-<minutes since the epoch>` gives
 * `<cronjob>`; the pod name. Undefined when the pod has none of these (`remora inject` on a
 * template without labels): the proxy then reports no workload rather than a made-up one.
 */
import { isRecord } from './types.js';
import type { PodLike } from './types.js';

export const WORKLOAD_LABELS = Object.freeze(['app.kubernetes.io/name', 'app']);
/** Set by the Deployment controller on its ReplicaSets' pods; the suffix of the ReplicaSet's name. */
const POD_TEMPLATE_HASH = 'pod-template-hash';
/** A CronJob names its Jobs `<cronjob>-<scheduled time in minutes since the epoch>`. */
const CRONJOB_SUFFIX = /-\d{8,}$/;
/** Longest label value (and so the longest useful workload name). */
const MAX_LENGTH = 253;

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' && v.length <= MAX_LENGTH ? v.trim() : undefined;
}

interface Owner {
  kind: string | undefined;
  name: string;
}

/** The controlling owner, from ownerReferences (untrusted input: checked field by field). */
function owner(meta: Record<string, unknown>): Owner | undefined {
  const refs = Array.isArray(meta.ownerReferences) ? meta.ownerReferences.filter(isRecord) : [];
  const ref = refs.find((r) => r.controller === true) ?? refs[0];
  const name = text(ref?.name);
  if (ref && name !== undefined) return { kind: text(ref.kind), name };
  // Without owner references (a template, a hand-made pod), generateName is `<controller>-`.
  const generated = text(meta.generateName)?.replace(/-+$/, '');
  return generated ? { kind: undefined, name: generated } : undefined;
}

function trimControllerSuffix(o: Owner, labels: Readonly<Record<string, string>>): string {
  const hash = text(labels[POD_TEMPLATE_HASH]);
  let trimmed = o.name;
  if ((o.kind === 'ReplicaSet' || o.kind === undefined) && hash !== undefined && o.name.endsWith(`-${hash}`))
    trimmed = o.name.slice(0, -(hash.length + 1));
  else if (o.kind === 'Job' || o.kind === undefined) trimmed = o.name.replace(CRONJOB_SUFFIX, '');
  return trimmed === '' ? o.name : trimmed;
}

export function workloadName(pod: PodLike): string | undefined {
  const meta: Record<string, unknown> = pod.metadata ?? {};
  const labels = pod.metadata?.labels ?? {};
  for (const key of WORKLOAD_LABELS) {
    const v = text(labels[key]);
    if (v !== undefined) return v;
  }
  const o = owner(meta);
  if (o) return trimControllerSuffix(o, labels);
  return text(meta.name);
}
