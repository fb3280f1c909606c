/**
 * Where the identity CA's root comes from, in order: a mounted directory (`ca.crt`, `ca.key`,
 * the operator's own root), a Kubernetes Secret shared by every injector replica, or a root
 * generated in memory (outside Kubernetes). Replicas agree on the Secret by optimistic
 * creation: read it; absent, create ours; on 409 Conflict another replica won, read theirs.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { createCa } from '../pki/ca.js';
import type { Ca } from '../pki/ca.js';
import { CaRootError } from './errors.js';

/** Ten years: the root only signs short-lived leaves; rotating it is an operator's act. */
export const ROOT_VALIDITY_DAYS = 3650;

export function caFromPem(certPem: string, keyPem: string, where: string): Ca {
  try {
    const cert = new X509Certificate(certPem);
    const privateKey = createPrivateKey(keyPem);
    const publicKey = createPublicKey(privateKey);
    if (!cert.ca) throw new Error('certificate is not a CA (basicConstraints cA=false)');
    if (!cert.checkPrivateKey(privateKey)) throw new Error('key does not match the certificate');
    if (publicKey.asymmetricKeyType !== 'ec') throw new Error('only ECDSA CA keys are supported');
    const cn = /CN=([^\n]+)/.exec(cert.subject)?.[1];
    const o = /O=([^\n]+)/.exec(cert.subject)?.[1];
    const name = {
      ...(o !== undefined ? { organization: o } : {}),
      ...(cn !== undefined ? { commonName: cn } : {}),
    };
    return { name, privateKey, publicKey, certPem, cert };
  } catch (err) {
    throw new CaRootError(`${where}: ${(err as Error).message}`);
  }
}

export function newRoot(trustDomain: string, now = new Date()): Ca {
  return createCa(
    { organization: 'remora', commonName: `remora identity CA ${trustDomain}` },
    ROOT_VALIDITY_DAYS,
    now,
  );
}

/** The mounted root in `dir`, or undefined when the directory holds none. */
export function loadRootDir(dir: string): Ca | undefined {
  const crt = join(dir, 'ca.crt');
  const key = join(dir, 'ca.key');
  if (!existsSync(crt) && !existsSync(key)) return undefined;
  if (!existsSync(crt) || !existsSync(key)) throw new CaRootError(`${dir}: needs both ca.crt and ca.key`);
  return caFromPem(readFileSync(crt, 'utf8'), readFileSync(key, 'utf8'), dir);
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const v of [e.code, e.statusCode, e.response?.statusCode]) if (typeof v === 'number') return v;
  return undefined;
}

function fromSecret(data: Record<string, string> | undefined, where: string): Ca {
  const crt = data?.['ca.crt'];
  const key = data?.['ca.key'];
  if (!crt || !key) throw new CaRootError(`${where}: Secret lacks ca.crt or ca.key`);
  return caFromPem(
    Buffer.from(crt, 'base64').toString('utf8'),
    Buffer.from(key, 'base64').toString('utf8'),
    where,
  );
}

/** Reads the shared root from the Secret, creating it if nobody has yet. */
export async function loadOrCreateRootSecret(
  kc: KubeConfig,
  namespace: string,
  name: string,
  trustDomain: string,
): Promise<{ ca: Ca; created: boolean }> {
  const api = kc.makeApiClient(CoreV1Api);
  const where = `Secret ${namespace}/${name}`;
  const read = async (): Promise<Ca | undefined> => {
    try {
      const s = await api.readNamespacedSecret({ name, namespace });
      return fromSecret(s.data, where);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      if (err instanceof CaRootError) throw err;
      throw new CaRootError(`${where}: cannot read: ${(err as Error).message}`);
    }
  };
  const existing = await read();
  if (existing) return { ca: existing, created: false };
  const ca = newRoot(trustDomain);
  const keyPem = ca.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  try {
    await api.createNamespacedSecret({
      namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'remora' } },
        type: 'Opaque',
        data: {
          'ca.crt': Buffer.from(ca.certPem).toString('base64'),
          'ca.key': Buffer.from(keyPem).toString('base64'),
        },
      },
    });
    return { ca, created: true };
  } catch (err) {
    if (statusOf(err) !== 409) throw new CaRootError(`${where}: cannot create: ${(err as Error).message}`);
    // Another replica created it between our read and our create: theirs is the root.
    const winner = await read();
    if (!winner) throw new CaRootError(`${where}: conflict on create, but the Secret is gone`);
    return { ca: winner, created: false };
  }
}
