/**
 * Keeps our CA in the caBundle of our MutatingWebhookConfiguration, through client-node.
 * Each injector replica may hold its own self-generated CA, so the bundle is a union: ours first,
 * then the others that have not expired, at most MAX_CAS. Read-modify-replace with the
 * resourceVersion makes concurrent replicas safe (a 409 retries); an unchanged bundle is not written.
 */
import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { parsePemBundle } from '../pki/x509.js';

export interface WebhookConfigApi {
  readMutatingWebhookConfiguration(p: { name: string }): Promise<V1MutatingWebhookConfiguration>;
  replaceMutatingWebhookConfiguration(p: {
    name: string;
    body: V1MutatingWebhookConfiguration;
  }): Promise<V1MutatingWebhookConfiguration>;
}

/** Bounds the bundle when replicas restart often (each restart brings a new CA). */
export const MAX_CAS = 8;
const ATTEMPTS = 5;

export function mergeBundle(existingB64: string | undefined, caPem: string, now: Date): string {
  const ours = new X509Certificate(caPem);
  const existing = existingB64 ? parsePemBundle(Buffer.from(existingB64, 'base64').toString('utf8')) : [];
  const others = existing.filter(
    (c) => c.fingerprint256 !== ours.fingerprint256 && new Date(c.validTo).getTime() > now.getTime(),
  );
  const pems = [ours, ...others].slice(0, MAX_CAS).map((c) => c.toString());
  return Buffer.from(pems.join('')).toString('base64');
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

export async function ensureCaBundle(
  api: WebhookConfigApi,
  name: string,
  caPem: string,
  now = new Date(),
): Promise<'updated' | 'unchanged'> {
  for (let attempt = 1; ; attempt++) {
    let cfg: V1MutatingWebhookConfiguration;
    try {
      cfg = await api.readMutatingWebhookConfiguration({ name });
    } catch (err) {
      if (statusOf(err) === 404) throw new Error(`MutatingWebhookConfiguration ${name} does not exist (yet)`);
      throw err;
    }
    let changed = false;
    for (const wh of cfg.webhooks ?? []) {
      const next = mergeBundle(wh.clientConfig.caBundle, caPem, now);
      if (next !== wh.clientConfig.caBundle) {
        wh.clientConfig.caBundle = next;
        changed = true;
      }
    }
    if (!changed) return 'unchanged';
    try {
      await api.replaceMutatingWebhookConfiguration({ name, body: cfg });
      return 'updated';
    } catch (err) {
      if (statusOf(err) !== 409 || attempt >= ATTEMPTS) throw err;
    }
  }
}
