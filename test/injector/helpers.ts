/** Shared builders for the injector tests. */
import { INJECT_LABEL } from '@remora/proxy/contract';
import type { NamespaceInfo, PodLike } from '../../injector/src/inject/types.js';

export function pod(
  over: { annotations?: Record<string, string>; labels?: Record<string, string> } & Partial<
    PodLike['spec']
  > = {},
): PodLike {
  const { annotations, labels, ...spec } = over;
  const metadata: PodLike['metadata'] = { name: 'web-1' };
  if (annotations) metadata.annotations = annotations;
  if (labels) metadata.labels = labels;
  return {
    metadata,
    spec: {
      containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080, name: 'http' }] }],
      ...spec,
    },
  };
}

export const enabledNs: NamespaceInfo = { name: 'shop', labels: { [INJECT_LABEL]: 'enabled' } };
export const plainNs: NamespaceInfo = { name: 'shop', labels: {} };
