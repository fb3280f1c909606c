/**
 * Whether a pod gets a Remora sidecar, and why: a pure function of the pod, its namespace and
 * the mesh config (STYLE #1, #6). Pod-level facts are checked before namespace-level ones, so
 * the reason names the most specific cause (an opted-out pod in kube-public says `opted_out`).
 */
import {
  ANNOTATIONS,
  FOREIGN_OPT_OUTS,
  INIT_CONTAINER_NAME,
  INJECT_LABEL,
  PROXY_CONTAINER_NAME,
  SYSTEM_NAMESPACES,
} from '@remora/proxy/contract';
import type { MeshConfig } from '../config/mesh.js';
import type { Container, NamespaceInfo, PodLike } from './types.js';

export const SKIP_REASONS = [
  'already_injected',
  'istio_sidecar_present',
  'linkerd_proxy_present',
  'host_network',
  'opted_out',
  'opted_out_istio',
  'opted_out_linkerd',
  'system_namespace',
  'namespace_disabled',
  'namespace_not_enabled',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** `enabled`: the namespace opts in; `pod_enabled`: the pod opts in, its namespace is unlabelled. */
export const INJECT_REASONS = ['enabled', 'pod_enabled'] as const;
export type InjectReason = (typeof INJECT_REASONS)[number];

export type Decision = { inject: true; reason: InjectReason } | { inject: false; reason: SkipReason };

const ISTIO_CONTAINERS = new Set(['istio-proxy', 'istio-init', 'istio-validation']);
const LINKERD_CONTAINERS = new Set(['linkerd-proxy', 'linkerd-init', 'linkerd-network-validator']);
const OPT_IN = new Set(['true', 'enabled']);
const OPT_OUT = new Set(['false', 'disabled']);

function allContainers(pod: PodLike): Container[] {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
}

/** The pod's own `remora.dev/inject` setting; an annotation wins over a label. */
function podSetting(pod: PodLike): string | undefined {
  return pod.metadata?.annotations?.[ANNOTATIONS.inject] ?? pod.metadata?.labels?.[INJECT_LABEL];
}

function foreignOptOut(pod: PodLike, key: string, value: string): boolean {
  return pod.metadata?.annotations?.[key] === value || pod.metadata?.labels?.[key] === value;
}

export function decide(pod: PodLike, namespace: NamespaceInfo, _mesh: MeshConfig): Decision {
  const names = allContainers(pod).map((c) => c.name);
  if (
    pod.metadata?.annotations?.[ANNOTATIONS.status] !== undefined ||
    names.includes(PROXY_CONTAINER_NAME) ||
    names.includes(INIT_CONTAINER_NAME)
  ) {
    return { inject: false, reason: 'already_injected' };
  }
  if (names.some((n) => ISTIO_CONTAINERS.has(n))) return { inject: false, reason: 'istio_sidecar_present' };
  if (names.some((n) => LINKERD_CONTAINERS.has(n))) return { inject: false, reason: 'linkerd_proxy_present' };
  if (pod.spec.hostNetwork === true) return { inject: false, reason: 'host_network' };

  const own = podSetting(pod);
  // A label and an annotation can disagree; any opt-out wins, never inject against a "no".
  const label = pod.metadata?.labels?.[INJECT_LABEL];
  if ((own !== undefined && OPT_OUT.has(own)) || (label !== undefined && OPT_OUT.has(label))) {
    return { inject: false, reason: 'opted_out' };
  }
  const [istio, linkerd] = FOREIGN_OPT_OUTS;
  if (istio && foreignOptOut(pod, istio.key, istio.value))
    return { inject: false, reason: 'opted_out_istio' };
  if (linkerd && foreignOptOut(pod, linkerd.key, linkerd.value)) {
    return { inject: false, reason: 'opted_out_linkerd' };
  }

  if ((SYSTEM_NAMESPACES as readonly string[]).includes(namespace.name)) {
    return { inject: false, reason: 'system_namespace' };
  }
  const nsSetting = namespace.labels[INJECT_LABEL];
  if (nsSetting === 'enabled') return { inject: true, reason: 'enabled' };
  if (nsSetting !== undefined && OPT_OUT.has(nsSetting))
    return { inject: false, reason: 'namespace_disabled' };
  if (own !== undefined && OPT_IN.has(own)) return { inject: true, reason: 'pod_enabled' };
  return { inject: false, reason: 'namespace_not_enabled' };
}
