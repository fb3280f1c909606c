/**
 * reinvocationPolicy: IfNeeded against a real kube-apiserver: another mutating webhook, called
 * after Remora's (webhooks run in name order), adds a container with an HTTP readiness probe; the
 * API server calls Remora again, and the stored pod must have that probe pointed at the proxy's
 * health port like the others (deploy/base/webhook.yaml promises it). Only a real API server
 * reinvokes; no fixture shows it.
 */
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issue } from '../../injector/src/pki/ca.js';
import { createNamespace, missingControlPlane, startControlPlaneWithInjector } from './harness.js';
import type { ControlPlane, InjectorProcess } from './harness.js';

const skip = missingControlPlane();
const uniq = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const NS = `reinv-${uniq}`;

let cp: ControlPlane;
let injector: InjectorProcess;
let adder: Server;
let calls = 0;

interface Probe {
  httpGet?: { path?: string; port?: number | string };
}
interface Container {
  name: string;
  readinessProbe?: Probe;
  env?: { name: string; value?: string }[];
}

/** A second mutating webhook: adds container `added` (HTTP readiness probe on 9090) once. */
function startAdder(cert: { keyPem: string; certPem: string }): Promise<number> {
  adder = createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      calls++;
      const review = JSON.parse(body) as {
        request: { uid: string; object: { spec: { containers: Container[] } } };
      };
      const has = review.request.object.spec.containers.some((c) => c.name === 'added');
      const patch = has
        ? []
        : [
            {
              op: 'add',
              path: '/spec/containers/-',
              value: {
                name: 'added',
                image: 'registry.local/added:1',
                ports: [{ containerPort: 9090 }],
                readinessProbe: { httpGet: { path: '/ready', port: 9090 } },
              },
            },
          ];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: {
            uid: review.request.uid,
            allowed: true,
            ...(patch.length
              ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }
              : {}),
          },
        }),
      );
    });
  });
  return new Promise((resolve) =>
    adder.listen(0, '127.0.0.1', () => resolve((adder.address() as AddressInfo).port)),
  );
}

describe.skipIf(skip !== undefined)(
  `webhook reinvocation against kube-apiserver${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    beforeAll(async () => {
      ({ cp, injector } = await startControlPlaneWithInjector());
      const ca = createCa({ commonName: 'adder-ca' }, 1);
      const port = await startAdder(
        issue(ca, {
          subject: { commonName: '127.0.0.1' },
          validityDays: 1,
          ipAddresses: ['127.0.0.1'],
          extKeyUsage: ['serverAuth'],
        }),
      );
      await createNamespace(cp, NS, { 'remora.dev/inject': 'enabled', 'reinv-test': uniq });
      const mwc = {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: `zz-adder-${uniq}` },
        webhooks: [
          {
            name: 'adder.test.remora.dev',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            reinvocationPolicy: 'Never',
            clientConfig: {
              url: `https://127.0.0.1:${port}/add`,
              caBundle: Buffer.from(ca.certPem).toString('base64'),
            },
            rules: [
              {
                operations: ['CREATE'],
                apiGroups: [''],
                apiVersions: ['v1'],
                resources: ['pods'],
                scope: 'Namespaced',
              },
            ],
            namespaceSelector: { matchLabels: { 'reinv-test': uniq } },
          },
        ],
      };
      await cp.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(mwc) });
    }, 240_000);

    afterAll(async () => {
      await injector?.stop();
      await cp?.stop();
      await new Promise((r) => (adder ? adder.close(r) : r(undefined)));
    }, 60_000);

    it('a container added by a later webhook has its HTTP probe rewritten to the proxy health port on reinvocation', async () => {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'app' },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'registry.local/app:1',
              ports: [{ containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 8080 } },
            },
          ],
        },
      };
      const out = await cp.kubectlOk(['-n', NS, 'create', '-o', 'json', '-f', '-'], {
        input: JSON.stringify(pod),
      });
      const stored = JSON.parse(out) as { spec: { containers: Container[]; initContainers?: Container[] } };
      expect(calls).toBeGreaterThan(0);
      const byName = new Map(stored.spec.containers.map((c) => [c.name, c]));
      expect([...byName.keys()]).toContain('added');
      // The app's own probe: rewritten on the first call.
      expect(byName.get('app')?.readinessProbe?.httpGet).toMatchObject({
        port: 15020,
        path: '/app-health/app/readyz',
      });
      // The added one: only a reinvocation can rewrite it.
      expect(byName.get('added')?.readinessProbe?.httpGet).toMatchObject({
        port: 15020,
        path: '/app-health/added/readyz',
      });
      // ...and the proxy knows the original, to run it from inside the pod.
      const proxy = [...(stored.spec.initContainers ?? []), ...stored.spec.containers].find(
        (c) => c.name === 'remora-proxy',
      );
      const probes = JSON.parse(
        proxy?.env?.find((e) => e.name === 'REMORA_APP_PROBES')?.value ?? '{}',
      ) as Record<string, { port: number; path: string }>;
      expect(probes['/app-health/added/readyz']).toMatchObject({ kind: 'http', port: 9090, path: '/ready' });
      expect(probes['/app-health/app/readyz']).toMatchObject({ kind: 'http', port: 8080, path: '/healthz' });
    });
  },
);
