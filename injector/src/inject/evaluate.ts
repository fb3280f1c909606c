/**
 * decide → validate → buildPatch, in the one order both the webhook and `remora inject` use.
 * Annotations are validated only for pods that would be injected: a pod the mesh leaves alone is
 * not the mesh's to reject, except one opting out where the mesh config forbids it (guard.ts).
 */
import type { MeshConfig } from '../config/mesh.js';
import { parseAnnotations } from './annotations.js';
import { decide } from './decide.js';
import type { InjectReason, SkipReason } from './decide.js';
import { annotationPolicyErrors, optOutError, privilegeConflicts } from './guard.js';
import type { JsonPatchOp } from './jsonpatch.js';
import { buildPatch, podConflicts, reinvocationPatch } from './patch.js';
import type { NamespaceInfo, PodLike } from './types.js';

export type Outcome =
  /** `reinvoked`: an injected pod seen again after a later webhook added containers. */
  | { result: 'injected'; reason: InjectReason | 'reinvoked'; patch: JsonPatchOp[] }
  | { result: 'skipped'; reason: SkipReason }
  | { result: 'rejected'; errors: string[] };

export function evaluate(pod: PodLike, namespace: NamespaceInfo, mesh: MeshConfig): Outcome {
  const decision = decide(pod, namespace, mesh);
  if (!decision.inject) {
    // Called again after a later webhook changed the pod: probes of containers added since.
    if (decision.reason === 'already_injected') {
      const parsed = parseAnnotations(pod.metadata?.annotations, mesh);
      const patch = parsed.ok ? reinvocationPatch(pod, parsed.options) : [];
      if (patch.length > 0) return { result: 'injected', reason: 'reinvoked', patch };
    }
    const refused = optOutError(decision.reason, pod, namespace, mesh);
    return refused === undefined
      ? { result: 'skipped', reason: decision.reason }
      : { result: 'rejected', errors: [refused] };
  }
  const parsed = parseAnnotations(pod.metadata?.annotations, mesh);
  const conflicts = [
    ...podConflicts(pod),
    ...privilegeConflicts(pod),
    ...annotationPolicyErrors(pod, namespace, mesh),
  ];
  if (!parsed.ok || conflicts.length > 0) {
    return { result: 'rejected', errors: [...(parsed.ok ? [] : parsed.errors), ...conflicts] };
  }
  return {
    result: 'injected',
    reason: decision.reason,
    patch: buildPatch(pod, decision, mesh, parsed.options),
  };
}
