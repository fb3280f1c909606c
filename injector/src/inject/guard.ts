/**
 * What a pod author may not do through the pod spec and its annotations (pure, STYLE #1): run a
 * container as the proxy's UID or GID (its traffic would escape capture), mount the proxy's
 * volumes, name a proxy image outside the mesh's allow-list (the init container runs it as root
 * with NET_ADMIN), or use an annotation the mesh config forbids in the pod's namespace to switch
 * capture or strict mTLS off. Each finding is a message naming the container or the annotation,
 * reported like an invalid annotation (the pod is rejected).
 */
import { ANNOTATIONS, INJECT_LABEL, PROXY_GID, PROXY_UID } from '@remora/proxy/contract';
import { imageAllowed } from '../config/mesh.js';
import type { MeshConfig } from '../config/mesh.js';
import type { SkipReason } from './decide.js';
import { VOLUMES } from './sidecar.js';
import { isRecord } from './types.js';
import type { Container, NamespaceInfo, PodLike } from './types.js';
import { parseImage, showValue } from './values.js';

/** Volumes only the injected containers mount: the admin token and run state, the CA token, the engine bundles. */
const PRIVATE_VOLUMES: ReadonlySet<string> = new Set([VOLUMES.run, VOLUMES.token, VOLUMES.engines]);

const idOf = (ctx: unknown, field: 'runAsUser' | 'runAsGroup'): number | undefined => {
  const v = isRecord(ctx) ? ctx[field] : undefined;
  return typeof v === 'number' ? v : undefined;
};

/** App and user init containers running as 1337 (either id) or mounting the proxy's volumes. */
export function privilegeConflicts(pod: PodLike): string[] {
  const errors: string[] = [];
  const podCtx = pod.spec.securityContext;
  const check = (c: Container, kind: string): void => {
    for (const [field, proxyId, what] of [
      ['runAsUser', PROXY_UID, 'UID'],
      ['runAsGroup', PROXY_GID, 'GID'],
    ] as const) {
      const own = idOf(c.securityContext, field);
      const id = own ?? idOf(podCtx, field);
      if (id === proxyId)
        errors.push(
          `${kind} ${JSON.stringify(c.name)} runs as ${what} ${id} (${own !== undefined ? '' : 'pod '}securityContext.${field}), the proxy's ${what}: its traffic would bypass capture`,
        );
    }
    const mounts = Array.isArray(c.volumeMounts) ? (c.volumeMounts as unknown[]) : [];
    for (const m of mounts) {
      const name = isRecord(m) ? m.name : undefined;
      if (typeof name === 'string' && PRIVATE_VOLUMES.has(name))
        errors.push(
          `${kind} ${JSON.stringify(c.name)} mounts ${JSON.stringify(name)}, a volume only remora-proxy may mount`,
        );
    }
  };
  for (const c of pod.spec.initContainers ?? []) check(c, 'init container');
  for (const c of pod.spec.containers) check(c, 'container');
  return errors;
}

/**
 * Whether `value` of annotation `key` switches capture or strict mTLS off (or widens what the
 * pod may do). Values that keep the mesh's defaults are not: a namespace that forbids
 * `mtls-mode` still lets a pod ask for `strict`. An annotation this file does not know widens
 * whenever present.
 */
export function widens(key: string, value: string, mesh: MeshConfig): boolean {
  const v = value.trim();
  switch (key) {
    case ANNOTATIONS.mtlsMode:
      return v !== 'strict';
    case ANNOTATIONS.failureMode:
      return v === 'degrade';
    case ANNOTATIONS.includeInboundPorts:
    case ANNOTATIONS.includeOutboundCidrs:
      return v !== '*';
    case ANNOTATIONS.excludeInboundPorts:
    case ANNOTATIONS.excludeOutboundPorts:
    case ANNOTATIONS.excludeOutboundCidrs:
      return v !== '';
    case ANNOTATIONS.inject:
      return v === 'false' || v === 'disabled';
    case ANNOTATIONS.proxyImage:
      return v !== mesh.proxyImage;
    default:
      return true;
  }
}

/** The annotations the mesh config forbids in `namespace` (entries for it and for `*`). */
export function forbiddenIn(namespace: string, mesh: MeshConfig): ReadonlySet<string> {
  const out = new Set<string>();
  for (const p of mesh.namespacePolicies)
    if (p.namespace === '*' || p.namespace === namespace) for (const a of p.forbidAnnotations) out.add(a);
  return out;
}

const forbiddenMessage = (key: string, value: string, namespace: string): string =>
  `${key}: ${showValue(value)} is forbidden in namespace ${JSON.stringify(namespace)} by the mesh config (namespacePolicies): it switches capture or strict mTLS off`;

/** Annotation values outside what the mesh config allows this pod's namespace. */
export function annotationPolicyErrors(pod: PodLike, namespace: NamespaceInfo, mesh: MeshConfig): string[] {
  const a = pod.metadata?.annotations ?? {};
  const errors: string[] = [];
  const image = a[ANNOTATIONS.proxyImage];
  // An unparseable value is reported by parseAnnotations already.
  if (image !== undefined && parseImage(image).ok && !imageAllowed(image, mesh.allowedProxyImages))
    errors.push(
      `${ANNOTATIONS.proxyImage}: ${showValue(image)} is not in an allowed image repository (mesh config allowedProxyImages: ${mesh.allowedProxyImages.join(', ')})`,
    );
  const forbidden = forbiddenIn(namespace.name, mesh);
  for (const key of forbidden) {
    const value = a[key];
    if (value !== undefined && widens(key, value, mesh))
      errors.push(forbiddenMessage(key, value, namespace.name));
  }
  return errors;
}

const OPT_OUT_REASONS: ReadonlySet<SkipReason> = new Set([
  'opted_out',
  'opted_out_istio',
  'opted_out_linkerd',
]);

/**
 * A pod opting out of a namespace that injects, where the mesh config forbids
 * `remora.dev/inject` there: the opt-out (any spelling: label, annotation, Istio's, Linkerd's)
 * would leave the pod without capture or mTLS, so it is refused rather than skipped.
 */
export function optOutError(
  reason: SkipReason,
  pod: PodLike,
  namespace: NamespaceInfo,
  mesh: MeshConfig,
): string | undefined {
  if (!OPT_OUT_REASONS.has(reason) || namespace.labels[INJECT_LABEL] !== 'enabled') return undefined;
  if (!forbiddenIn(namespace.name, mesh).has(ANNOTATIONS.inject)) return undefined;
  const a = pod.metadata?.annotations ?? {};
  const l = pod.metadata?.labels ?? {};
  const value = a[ANNOTATIONS.inject] ?? l[INJECT_LABEL] ?? 'false';
  return `${ANNOTATIONS.inject}: opting out (${reason}, value ${showValue(value)}) is forbidden in namespace ${JSON.stringify(namespace.name)} by the mesh config (namespacePolicies): the pod would run without capture or mTLS`;
}
