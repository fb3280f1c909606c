/**
 * The CA's Kubernetes edges against a small fake API server on loopback (no real API server
 * here): the root Secret created once under concurrent replicas (optimistic create, 409 → read
 * the winner's), a mounted root preferred, and TokenReview with audience `remora`.
 */
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeKubeConfig } from '../fake-api.js';
import { INJECTOR, TOKEN_AUDIENCE } from '../../../proxy/src/contract.js';
import { loadOrCreateRootSecret, loadRootDir, newRoot } from '../../../injector/src/ca/root.js';
import { kubeTokenReviewer, loadStaticTokens } from '../../../injector/src/ca/tokens.js';
import { CaRootError, TokenRefusedError } from '../../../injector/src/ca/errors.js';

const NS = 'remora-system';
let secret: Record<string, unknown> | undefined;
let creates = 0;
const reviews: unknown[] = [];
let server: http.Server;
let kc: KubeConfig;

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length
        ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>)
        : {};
      const url = req.url ?? '';
      if (
        req.method === 'GET' &&
        url.startsWith(`/api/v1/namespaces/${NS}/secrets/${INJECTOR.caSecretName}`)
      ) {
        // Slow reads let two replicas both see "absent" and race on create.
        setTimeout(() => {
          if (secret) json(res, 200, secret);
          else json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
        }, 100);
        return;
      }
      if (req.method === 'POST' && url.startsWith(`/api/v1/namespaces/${NS}/secrets`)) {
        creates += 1;
        if (secret) json(res, 409, { kind: 'Status', code: 409, reason: 'AlreadyExists' });
        else {
          secret = body;
          json(res, 201, body);
        }
        return;
      }
      if (req.method === 'POST' && url.startsWith('/apis/authentication.k8s.io/v1/tokenreviews')) {
        reviews.push(body);
        const spec = body.spec as { token: string; audiences: string[] };
        const status =
          spec.token === 'good-token'
            ? {
                authenticated: true,
                audiences: spec.audiences,
                user: { username: 'system:serviceaccount:shop:web' },
              }
            : spec.token === 'user-token'
              ? { authenticated: true, audiences: spec.audiences, user: { username: 'alice' } }
              : { authenticated: false, error: 'invalid bearer token' };
        json(res, 201, { ...body, status });
        return;
      }
      json(res, 404, { kind: 'Status', code: 404 });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kc = fakeKubeConfig(server);
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('CA root in a Secret (fake API server)', () => {
  it('concurrent replicas agree on one root: one creates, the other reads the winner after 409', async () => {
    const [a, b] = await Promise.all([
      loadOrCreateRootSecret(kc, NS, INJECTOR.caSecretName, 'mesh.test'),
      loadOrCreateRootSecret(kc, NS, INJECTOR.caSecretName, 'mesh.test'),
    ]);
    expect(creates).toBe(2);
    expect(a.ca.certPem).toBe(b.ca.certPem);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    const c = await loadOrCreateRootSecret(kc, NS, INJECTOR.caSecretName, 'mesh.test');
    expect(c.created).toBe(false);
    expect(c.ca.certPem).toBe(a.ca.certPem);
    expect(creates).toBe(2);
  });

  it('a Secret without a key is a clear error, not a new root', async () => {
    secret = { metadata: { name: INJECTOR.caSecretName }, data: { 'ca.crt': 'AAAA' } };
    await expect(loadOrCreateRootSecret(kc, NS, INJECTOR.caSecretName, 'mesh.test')).rejects.toThrow(
      /lacks ca.crt or ca.key/,
    );
  });
});

describe('mounted root', () => {
  it('loads ca.crt/ca.key from a directory, refuses a half-mounted or mismatched one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-ca-'));
    try {
      expect(loadRootDir(dir)).toBeUndefined();
      const root = newRoot('mesh.test');
      writeFileSync(join(dir, 'ca.crt'), root.certPem);
      expect(() => loadRootDir(dir)).toThrow(/needs both ca.crt and ca.key/);
      writeFileSync(
        join(dir, 'ca.key'),
        newRoot('other').privateKey.export({ type: 'pkcs8', format: 'pem' }),
      );
      expect(() => loadRootDir(dir)).toThrow(CaRootError);
      writeFileSync(join(dir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      expect(loadRootDir(dir)?.certPem).toBe(root.certPem);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TokenReview (fake API server)', () => {
  it('asks with audience remora and takes namespace and service account from the review', async () => {
    const review = kubeTokenReviewer(kc);
    await expect(review('good-token')).resolves.toEqual({ namespace: 'shop', serviceAccount: 'web' });
    expect(reviews.at(-1)).toMatchObject({ spec: { token: 'good-token', audiences: [TOKEN_AUDIENCE] } });
  });
  it('refuses an unauthenticated token and a token that is not a service account', async () => {
    const review = kubeTokenReviewer(kc);
    await expect(review('bad-token')).rejects.toThrow(TokenRefusedError);
    await expect(review('user-token')).rejects.toThrow(/not a service account/);
  });
});

describe('static token file', () => {
  it('reads token → ns/sa and lists every bad entry', () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-tokens-'));
    try {
      const f = join(dir, 'tokens.json');
      writeFileSync(f, JSON.stringify({ aaaaaaaaaaaaaaaaaaaa: 'shop/web' }));
      expect(loadStaticTokens(f).get('aaaaaaaaaaaaaaaaaaaa')).toEqual({
        namespace: 'shop',
        serviceAccount: 'web',
      });
      writeFileSync(
        f,
        JSON.stringify({ short: 'shop/web', bbbbbbbbbbbbbbbbbbbb: 'no-slash', cccccccccccccccccccc: 3 }),
      );
      expect(() => loadStaticTokens(f)).toThrow(/shorter than 16.*namespace\/serviceaccount.*not a string/);
      writeFileSync(f, '[');
      expect(() => loadStaticTokens(f)).toThrow(/cannot read a JSON object/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
