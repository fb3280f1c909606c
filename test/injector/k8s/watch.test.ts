/**
 * The mesh ConfigMap watch and the namespace lister through client-node, against the fake API
 * server: list, then a held-open watch that the test feeds events into.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MeshConfigStore, watchMeshConfigMap } from '../../../injector/src/config/watch.js';
import { startNamespaceLister } from '../../../injector/src/k8s/namespaces.js';
import { FakeApiServer } from './fake-apiserver.js';

function logger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      lines.push(JSON.parse(c.toString()) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream) as Logger, lines };
}

const CM_PATH = '/api/v1/namespaces/remora-system/configmaps';

function configMap(text: string | undefined, rv: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'remora-mesh-config', namespace: 'remora-system', resourceVersion: rv, uid: 'cm-1' },
    data: text === undefined ? {} : { 'mesh.yaml': text },
  };
}

describe('mesh ConfigMap watch (fake API server)', () => {
  let api: FakeApiServer;
  let stop: (() => Promise<void>) | undefined;
  beforeEach(async () => {
    api = new FakeApiServer();
    api.route('GET', CM_PATH, (_r, res) =>
      FakeApiServer.json(res, 200, {
        apiVersion: 'v1',
        kind: 'ConfigMapList',
        metadata: { resourceVersion: '1' },
        items: [configMap('drainSeconds: 11', '1')],
      }),
    );
    api.route('GET', `${CM_PATH} watch`, (_r, res) => api.holdWatch(res));
    await api.start();
  });
  afterEach(async () => {
    await stop?.();
    await api.stop();
  });

  it('loads the key, reloads on change without restart, keeps the last good config on a bad edit', async () => {
    const { log, lines } = logger();
    const store = new MeshConfigStore(log);
    stop = await watchMeshConfigMap(
      api.kubeConfig(),
      'remora-system',
      'remora-mesh-config',
      'mesh.yaml',
      store,
      log,
    );
    await expect.poll(() => store.current().drainSeconds, { timeout: 5000 }).toBe(11);
    const list = api.requests.find((r) => r.path === CM_PATH && r.query.get('watch') !== 'true');
    expect(list?.query.get('fieldSelector')).toBe('metadata.name=remora-mesh-config');
    await expect
      .poll(() => api.requests.some((r) => r.query.get('watch') === 'true'), { timeout: 5000 })
      .toBe(true);

    api.push('MODIFIED', configMap('drainSeconds: 12', '2'));
    await expect.poll(() => store.current().drainSeconds, { timeout: 5000 }).toBe(12);

    api.push('MODIFIED', configMap('drainSeconds: twelve', '3'));
    await expect
      .poll(() => lines.some((l) => l.event === 'mesh_config_rejected'), { timeout: 5000 })
      .toBe(true);
    expect(store.current().drainSeconds).toBe(12);

    api.push('MODIFIED', configMap(undefined, '4'));
    await expect
      .poll(() => lines.some((l) => l.event === 'mesh_config_missing'), { timeout: 5000 })
      .toBe(true);
    expect(store.current().drainSeconds).toBe(12);
  });
});

describe('namespace lister (fake API server)', () => {
  it('is not synced while the list fails', async () => {
    api = new FakeApiServer();
    api.route('GET', '/api/v1/namespaces', (_r, res) =>
      FakeApiServer.json(res, 403, { kind: 'Status', code: 403 }),
    );
    await api.start();
    const l = await startNamespaceLister(api.kubeConfig(), logger().log);
    stop = l.stop;
    expect(l.synced()).toBe(false);
  });

  let api: FakeApiServer;
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    await api.stop();
  });

  it('answers from the informer cache, reads a namespace it has not seen, and fails loudly on API errors', async () => {
    api = new FakeApiServer();
    const ns = (
      name: string,
      labels: Record<string, string>,
      resourceVersion = '1',
    ): Record<string, unknown> => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels, resourceVersion, uid: name },
    });
    api.route('GET', '/api/v1/namespaces', (_r, res) =>
      FakeApiServer.json(res, 200, {
        kind: 'NamespaceList',
        apiVersion: 'v1',
        metadata: { resourceVersion: '1' },
        items: [ns('shop', { 'remora.dev/inject': 'enabled' })],
      }),
    );
    api.route('GET', '/api/v1/namespaces watch', (_r, res) => api.holdWatch(res));
    api.route('GET', '/api/v1/namespaces/fresh', (_r, res) =>
      FakeApiServer.json(res, 200, ns('fresh', { team: 'a' })),
    );
    api.route('GET', '/api/v1/namespaces/broken', (_r, res) =>
      FakeApiServer.json(res, 500, { kind: 'Status', code: 500 }),
    );
    await api.start();
    const { log } = logger();
    const l = await startNamespaceLister(api.kubeConfig(), log);
    stop = l.stop;
    expect(l.synced()).toBe(true);
    expect(l.names()).toEqual(['shop']);
    expect(await l.lister('shop')).toEqual({ name: 'shop', labels: { 'remora.dev/inject': 'enabled' } });
    expect(api.requests.some((r) => r.path === '/api/v1/namespaces/shop')).toBe(false);
    expect(await l.lister('fresh')).toEqual({ name: 'fresh', labels: { team: 'a' } });
    expect(await l.lister('gone')).toBeUndefined();
    await expect(l.lister('broken')).rejects.toThrow();
    await expect
      .poll(() => api.requests.some((r) => r.query.get('watch') === 'true'), { timeout: 5000 })
      .toBe(true);
    api.push('MODIFIED', ns('shop', {}, '2'));
    await expect.poll(async () => (await l.lister('shop'))?.labels, { timeout: 5000 }).toEqual({});
  });
});
