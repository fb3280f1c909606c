/** workloadName: the REMORA_WORKLOAD / OTEL_SERVICE_NAME of an injected pod (docs/injector.md). */
import { describe, expect, it } from 'vitest';
import { workloadName } from '../../../injector/src/inject/workload.js';
import type { PodLike } from '../../../injector/src/inject/types.js';

const spec = { containers: [{ name: 'app' }] };
const p = (metadata: Record<string, unknown> | undefined): PodLike =>
  (metadata === undefined ? { spec } : { metadata, spec }) as PodLike;
const rs = (name: string, controller = true): Record<string, unknown> => ({
  apiVersion: 'apps/v1',
  kind: 'ReplicaSet',
  name,
  uid: 'u',
  controller,
});

describe('workloadName', () => {
  it('prefers app.kubernetes.io/name, then app, over any owner or name', () => {
    const meta = {
      name: 'web-7d4b9c8f6d-x2x9q',
      generateName: 'web-7d4b9c8f6d-',
      labels: { 'app.kubernetes.io/name': 'shop-web', app: 'web', 'pod-template-hash': '7d4b9c8f6d' },
      ownerReferences: [rs('web-7d4b9c8f6d')],
    };
    expect(workloadName(p(meta))).toBe('shop-web');
    expect(workloadName(p({ ...meta, labels: { app: 'web-app' } }))).toBe('web-app');
  });

  it('a Deployment pod at admission (no name yet): the ReplicaSet owner without its pod-template-hash', () => {
    expect(
      workloadName(
        p({
          generateName: 'checkout-5f8d9c7b4-',
          labels: { 'pod-template-hash': '5f8d9c7b4' },
          ownerReferences: [rs('checkout-5f8d9c7b4')],
        }),
      ),
    ).toBe('checkout');
  });

  it('a bare ReplicaSet (no pod-template-hash label) keeps its name; a hash that is not its suffix is not cut', () => {
    expect(workloadName(p({ generateName: 'cache-', ownerReferences: [rs('cache')] }))).toBe('cache');
    expect(
      workloadName(p({ labels: { 'pod-template-hash': 'zzz' }, ownerReferences: [rs('cache-abc')] })),
    ).toBe('cache-abc');
  });

  it('the controller reference wins over other owners', () => {
    const other = { kind: 'Foo', name: 'not-me', apiVersion: 'x/v1', uid: 'v' };
    expect(workloadName(p({ ownerReferences: [other, { ...rs('api'), kind: 'StatefulSet' }] }))).toBe('api');
    expect(workloadName(p({ ownerReferences: [other] }))).toBe('not-me');
  });

  it('StatefulSet and DaemonSet pods: the owner name as is (not the ordinal pod name)', () => {
    const ref = (kind: string, name: string): Record<string, unknown> => ({ ...rs(name), kind });
    expect(workloadName(p({ name: 'db-0', ownerReferences: [ref('StatefulSet', 'db')] }))).toBe('db');
    expect(workloadName(p({ generateName: 'agent-', ownerReferences: [ref('DaemonSet', 'agent')] }))).toBe(
      'agent',
    );
  });

  it('Jobs: a CronJob-made Job loses its schedule suffix; a plain Job keeps its name', () => {
    const job = (name: string): Record<string, unknown> => ({ ...rs(name), kind: 'Job' });
    expect(
      workloadName(p({ generateName: 'report-29391840-', ownerReferences: [job('report-29391840')] })),
    ).toBe('report');
    expect(workloadName(p({ generateName: 'migrate-2-', ownerReferences: [job('migrate-2')] }))).toBe(
      'migrate-2',
    );
  });

  it('without owner references: generateName trimmed (and its hash cut), else the pod name, else nothing', () => {
    expect(
      workloadName(p({ generateName: 'web-7d4b9c8f6d-', labels: { 'pod-template-hash': '7d4b9c8f6d' } })),
    ).toBe('web');
    expect(workloadName(p({ generateName: 'batch-' }))).toBe('batch');
    expect(workloadName(p({ name: 'debug-pod' }))).toBe('debug-pod');
    expect(workloadName(p({}))).toBeUndefined();
    expect(workloadName(p(undefined))).toBeUndefined();
  });

  it('hostile metadata (bad input) is ignored field by field, never thrown on', () => {
    expect(workloadName(p({ name: 'web', ownerReferences: 'nope' }))).toBe('web');
    expect(workloadName(p({ name: 'web', ownerReferences: [null, 7, { kind: 'ReplicaSet' }] }))).toBe('web');
    expect(workloadName(p({ name: 'web', labels: { app: '   ' } }))).toBe('web');
    expect(workloadName(p({ name: 'x'.repeat(300), generateName: 42 }))).toBeUndefined();
  });
});
