/**
 * Privilege widening refused through the real webhook server: an AdmissionReview over HTTPS for
 * a pod naming a foreign proxy image, running as the proxy's UID and using an annotation the
 * mesh config forbids in its namespace is denied with every reason; the same pod without them
 * is injected.
 */
import { request } from 'node:https';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../../../injector/src/config/mesh.js';
import type { NamespaceInfo } from '../../../injector/src/inject/types.js';
import { createCa, issue } from '../../../injector/src/pki/ca.js';
import { startWebhook } from '../../../injector/src/webhook/server.js';
import type { Webhook } from '../../../injector/src/webhook/server.js';

const ca = createCa({ commonName: 'test CA' }, 1);
const leaf = issue(ca, {
  subject: { commonName: 'localhost' },
  validityDays: 1,
  dnsNames: ['localhost'],
  extKeyUsage: ['serverAuth'],
});
const mesh = parseMeshConfig(`
namespacePolicies:
  - namespace: payments
    forbidAnnotations: [remora.dev/exclude-outbound-cidrs, remora.dev/inject]
`);
const namespaces = new Map<string, NamespaceInfo>([
  ['payments', { name: 'payments', labels: { 'remora.dev/inject': 'enabled' } }],
]);
let wh: Webhook;

beforeAll(async () => {
  wh = await startWebhook({
    host: '127.0.0.1',
    port: 0,
    tls: { key: leaf.keyPem, cert: leaf.certPem },
    mesh: () => mesh,
    namespaces: (n) => namespaces.get(n),
    logger: pino({ level: 'silent' }),
    ready: () => true,
  });
});
afterAll(async () => wh?.close());

function review(object: unknown): Promise<Record<string, unknown>> {
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'uid-priv',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: 'payments',
      object,
    },
  });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: wh.port,
        method: 'POST',
        path: '/inject',
        ca: ca.certPem,
        servername: 'localhost',
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          expect(res.statusCode).toBe(200);
          resolve(
            (JSON.parse(Buffer.concat(chunks).toString()) as { response: Record<string, unknown> }).response,
          );
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('webhook refuses privilege widening (AdmissionReview over HTTPS)', () => {
  it('a foreign proxy image, UID 1337 and a forbidden annotation: denied with each reason', async () => {
    const r = await review({
      metadata: {
        name: 'web',
        annotations: {
          'remora.dev/proxy-image': 'evil.example/remora-proxy:0.1.0',
          'remora.dev/exclude-outbound-cidrs': '0.0.0.0/0',
        },
      },
      spec: { containers: [{ name: 'web', image: 'nginx', securityContext: { runAsUser: 1337 } }] },
    });
    expect(r).toMatchObject({ uid: 'uid-priv', allowed: false, status: { code: 400 } });
    const message = (r.status as { message: string }).message;
    expect(message).toContain('remora: pod payments/web rejected');
    expect(message).toContain(
      'remora.dev/proxy-image: "evil.example/remora-proxy:0.1.0" is not in an allowed image repository',
    );
    expect(message).toContain('container "web" runs as UID 1337');
    expect(message).toContain(
      'remora.dev/exclude-outbound-cidrs: "0.0.0.0/0" is forbidden in namespace "payments"',
    );
    expect(r.patch).toBeUndefined();
  });

  it('an annotation opt-out where remora.dev/inject is forbidden: denied, not let through unmeshed', async () => {
    const r = await review({
      metadata: { name: 'web', annotations: { 'remora.dev/inject': 'false' } },
      spec: { containers: [{ name: 'web', image: 'nginx' }] },
    });
    expect(r).toMatchObject({ allowed: false });
    expect((r.status as { message: string }).message).toContain('remora.dev/inject: opting out');
  });

  it('the same pod with the mesh image and its own UID: injected', async () => {
    const r = await review({
      metadata: {
        name: 'web',
        annotations: { 'remora.dev/proxy-image': 'ghcr.io/remora-mesh/remora-proxy:canary' },
      },
      spec: { containers: [{ name: 'web', image: 'nginx', securityContext: { runAsUser: 1000 } }] },
    });
    expect(r).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    expect(Buffer.from(r.patch as string, 'base64').toString()).toContain(
      'ghcr.io/remora-mesh/remora-proxy:canary',
    );
  });
});
