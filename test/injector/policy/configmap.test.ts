/**
 * The policy ConfigMap watch through client-node, against the fake API server (no Kubernetes
 * API server here): the key is loaded, an edit is served without a restart, an invalid edit
 * and a removed key keep the last good document.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { POLICY_CONFIGMAP } from '@remora/proxy/contract';
import { startPolicySource } from '../../../injector/src/policy/source.js';
import { PolicyStore } from '../../../injector/src/policy/store.js';
import { policyVersion } from '../../../proxy/src/policy/document.js';
import { INVALID, denyAll, denyPaths } from '../../proxy/policy/distribution-helpers.js';
import { FakeApiServer } from '../k8s/fake-apiserver.js';
import { pinoLines } from './helpers.js';

const CM_PATH = '/api/v1/namespaces/remora-system/configmaps';

function configMap(text: string | undefined, rv: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: POLICY_CONFIGMAP.name, namespace: 'remora-system', resourceVersion: rv, uid: 'cm-p' },
    data: text === undefined ? {} : { [POLICY_CONFIGMAP.key]: text },
  };
}

describe('policy ConfigMap watch (fake API server)', () => {
  let api: FakeApiServer;
  let stop: (() => void | Promise<void>) | undefined;
  const first = denyPaths(8080, ['/admin']);
  beforeEach(async () => {
    api = new FakeApiServer();
    api.route('GET', CM_PATH, (_r, res) =>
      FakeApiServer.json(res, 200, {
        apiVersion: 'v1',
        kind: 'ConfigMapList',
        metadata: { resourceVersion: '1' },
        items: [configMap(first, '1')],
      }),
    );
    api.route('GET', `${CM_PATH} watch`, (_r, res) => api.holdWatch(res));
    await api.start();
  });
  afterEach(async () => {
    await stop?.();
    await api.stop();
  });

  it('serves the key, follows edits, keeps the last good document on a bad edit or a removed key', async () => {
    const { log, lines } = pinoLines();
    const store = new PolicyStore(log);
    stop = await startPolicySource({
      file: undefined,
      configMap: { namespace: 'remora-system', name: POLICY_CONFIGMAP.name },
      kc: api.kubeConfig(),
      store,
      logger: log,
    });
    await expect.poll(() => store.current?.version, { timeout: 5000 }).toBe(policyVersion(first));
    const list = api.requests.find((r) => r.path === CM_PATH && r.query.get('watch') !== 'true');
    expect(list?.query.get('fieldSelector')).toBe(`metadata.name=${POLICY_CONFIGMAP.name}`);
    await expect
      .poll(() => api.requests.some((r) => r.query.get('watch') === 'true'), { timeout: 5000 })
      .toBe(true);

    const second = denyAll(8080);
    api.push('MODIFIED', configMap(second, '2'));
    await expect.poll(() => store.current?.version, { timeout: 5000 }).toBe(policyVersion(second));

    api.push('MODIFIED', configMap(INVALID, '3'));
    await expect.poll(() => lines.some((l) => l.event === 'policy_rejected'), { timeout: 5000 }).toBe(true);
    expect(store.current?.version).toBe(policyVersion(second));
    expect(store.lastErrors.join('\n')).toContain('10.0.0.0/33');

    api.push('MODIFIED', configMap(undefined, '4'));
    await expect.poll(() => lines.some((l) => l.event === 'policy_missing'), { timeout: 5000 }).toBe(true);
    expect(store.current?.version).toBe(policyVersion(second));
  });
});
