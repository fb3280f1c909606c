/**
 * `remora upgrade --version` (docs/upgrades.md) against an in-memory cluster (fake: the real API
 * server version of this is test/k8s/upgrade-version.test.ts): the mesh config's engine.version
 * is set with its comments kept and validated first; progress is read per pod from the
 * injector's remora-engine-status map, a report counting only from the pod it names (IP and
 * service account); a rollback or a refusal exits 1 naming the pod.
 */
import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ANNOTATIONS, ENGINE_STATUS_CONFIGMAP, INJECTOR } from '@remora/proxy/contract';
import {
  followRollout,
  progressOf,
  setVersion,
  withEngineVersion,
} from '../../../injector/src/cli/upgrade-version.js';
import type { VersionCluster } from '../../../injector/src/cli/upgrade-version.js';

interface View {
  pods: V1Pod[];
  status: Record<string, string>;
}

const IPS: Record<string, string> = {
  a: '10.0.0.1',
  b: '10.0.0.2',
  c: '10.0.0.3',
  done: '10.0.0.4',
  x: '10.0.0.5',
};

/** A meshed pod and, when given, the report its own proxy made (from its IP, as its SA). */
function pod(view: View, name: string, engine?: Record<string, unknown>, ns = 'shop'): View {
  const ip = IPS[name] ?? '10.0.0.9';
  view.pods.push({
    metadata: {
      name,
      namespace: ns,
      annotations: { [ANNOTATIONS.status]: JSON.stringify({ version: '0.1.0' }) },
    },
    spec: { serviceAccountName: 'web', containers: [] },
    status: { podIP: ip },
  });
  if (engine)
    view.status[`${ns}.${name}`] = JSON.stringify({
      identity: `spiffe://cluster.local/ns/${ns}/sa/web`,
      ip,
      ...engine,
    });
  return view;
}
const view = (...rows: [string, Record<string, unknown>?, string?][]): View =>
  rows.reduce((v, [n, e, ns]) => pod(v, n, e, ns), { pods: [], status: {} } as View);

function fakeCluster(text: string, views: () => View): VersionCluster & { written: V1ConfigMap[] } {
  const written: V1ConfigMap[] = [];
  let current: View = { pods: [], status: {} };
  return {
    written,
    configMap: (_ns, name) =>
      name === ENGINE_STATUS_CONFIGMAP
        ? Promise.resolve({ data: current.status })
        : Promise.resolve({
            metadata: { name: INJECTOR.meshConfigMap, resourceVersion: '7' },
            data: { [INJECTOR.meshConfigKey]: text },
          }),
    replaceConfigMap: (_ns, _name, body) => {
      written.push(body);
      return Promise.resolve(body);
    },
    pods: () => {
      current = views();
      return Promise.resolve(current.pods);
    },
  };
}

describe('remora upgrade --version', () => {
  it('sets engine.version keeping comments and the other fields; refuses a result the injector would reject', async () => {
    const text =
      '# the mesh\nlogLevel: debug # loud\nengine:\n  version: v1\n  rollout: {maxConcurrent: 2}\n';
    expect(withEngineVersion(text, 'v2')).toBe(
      '# the mesh\nlogLevel: debug # loud\nengine:\n  version: v2\n  rollout: { maxConcurrent: 2 }\n',
    );
    expect(withEngineVersion('', 'v2')).toBe('{ engine: { version: v2 } }\n');
    expect(() => withEngineVersion('engine: {version: v1, digest: sha256:abc}\n', 'v2')).toThrow(
      /engine.digest/,
    );
    const api = fakeCluster(text, () => ({ pods: [], status: {} }));
    expect(await setVersion(api, 'v2')).toEqual({ previous: 'v1' });
    expect(api.written[0]?.metadata?.resourceVersion).toBe('7');
    expect(api.written[0]?.data?.[INJECTOR.meshConfigKey]).toContain('version: v2');
  });

  it('follows per pod until every pod is on the version; a rollback exits 1 naming the pod', async () => {
    let step = 0;
    const views: View[] = [
      view(
        ['a', { version: 'v1', desired: 'v1', state: 'current' }],
        ['b'],
        ['c', { version: 'v1', desired: 'v2', state: 'waiting-lease' }],
      ),
      view(
        ['a', { version: 'v2', desired: 'v2', state: 'current' }],
        ['b', { version: 'v1', desired: 'v2', state: 'upgrading' }],
        ['c', { version: 'v1', desired: 'v2', state: 'waiting-lease' }],
      ),
      view(
        ['a', { version: 'v2', desired: 'v2', state: 'current' }],
        ['b', { version: 'v2', desired: 'v2', state: 'current' }],
        ['c', { version: 'v2', desired: 'v2', state: 'current' }],
        ['other', { version: 'v1', state: 'current' }, 'elsewhere'],
      ),
    ];
    const out: string[] = [];
    const api = fakeCluster('', () => views[Math.min(step++, views.length - 1)] as View);
    const code = await followRollout(api, 'v2', {
      namespace: 'shop',
      timeoutMs: 60_000,
      out: (l) => out.push(l),
      sleep: () => Promise.resolve(),
    });
    expect(code).toBe(0);
    expect(out).toContain('shop/b: no engine report yet');
    expect(out).toContain('shop/b: engine v1 (upgrading)');
    expect(out.at(-1)).toBe('3 of 3 meshed pod(s) on engine v2');

    const rolled = fakeCluster('', () =>
      view(
        ['a', { version: 'v2', desired: 'v2', state: 'current' }],
        [
          'b',
          { version: 'v1', desired: 'v2', state: 'rolled-back', detail: 'generation 3 (version v2) exited' },
        ],
      ),
    );
    const lines: string[] = [];
    expect(
      await followRollout(rolled, 'v2', {
        timeoutMs: 60_000,
        out: (l) => lines.push(l),
        sleep: () => Promise.resolve(),
      }),
    ).toBe(1);
    expect(lines).toContain(
      'shop/b: FAILED on the way to v2 (rolled-back), runs v1: generation 3 (version v2) exited',
    );
    expect(lines.at(-1)).toBe('1 of 2 meshed pod(s) on engine v2, 1 rolled back or refused it');
  });

  it('times out naming the pods still pending; unmeshed and finished pods are not waited for', async () => {
    let t = 0;
    const api = fakeCluster('', () => {
      const v = view(
        ['a', { version: 'v1', desired: 'v2', state: 'waiting-lease' }],
        ['done', { version: 'v1' }],
      );
      (v.pods[1] as V1Pod).status = { phase: 'Succeeded' };
      v.pods.push({ metadata: { name: 'plain', namespace: 'shop' } });
      return v;
    });
    const out: string[] = [];
    const code = await followRollout(api, 'v2', {
      timeoutMs: 5000,
      out: (l) => out.push(l),
      now: () => t,
      sleep: (ms) => {
        t += ms;
        return Promise.resolve();
      },
    });
    expect(code).toBe(1);
    expect(out.at(-1)).toBe('timed out: 0 of 1 meshed pod(s) on engine v2; still pending: shop/a');
    const x = view(['x', { version: 'v2', state: 'refused', desired: 'v3' }]);
    expect(progressOf(x.pods, x.status, 'v3')[0]?.verdict).toBe('failed');
  });

  it('regression: a report from another pod (wrong IP) or another service account does not count', () => {
    const v = view(
      ['a', { version: 'v2', desired: 'v2', state: 'current' }],
      ['b', { version: 'v2', desired: 'v2', state: 'current' }],
    );
    v.status['shop.a'] = JSON.stringify({ ...JSON.parse(v.status['shop.a'] as string), ip: '10.0.0.66' });
    v.status['shop.b'] = JSON.stringify({
      ...JSON.parse(v.status['shop.b'] as string),
      identity: 'spiffe://cluster.local/ns/shop/sa/evil',
    });
    expect(progressOf(v.pods, v.status, 'v2').map((p) => [p.pod, p.verdict, p.version])).toEqual([
      ['shop/a', 'pending', undefined],
      ['shop/b', 'pending', undefined],
    ]);
  });
});
