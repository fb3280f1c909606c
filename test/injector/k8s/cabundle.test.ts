import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_CAS, ensureCaBundle, mergeBundle } from '../../../injector/src/k8s/cabundle.js';
import { createCa } from '../../../injector/src/pki/ca.js';
import { FakeApiServer } from './fake-apiserver.js';

const PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/remora-injector';

function config(bundles: (string | undefined)[], resourceVersion = '1'): Record<string, unknown> {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'remora-injector', resourceVersion },
    webhooks: bundles.map((caBundle, i) => ({
      name: `pods-${i}.remora.dev`,
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      clientConfig: {
        service: { name: 'remora-injector', namespace: 'remora-system', path: '/inject' },
        ...(caBundle ? { caBundle } : {}),
      },
    })),
  };
}

function bundleSubjects(b64: string): string[] {
  const pem = Buffer.from(b64, 'base64').toString();
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map(
    (m) => new X509Certificate(m[0]).subject,
  );
}

describe('caBundle in the MutatingWebhookConfiguration (fake API server)', () => {
  let api: FakeApiServer;
  let stored: Record<string, unknown>;
  const ca = createCa({ commonName: 'ours' }, 10);

  beforeEach(async () => {
    api = new FakeApiServer();
    stored = config([undefined, undefined]);
    api.route('GET', PATH, (_r, res) => FakeApiServer.json(res, 200, stored));
    api.route('PUT', PATH, (r, res) => {
      stored = structuredClone(r.body) as Record<string, unknown>;
      (stored.metadata as { resourceVersion: string }).resourceVersion = '2';
      FakeApiServer.json(res, 200, stored);
    });
    await api.start();
  });
  afterEach(async () => api.stop());

  it('writes our CA into every webhook, then a second call writes nothing (idempotent)', async () => {
    const client = api.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    expect(await ensureCaBundle(client, 'remora-injector', ca.certPem)).toBe('updated');
    const puts = api.requests.filter((r) => r.method === 'PUT');
    expect(puts).toHaveLength(1);
    const body = puts[0]!.body as {
      metadata: { resourceVersion: string };
      webhooks: { clientConfig: { caBundle: string } }[];
    };
    expect(body.metadata.resourceVersion).toBe('1');
    for (const wh of body.webhooks) expect(bundleSubjects(wh.clientConfig.caBundle)).toEqual(['CN=ours']);
    expect(await ensureCaBundle(client, 'remora-injector', ca.certPem)).toBe('unchanged');
    expect(api.requests.filter((r) => r.method === 'PUT')).toHaveLength(1);
    expect(api.requests.filter((r) => r.method === 'GET')).toHaveLength(2);
  });

  it('keeps another replica CA, drops expired ones', async () => {
    const other = createCa({ commonName: 'replica-2' }, 10);
    const expired = createCa({ commonName: 'expired' }, 1, new Date(Date.now() - 3 * 86_400_000));
    stored = config([Buffer.from(other.certPem + expired.certPem).toString('base64')]);
    const client = api.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    expect(await ensureCaBundle(client, 'remora-injector', ca.certPem)).toBe('updated');
    const wh = (stored.webhooks as { clientConfig: { caBundle: string } }[])[0]!;
    expect(bundleSubjects(wh.clientConfig.caBundle)).toEqual(['CN=ours', 'CN=replica-2']);
  });

  it('retries on a 409 conflict with the fresh object', async () => {
    let conflicts = 1;
    api.route('PUT', PATH, (r, res) => {
      if (conflicts-- > 0)
        return FakeApiServer.json(res, 409, { kind: 'Status', code: 409, reason: 'Conflict' });
      stored = r.body as Record<string, unknown>;
      FakeApiServer.json(res, 200, stored);
    });
    const client = api.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    expect(await ensureCaBundle(client, 'remora-injector', ca.certPem)).toBe('updated');
    expect(api.requests.map((r) => r.method)).toEqual(['GET', 'PUT', 'GET', 'PUT']);
  });

  it('says clearly when the configuration does not exist', async () => {
    api.route('GET', PATH, (_r, res) => FakeApiServer.json(res, 404, { kind: 'Status', code: 404 }));
    const client = api.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    await expect(ensureCaBundle(client, 'remora-injector', ca.certPem)).rejects.toThrow(
      /remora-injector does not exist/,
    );
  });

  it('sends the kubeconfig credentials', async () => {
    const client = api.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    await ensureCaBundle(client, 'remora-injector', ca.certPem);
    expect(api.requests.length).toBeGreaterThan(0);
    for (const r of api.requests) expect(r.headers.authorization).toBe('Bearer test-token');
  });
});

describe('mergeBundle', () => {
  it('caps the bundle at MAX_CAS, ours first', () => {
    const many = Array.from(
      { length: MAX_CAS + 3 },
      (_, i) => createCa({ commonName: `ca-${i}` }, 5).certPem,
    ).join('');
    const ours = createCa({ commonName: 'ours' }, 5);
    const subjects = bundleSubjects(
      mergeBundle(Buffer.from(many).toString('base64'), ours.certPem, new Date()),
    );
    expect(subjects).toHaveLength(MAX_CAS);
    expect(subjects[0]).toBe('CN=ours');
  });

  it('tolerates garbage in an existing bundle', () => {
    const ours = createCa({ commonName: 'ours' }, 5);
    expect(
      bundleSubjects(mergeBundle(Buffer.from('not a pem').toString('base64'), ours.certPem, new Date())),
    ).toEqual(['CN=ours']);
  });
});
