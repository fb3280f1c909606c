/**
 * The identity CA and discovery against a real kube-apiserver: tokens from the TokenRequest API
 * (`kubectl create token SA --audience remora`) reviewed by real TokenReview; the proxy's own
 * clients (proxy/src/identity, proxy/src/discovery/stream.ts) against the injector process, which
 * runs on its ServiceAccount's token; Services, EndpointSlices and Pods created with kubectl reach
 * a proxy's subscription through the injector's informers, and a change is pushed.
 */
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamDiscovery } from '../../proxy/src/discovery/stream.js';
import { credentialsOf } from '../../proxy/src/tunnel/setup.js';
import { createCsr } from '../../proxy/src/identity/csr.js';
import { expectIdentity, Identity } from '../../proxy/src/identity/identity.js';
import type { Logger } from '../../proxy/src/log.js';
import { createNamespace, missingControlPlane, startControlPlaneWithInjector } from './harness.js';
import type { ControlPlane, InjectorProcess } from './harness.js';

const skip = missingControlPlane();
const TD = 'cluster.local';
const CA_ID = `spiffe://${TD}/ns/remora-system/sa/remora-injector`;
const uniq = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const NS = `ca-${uniq}`;
const silent = pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() })) as unknown as Logger;

let cp: ControlPlane;
let injector: InjectorProcess;
let trustBundle: string;

function csrPem(): string {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return createCsr(privateKey, publicKey).pem;
}

/** POST /v1/certificates with `token`, as a proxy does; the status and the body. */
function askCa(token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = JSON.stringify({ csr: csrPem(), token });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: injector.caPort,
        method: 'POST',
        path: '/v1/certificates',
        ca: trustBundle,
        checkServerIdentity: expectIdentity(CA_ID),
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const b64u = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * A service-account token signed with the API server's own signing key (ES256), with the claims
 * the TokenRequest API puts in one; `exp` as given. Only to make a token that is expired: the
 * TokenRequest API does not issue one shorter than 10 minutes.
 */
function signedToken(sa: { name: string; uid: string }, exp: number): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'ES256', typ: 'JWT' };
  const claims = {
    iss: 'https://kubernetes.default.svc.cluster.local',
    aud: ['remora'],
    sub: `system:serviceaccount:${NS}:${sa.name}`,
    iat: Math.min(now, exp - 60),
    nbf: Math.min(now, exp - 60),
    exp,
    jti: randomUUID(),
    'kubernetes.io': { namespace: NS, serviceaccount: { name: sa.name, uid: sa.uid } },
  };
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
  const key = createPrivateKey(readFileSync(join(cp.dir, 'sa.key')));
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64u(sig)}`;
}

async function createToken(sa: string, audience = 'remora'): Promise<string> {
  return (await cp.kubectlOk(['-n', NS, 'create', 'token', sa, '--audience', audience])).trim();
}

describe.skipIf(skip !== undefined)(
  `identity CA and discovery against kube-apiserver${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    beforeAll(async () => {
      ({ cp, injector } = await startControlPlaneWithInjector());
      await createNamespace(cp, NS, { 'remora.dev/inject': 'enabled' });
      for (const sa of ['web', 'doomed', 'other'])
        await cp.kubectlOk(['-n', NS, 'create', 'serviceaccount', sa]);
      // The trust bundle as a pod mounts it: the ConfigMap the injector publishes in its namespace.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = await cp.kubectl(['-n', NS, 'get', 'configmap', 'remora-trust-bundle', '-o', 'json']);
        if (r.code === 0) {
          const data = (JSON.parse(r.stdout) as { data: Record<string, string> }).data;
          trustBundle = Object.values(data).join('\n');
          break;
        }
        if (Date.now() > deadline)
          throw new Error(`no remora-trust-bundle in ${NS}:\n${injector.logs().slice(-3000)}`);
        await new Promise((res) => setTimeout(res, 250));
      }
    }, 240_000);

    afterAll(async () => {
      await injector?.stop();
      await cp?.stop();
    }, 60_000);

    it('a TokenRequest token (audience remora) gets a certificate for exactly that service account (the proxy client)', async () => {
      const tokenFile = join(cp.dir, 'web.token');
      writeFileSync(tokenFile, await createToken('web'));
      const id = new Identity({
        ca: { host: '127.0.0.1', port: injector.caPort },
        tokenFile,
        caBundle: trustBundle,
        caIdentity: CA_ID,
        log: silent,
      });
      try {
        const m = await id.start();
        expect(m.identity).toBe(`spiffe://${TD}/ns/${NS}/sa/web`);
      } finally {
        id.stop();
      }
    });

    it('a token for another audience is refused', async () => {
      const r = await askCa(await createToken('web', 'https://kubernetes.default.svc.cluster.local'));
      expect(r.status).toBe(401);
      expect(r.body.reason).toBe('token_refused');
      expect(r.body.certificate).toBeUndefined();
    });

    it('an expired token is refused; the same token unexpired is accepted (so expiry is what refuses it)', async () => {
      const uid = (
        await cp.kubectlOk(['-n', NS, 'get', 'sa', 'other', '-o', 'jsonpath={.metadata.uid}'])
      ).trim();
      const good = await askCa(signedToken({ name: 'other', uid }, Math.floor(Date.now() / 1000) + 600));
      expect(good.status).toBe(200);
      const expired = await askCa(signedToken({ name: 'other', uid }, Math.floor(Date.now() / 1000) - 120));
      expect(expired.status).toBe(401);
    });

    it("a deleted service account's token is refused", async () => {
      const token = await createToken('doomed');
      expect((await askCa(token)).status).toBe(200);
      await cp.kubectlOk(['-n', NS, 'delete', 'serviceaccount', 'doomed']);
      // kube-apiserver caches a successful token authentication for 10 s (its token cache sits
      // in front of TokenReview too), so the refusal comes within that, not at once.
      const deleted = Date.now();
      let status = 0;
      while (Date.now() - deleted < 30_000) {
        status = (await askCa(token)).status;
        if (status === 401) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      expect(status).toBe(401);
    });

    it('a token that is not a token at all is refused', async () => {
      expect((await askCa('x'.repeat(40))).status).toBe(401);
    });

    it('discovery: a Service, EndpointSlice and Pod created with kubectl reach a proxy subscription; a change is pushed', async () => {
      const svc = {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'shop' },
        spec: { ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
      };
      await cp.kubectlOk(['-n', NS, 'create', '-f', '-'], { input: JSON.stringify(svc) });
      const ip = (
        await cp.kubectlOk(['-n', NS, 'get', 'svc', 'shop', '-o', 'jsonpath={.spec.clusterIP}'])
      ).trim();
      // A pod injected by the real webhook: meshed, identity from its service account.
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'shop-0', labels: { app: 'shop' } },
        spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'registry.local/shop:1' }] },
      };
      await cp.kubectlOk(['-n', NS, 'create', '-f', '-'], { input: JSON.stringify(pod) });
      const slice = (addrs: string[]) => ({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'shop-1', labels: { 'kubernetes.io/service-name': 'shop' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: addrs.map((a, i) => ({
          addresses: [a],
          conditions: { ready: true },
          ...(i === 0 ? { targetRef: { kind: 'Pod', name: 'shop-0', namespace: NS } } : {}),
        })),
      });
      await cp.kubectlOk(['-n', NS, 'apply', '--server-side', '-f', '-'], {
        input: JSON.stringify(slice(['10.244.0.5'])),
      });
      // Streams are served to workload certificates only: the proxy's own Identity gets one
      // through the real TokenReview first.
      const tokenFile = join(cp.dir, 'web-discovery.token');
      writeFileSync(tokenFile, await createToken('web'));
      const id = new Identity({
        ca: { host: '127.0.0.1', port: injector.caPort },
        tokenFile,
        caBundle: trustBundle,
        caIdentity: CA_ID,
        log: silent,
      });
      await id.start();
      const d = new StreamDiscovery({
        address: { host: '127.0.0.1', port: injector.caPort },
        caBundle: trustBundle,
        serverIdentity: CA_ID,
        credentials: credentialsOf(id),
        log: silent,
        firstAnswerMs: 10_000,
      });
      const key = `${ip}:80`;
      try {
        const poll = async (want: number): Promise<unknown[]> => {
          const deadline = Date.now() + 30_000;
          for (;;) {
            const eps = d.lookup(key) ?? (await d.pending(key));
            if (eps && eps.length === want) return [...eps];
            if (Date.now() > deadline)
              throw new Error(`${key}: ${JSON.stringify(eps)} after 30 s, want ${want}`);
            await new Promise((r) => setTimeout(r, 200));
          }
        };
        const first = await poll(1);
        expect(first).toMatchObject([
          { ip: '10.244.0.5', port: 8080, meshed: true, identity: `spiffe://${TD}/ns/${NS}/sa/web` },
        ]);
        await cp.kubectlOk(['-n', NS, 'apply', '--server-side', '-f', '-'], {
          input: JSON.stringify(slice(['10.244.0.5', '10.244.0.6'])),
        });
        const second = await poll(2);
        expect(second).toMatchObject([
          { ip: '10.244.0.5', meshed: true },
          { ip: '10.244.0.6', meshed: false },
        ]);
      } finally {
        d.close();
        id.stop();
      }
    }, 90_000);
  },
);
