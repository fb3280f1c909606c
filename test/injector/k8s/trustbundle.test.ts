import { CoreV1Api } from '@kubernetes/client-node';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureTrustBundle, publishTrustBundle } from '../../../injector/src/k8s/trustbundle.js';
import { FakeApiServer } from './fake-apiserver.js';

const path = (ns: string): string => `/api/v1/namespaces/${ns}/configmaps/remora-trust-bundle`;

describe('trust bundle ConfigMap (fake API server)', () => {
  let api: FakeApiServer;
  const stored = new Map<string, Record<string, unknown>>();
  beforeEach(async () => {
    api = new FakeApiServer();
    stored.clear();
    for (const ns of ['shop', 'pay', 'broken']) {
      api.route('GET', path(ns), (_r, res) => {
        if (ns === 'broken') return FakeApiServer.json(res, 403, { kind: 'Status', code: 403 });
        const cm = stored.get(ns);
        if (cm) FakeApiServer.json(res, 200, cm);
        else FakeApiServer.json(res, 404, { kind: 'Status', code: 404 });
      });
      api.route('POST', `/api/v1/namespaces/${ns}/configmaps`, (r, res) => {
        const cm = { ...(r.body as Record<string, unknown>) };
        (cm.metadata as Record<string, unknown>).resourceVersion = '1';
        stored.set(ns, cm);
        FakeApiServer.json(res, 201, cm);
      });
      api.route('PUT', path(ns), (r, res) => {
        stored.set(ns, r.body as Record<string, unknown>);
        FakeApiServer.json(res, 200, r.body);
      });
    }
    await api.start();
  });
  afterEach(async () => api.stop());

  it('creates, leaves a current one alone, and updates a stale one', async () => {
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    expect(await ensureTrustBundle(core, 'shop', 'PEM-1')).toBe('created');
    expect(stored.get('shop')).toMatchObject({
      metadata: { name: 'remora-trust-bundle', namespace: 'shop' },
      data: { 'ca.crt': 'PEM-1' },
    });
    expect(await ensureTrustBundle(core, 'shop', 'PEM-1')).toBe('unchanged');
    expect(api.requests.filter((r) => r.method !== 'GET')).toHaveLength(1);
    expect(await ensureTrustBundle(core, 'shop', 'PEM-2')).toBe('updated');
    const put = api.requests.find((r) => r.method === 'PUT');
    expect(put?.body).toMatchObject({ metadata: { resourceVersion: '1' }, data: { 'ca.crt': 'PEM-2' } });
  });

  it('publishes to every namespace but the system ones, and a failure in one does not stop the others', async () => {
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(c: Buffer, _e, cb) {
          lines.push(JSON.parse(c.toString()) as Record<string, unknown>);
          cb();
        },
      }),
    ) as Logger;
    await publishTrustBundle(core, ['kube-system', 'broken', 'shop', 'pay'], 'PEM', log);
    expect([...stored.keys()].sort()).toEqual(['pay', 'shop']);
    expect(api.requests.some((r) => r.path.includes('kube-system'))).toBe(false);
    expect(lines.find((l) => l.event === 'trust_bundle_failed')?.namespace).toBe('broken');
  });
});
