/**
 * startInjector wired to Kubernetes through client-node, against the fake API server: namespace
 * labels decide, the mesh ConfigMap sets the image, the CA bundle lands in the webhook
 * configuration before /readyz says ready, and the served certificate verifies against it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInjectorConfig } from '../../injector/src/config.js';
import type { JsonPatchOp } from '../../injector/src/inject/jsonpatch.js';
import { startInjector } from '../../injector/src/main.js';
import type { Running } from '../../injector/src/main.js';
import { FakeApiServer } from './k8s/fake-apiserver.js';

const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/remora-injector';
let api: FakeApiServer;
let running: Running;
let dir: string;
let mwc: {
  metadata: Record<string, unknown>;
  webhooks: { name: string; clientConfig: { caBundle?: string } }[];
};

beforeAll(async () => {
  api = new FakeApiServer();
  mwc = {
    metadata: { name: 'remora-injector', resourceVersion: '1' },
    webhooks: [{ name: 'pods.remora.dev', clientConfig: {} }],
  };
  const list = (kind: string, items: unknown[]) => ({
    kind,
    apiVersion: 'v1',
    metadata: { resourceVersion: '1' },
    items,
  });
  api.route('GET', '/api/v1/namespaces', (_r, res) =>
    FakeApiServer.json(
      res,
      200,
      list('NamespaceList', [
        {
          metadata: {
            name: 'shop',
            labels: { 'remora.dev/inject': 'enabled' },
            resourceVersion: '1',
            uid: 'a',
          },
        },
        { metadata: { name: 'plain', labels: {}, resourceVersion: '1', uid: 'b' } },
      ]),
    ),
  );
  api.route('GET', '/api/v1/namespaces watch', (_r, res) => api.holdWatch(res));
  api.route('GET', '/api/v1/namespaces/remora-system/configmaps', (_r, res) =>
    FakeApiServer.json(
      res,
      200,
      list('ConfigMapList', [
        {
          metadata: {
            name: 'remora-mesh-config',
            namespace: 'remora-system',
            resourceVersion: '1',
            uid: 'c',
          },
          data: { 'mesh.yaml': 'proxyImage: reg.local/remora-proxy:test\n' },
        },
      ]),
    ),
  );
  api.route('GET', '/api/v1/namespaces/remora-system/configmaps watch', (_r, res) => api.holdWatch(res));
  api.route('GET', MWC, (_r, res) => FakeApiServer.json(res, 200, mwc));
  api.route('PUT', MWC, (r, res) => {
    mwc = structuredClone(r.body) as typeof mwc;
    FakeApiServer.json(res, 200, mwc);
  });
  await api.start();
  dir = mkdtempSync(join(tmpdir(), 'remora-main-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'fake',
          cluster: { server: `http://127.0.0.1:${api.port}`, 'insecure-skip-tls-verify': true },
        },
      ],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'u' } }],
      'current-context': 'fake',
    }),
  );
  const config = parseInjectorConfig(
    { REMORA_INJECTOR_PORT: '0', REMORA_INJECTOR_TLS_DIR: join(dir, 'no-tls') },
    ['--kubeconfig', kubeconfig, '--host', '127.0.0.1'],
  );
  const log = pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() })) as Logger;
  running = await startInjector(config, log);
});

afterAll(async () => {
  await running?.stop();
  await api?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function post(path: string, body: string | undefined, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: running.webhook.port,
        method: body ? 'POST' : 'GET',
        path,
        ca,
        servername: 'remora-injector.remora-system.svc',
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function review(namespace: string): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      operation: 'CREATE',
      namespace,
      object: { spec: { containers: [{ name: 'a', image: 'a' }] } },
    },
  });
}

describe('remora-injector against the fake API server', () => {
  it('writes its CA bundle, is ready, serves a certificate that verifies against that bundle, and injects per namespace label', async () => {
    const bundle = mwc.webhooks[0]?.clientConfig.caBundle;
    expect(bundle).toBeDefined();
    const ca = Buffer.from(bundle!, 'base64').toString();
    expect((await post('/readyz', undefined, ca)).status).toBe(200);

    const shop = JSON.parse((await post('/inject', review('shop'), ca)).text) as {
      response: { patch?: string };
    };
    const patch = JSON.parse(Buffer.from(shop.response.patch!, 'base64').toString()) as JsonPatchOp[];
    expect(JSON.stringify(patch)).toContain('reg.local/remora-proxy:test');

    const plain = JSON.parse((await post('/inject', review('plain'), ca)).text) as {
      response: Record<string, unknown>;
    };
    expect(plain.response).toEqual({ uid: 'u', allowed: true });
  });
});
