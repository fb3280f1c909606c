import { describe, expect, it } from 'vitest';
import { INJECT_LABEL } from '@remora/proxy/contract';
import { DEFAULT_MESH_CONFIG } from '../../../injector/src/config/mesh.js';
import { INJECT_REASONS, SKIP_REASONS, decide } from '../../../injector/src/inject/decide.js';
import type { NamespaceInfo, PodLike } from '../../../injector/src/inject/types.js';
import { enabledNs, plainNs, pod } from '../helpers.js';

const disabledNs: NamespaceInfo = { name: 'shop', labels: { [INJECT_LABEL]: 'disabled' } };
const kubeSystem: NamespaceInfo = { name: 'kube-system', labels: { [INJECT_LABEL]: 'enabled' } };

const table: [string, PodLike, NamespaceInfo, boolean, string][] = [
  ['namespace label enabled', pod(), enabledNs, true, 'enabled'],
  ['unlabelled namespace', pod(), plainNs, false, 'namespace_not_enabled'],
  [
    'pod annotation opts in, namespace unlabelled',
    pod({ annotations: { 'remora.dev/inject': 'true' } }),
    plainNs,
    true,
    'pod_enabled',
  ],
  [
    'pod label opts in with "enabled"',
    pod({ labels: { 'remora.dev/inject': 'enabled' } }),
    plainNs,
    true,
    'pod_enabled',
  ],
  [
    'pod opt-in does not beat a disabled namespace',
    pod({ annotations: { 'remora.dev/inject': 'true' } }),
    disabledNs,
    false,
    'namespace_disabled',
  ],
  [
    'pod annotation opts out',
    pod({ annotations: { 'remora.dev/inject': 'false' } }),
    enabledNs,
    false,
    'opted_out',
  ],
  ['pod label opts out', pod({ labels: { 'remora.dev/inject': 'false' } }), enabledNs, false, 'opted_out'],
  [
    'label opt-out wins over an annotation opt-in',
    pod({ labels: { 'remora.dev/inject': 'false' }, annotations: { 'remora.dev/inject': 'true' } }),
    enabledNs,
    false,
    'opted_out',
  ],
  [
    'istio opt-out annotation',
    pod({ annotations: { 'sidecar.istio.io/inject': 'false' } }),
    enabledNs,
    false,
    'opted_out_istio',
  ],
  [
    'istio opt-out label',
    pod({ labels: { 'sidecar.istio.io/inject': 'false' } }),
    enabledNs,
    false,
    'opted_out_istio',
  ],
  [
    'istio opt-in is not an opt-out',
    pod({ annotations: { 'sidecar.istio.io/inject': 'true' } }),
    enabledNs,
    true,
    'enabled',
  ],
  [
    'linkerd opt-out',
    pod({ annotations: { 'linkerd.io/inject': 'disabled' } }),
    enabledNs,
    false,
    'opted_out_linkerd',
  ],
  [
    'linkerd "enabled" is not an opt-out',
    pod({ annotations: { 'linkerd.io/inject': 'enabled' } }),
    enabledNs,
    true,
    'enabled',
  ],
  ['hostNetwork', pod({ hostNetwork: true }), enabledNs, false, 'host_network'],
  ['kube-system even when labelled', pod(), kubeSystem, false, 'system_namespace'],
  ['kube-public', pod(), { name: 'kube-public', labels: {} }, false, 'system_namespace'],
  ['kube-node-lease', pod(), { name: 'kube-node-lease', labels: {} }, false, 'system_namespace'],
  [
    'already injected (status)',
    pod({ annotations: { 'remora.dev/status': '{}' } }),
    enabledNs,
    false,
    'already_injected',
  ],
  [
    'already injected (proxy container)',
    pod({ initContainers: [{ name: 'remora-proxy' }] }),
    enabledNs,
    false,
    'already_injected',
  ],
  [
    'already injected (init container)',
    pod({ initContainers: [{ name: 'remora-init' }] }),
    enabledNs,
    false,
    'already_injected',
  ],
  [
    'istio sidecar present',
    pod({ containers: [{ name: 'app' }, { name: 'istio-proxy' }] }),
    enabledNs,
    false,
    'istio_sidecar_present',
  ],
  [
    'istio init present',
    pod({ initContainers: [{ name: 'istio-init' }] }),
    enabledNs,
    false,
    'istio_sidecar_present',
  ],
  [
    'linkerd proxy present',
    pod({ containers: [{ name: 'app' }, { name: 'linkerd-proxy' }] }),
    enabledNs,
    false,
    'linkerd_proxy_present',
  ],
  // Pod-level facts are more specific than namespace-level ones.
  [
    'opted out in kube-system says opted_out',
    pod({ annotations: { 'remora.dev/inject': 'false' } }),
    kubeSystem,
    false,
    'opted_out',
  ],
  [
    'hostNetwork and opted out says host_network',
    pod({ hostNetwork: true, annotations: { 'remora.dev/inject': 'false' } }),
    enabledNs,
    false,
    'host_network',
  ],
  [
    'unknown inject value neither opts in nor out',
    pod({ annotations: { 'remora.dev/inject': 'maybe' } }),
    plainNs,
    false,
    'namespace_not_enabled',
  ],
];

describe('decide', () => {
  it.each(table)('%s', (_name, p, ns, inject, reason) => {
    expect(decide(p, ns, DEFAULT_MESH_CONFIG)).toEqual({ inject, reason });
  });

  it('covers every reason code in the table', () => {
    const seen = new Set(table.map((t) => t[4]));
    for (const r of [...SKIP_REASONS, ...INJECT_REASONS]) expect(seen, r).toContain(r);
  });

  it('does not mutate its input', () => {
    const p = pod({ annotations: { 'remora.dev/inject': 'true' } });
    const before = JSON.stringify(p);
    decide(p, enabledNs, DEFAULT_MESH_CONFIG);
    expect(JSON.stringify(p)).toBe(before);
  });
});
