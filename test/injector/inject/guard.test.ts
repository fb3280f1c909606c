/**
 * The pod author cannot widen privileges through the pod spec or annotations: a proxy image
 * from any registry ran as root with NET_ADMIN in remora-init; an app container as UID/GID
 * 1337 escaped capture; an app mounting remora-run read the admin token; annotations that
 * switch capture or strict mTLS off could not be forbidden per namespace. Table tests through
 * the pure evaluate(), the one function the webhook and `remora inject` call.
 */
import { describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../../../injector/src/config/mesh.js';
import { evaluate } from '../../../injector/src/inject/evaluate.js';
import { widens } from '../../../injector/src/inject/guard.js';
import type { Container, NamespaceInfo, PodLike } from '../../../injector/src/inject/types.js';

const SHOP: NamespaceInfo = { name: 'shop', labels: { 'remora.dev/inject': 'enabled' } };
const PAY: NamespaceInfo = { name: 'payments', labels: { 'remora.dev/inject': 'enabled' } };
const OFF: NamespaceInfo = { name: 'plain', labels: {} };
const MESH = parseMeshConfig('');
const STRICT_PAY = parseMeshConfig(`
namespacePolicies:
  - namespace: payments
    forbidAnnotations:
      - remora.dev/exclude-inbound-ports
      - remora.dev/exclude-outbound-ports
      - remora.dev/exclude-outbound-cidrs
      - remora.dev/include-inbound-ports
      - remora.dev/include-outbound-cidrs
      - remora.dev/mtls-mode
      - remora.dev/failure-mode
      - remora.dev/inject
`);

function pod(o: {
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  podSecurity?: Record<string, unknown>;
  container?: Partial<Container>;
  init?: Partial<Container>;
}): PodLike {
  return {
    metadata: {
      name: 'web',
      ...(o.annotations ? { annotations: o.annotations } : {}),
      ...(o.labels ? { labels: o.labels } : {}),
    },
    spec: {
      ...(o.podSecurity ? { securityContext: o.podSecurity } : {}),
      ...(o.init ? { initContainers: [{ name: 'migrate', image: 'm', ...o.init }] } : {}),
      containers: [{ name: 'web', image: 'nginx', ...o.container }],
    },
  };
}

const errorsOf = (p: PodLike, ns = SHOP, mesh = MESH): string[] => {
  const r = evaluate(p, ns, mesh);
  return r.result === 'rejected' ? r.errors : [];
};

describe('proxy-image outside the allow-list', () => {
  const cases: [string, string, boolean][] = [
    ['the mesh own repository, another tag', 'ghcr.io/remora-mesh/remora-proxy:canary', true],
    ['the mesh own repository by digest', `ghcr.io/remora-mesh/remora-proxy@sha256:${'b'.repeat(64)}`, true],
    ['another registry', 'evil.example/remora-proxy:0.1.0', false],
    ['docker hub, no registry', 'remora-proxy:0.1.0', false],
    ['a look-alike repository sharing the prefix', 'ghcr.io/remora-mesh/remora-proxy-evil:1', false],
    ['a sub-path of the repository', 'ghcr.io/remora-mesh/remora-proxy/x:1', false],
    ['another registry port', 'ghcr.io:444/remora-mesh/remora-proxy:1', false],
  ];
  it.each(cases)('%s (%s): allowed=%s', (_n, image, ok) => {
    const errors = errorsOf(pod({ annotations: { 'remora.dev/proxy-image': image } }));
    if (ok) expect(errors).toEqual([]);
    else
      expect(errors).toEqual([
        `remora.dev/proxy-image: ${JSON.stringify(image)} is not in an allowed image repository (mesh config allowedProxyImages: ghcr.io/remora-mesh/remora-proxy)`,
      ]);
  });

  it('a prefix entry ending in "/" allows every repository under it, not a look-alike', () => {
    const mesh = parseMeshConfig('allowedProxyImages: [ghcr.io/remora-mesh/, mirror.local/remora-proxy]');
    expect(
      errorsOf(pod({ annotations: { 'remora.dev/proxy-image': 'ghcr.io/remora-mesh/other:1' } }), SHOP, mesh),
    ).toEqual([]);
    expect(
      errorsOf(pod({ annotations: { 'remora.dev/proxy-image': 'mirror.local/remora-proxy:1' } }), SHOP, mesh),
    ).toEqual([]);
    expect(
      errorsOf(pod({ annotations: { 'remora.dev/proxy-image': 'ghcr.io/remora-meshx/p:1' } }), SHOP, mesh),
    ).toHaveLength(1);
  });

  it('an invalid image reference is reported once, by the annotation parser', () => {
    expect(errorsOf(pod({ annotations: { 'remora.dev/proxy-image': 'Not An Image' } }))).toEqual([
      expect.stringContaining('remora.dev/proxy-image: invalid value "Not An Image"'),
    ]);
  });
});

describe('app containers as the proxy UID/GID or mounting its volumes', () => {
  const cases: [string, Parameters<typeof pod>[0], string[]][] = [
    [
      'container runAsUser 1337',
      { container: { securityContext: { runAsUser: 1337 } } },
      ['container "web" runs as UID 1337 (securityContext.runAsUser)'],
    ],
    [
      'container runAsGroup 1337',
      { container: { securityContext: { runAsGroup: 1337 } } },
      ['container "web" runs as GID 1337 (securityContext.runAsGroup)'],
    ],
    [
      'pod-level runAsUser 1337, inherited',
      { podSecurity: { runAsUser: 1337 } },
      ['container "web" runs as UID 1337 (pod securityContext.runAsUser)'],
    ],
    [
      'pod-level runAsGroup 1337, inherited by an init container too',
      { podSecurity: { runAsGroup: 1337 }, init: {} },
      [
        'init container "migrate" runs as GID 1337 (pod securityContext.runAsGroup)',
        'container "web" runs as GID 1337 (pod securityContext.runAsGroup)',
      ],
    ],
    [
      'init container runAsUser 1337',
      { init: { securityContext: { runAsUser: 1337 } } },
      ['init container "migrate" runs as UID 1337'],
    ],
    [
      'mounts remora-run',
      { container: { volumeMounts: [{ name: 'remora-run', mountPath: '/x' }] } },
      ['container "web" mounts "remora-run", a volume only remora-proxy may mount'],
    ],
    [
      'mounts remora-token',
      { init: { volumeMounts: [{ name: 'remora-token', mountPath: '/t' }] } },
      ['init container "migrate" mounts "remora-token"'],
    ],
    [
      // regression guard: an app writing into the bundle root could plant an engine the proxy runs
      'mounts remora-engines',
      { container: { volumeMounts: [{ name: 'remora-engines', mountPath: '/e' }] } },
      ['container "web" mounts "remora-engines", a volume only remora-proxy may mount'],
    ],
  ];
  it.each(cases)('%s: rejected', (_n, spec, expected) => {
    const errors = errorsOf(pod(spec));
    expect(errors).toHaveLength(expected.length);
    expected.forEach((e, i) => expect(errors[i]).toContain(e));
  });

  const fine: [string, Parameters<typeof pod>[0]][] = [
    ['another UID and GID', { container: { securityContext: { runAsUser: 1000, runAsGroup: 1000 } } }],
    [
      'pod-level 1337 overridden by every container',
      {
        podSecurity: { runAsUser: 1337, runAsGroup: 1337 },
        container: { securityContext: { runAsUser: 1000, runAsGroup: 1000 } },
      },
    ],
    [
      'fsGroup 1337 (a supplementary group: the capture rules match the primary GID only)',
      { podSecurity: { fsGroup: 1337 } },
    ],
    [
      'mounting the trust bundle',
      { container: { volumeMounts: [{ name: 'remora-trust-bundle', mountPath: '/trust' }] } },
    ],
  ];
  it.each(fine)('%s: injected', (_n, spec) => {
    expect(evaluate(pod(spec), SHOP, MESH).result).toBe('injected');
  });

  it('a pod the mesh leaves alone is not rejected for running as 1337', () => {
    expect(evaluate(pod({ podSecurity: { runAsUser: 1337 } }), OFF, MESH)).toEqual({
      result: 'skipped',
      reason: 'namespace_not_enabled',
    });
  });
});

describe('annotations forbidden per namespace by the mesh config', () => {
  const widening: [string, string][] = [
    ['remora.dev/exclude-inbound-ports', '22'],
    ['remora.dev/exclude-outbound-ports', '5432'],
    ['remora.dev/exclude-outbound-cidrs', '10.0.0.0/8'],
    ['remora.dev/include-inbound-ports', '8080'],
    ['remora.dev/include-outbound-cidrs', '10.96.0.0/12'],
    ['remora.dev/mtls-mode', 'permissive'],
    ['remora.dev/failure-mode', 'degrade'],
  ];
  it.each(widening)('%s=%s: rejected in the namespace that forbids it, naming it', (key, value) => {
    expect(errorsOf(pod({ annotations: { [key]: value } }), PAY, STRICT_PAY)).toEqual([
      `${key}: ${JSON.stringify(value)} is forbidden in namespace "payments" by the mesh config (namespacePolicies): it switches capture or strict mTLS off`,
    ]);
  });
  it.each(widening)('%s=%s: allowed in another namespace', (key, value) => {
    expect(evaluate(pod({ annotations: { [key]: value } }), SHOP, STRICT_PAY).result).toBe('injected');
  });

  const keeping: [string, string][] = [
    ['remora.dev/mtls-mode', 'strict'],
    ['remora.dev/failure-mode', 'fail-closed'],
    ['remora.dev/failure-mode', 'restart'],
    ['remora.dev/include-inbound-ports', '*'],
    ['remora.dev/include-outbound-cidrs', '*'],
    ['remora.dev/exclude-inbound-ports', ''],
    ['remora.dev/inject', 'true'],
  ];
  it.each(keeping)('%s=%s keeps capture and mTLS: allowed even where forbidden', (key, value) => {
    expect(evaluate(pod({ annotations: { [key]: value } }), PAY, STRICT_PAY).result).toBe('injected');
  });

  it('"*" applies to every namespace; an annotation not on the list stays allowed', () => {
    const mesh = parseMeshConfig(
      'namespacePolicies: [{namespace: "*", forbidAnnotations: [remora.dev/mtls-mode]}]',
    );
    expect(errorsOf(pod({ annotations: { 'remora.dev/mtls-mode': 'permissive' } }), SHOP, mesh)).toHaveLength(
      1,
    );
    expect(
      evaluate(pod({ annotations: { 'remora.dev/exclude-inbound-ports': '22' } }), SHOP, mesh).result,
    ).toBe('injected');
  });

  const optOuts: [string, Parameters<typeof pod>[0], string][] = [
    ['annotation', { annotations: { 'remora.dev/inject': 'false' } }, 'opted_out'],
    ['label', { labels: { 'remora.dev/inject': 'disabled' } }, 'opted_out'],
    ['Istio opt-out', { annotations: { 'sidecar.istio.io/inject': 'false' } }, 'opted_out_istio'],
    ['Linkerd opt-out', { annotations: { 'linkerd.io/inject': 'disabled' } }, 'opted_out_linkerd'],
  ];
  it.each(optOuts)(
    'opting out by %s where remora.dev/inject is forbidden: rejected, not skipped',
    (_n, spec, reason) => {
      const errors = errorsOf(pod(spec), PAY, STRICT_PAY);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`remora.dev/inject: opting out (${reason}`);
      expect(errors[0]).toContain('forbidden in namespace "payments"');
      // Elsewhere the opt-out is honoured as before.
      expect(evaluate(pod(spec), SHOP, STRICT_PAY)).toEqual({ result: 'skipped', reason });
    },
  );

  it('a namespace that does not inject is not the mesh config’s to police', () => {
    const ns: NamespaceInfo = { name: 'payments', labels: {} };
    expect(evaluate(pod({ annotations: { 'remora.dev/inject': 'false' } }), ns, STRICT_PAY).result).toBe(
      'skipped',
    );
  });

  it('widens: an annotation the guard has no rule for widens whenever present', () => {
    expect(widens('remora.dev/some-future-switch', 'anything', MESH)).toBe(true);
    expect(widens('remora.dev/proxy-image', MESH.proxyImage, MESH)).toBe(false);
  });
});
