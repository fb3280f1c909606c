/**
 * Publishes the mesh trust bundle as ConfigMap `remora-trust-bundle` (key `ca.crt`) in every
 * namespace that may hold injected pods: a pod can only mount ConfigMaps of its own namespace.
 * Idempotent (no write when the content is current); replace uses the read resourceVersion.
 */
import type { V1ConfigMap } from '@kubernetes/client-node';
import { SYSTEM_NAMESPACES, TRUST_BUNDLE } from '@remora/proxy/contract';
import type { Logger } from 'pino';

export interface ConfigMapApi {
  readNamespacedConfigMap(p: { name: string; namespace: string }): Promise<V1ConfigMap>;
  createNamespacedConfigMap(p: { namespace: string; body: V1ConfigMap }): Promise<V1ConfigMap>;
  replaceNamespacedConfigMap(p: { name: string; namespace: string; body: V1ConfigMap }): Promise<V1ConfigMap>;
}

const MANAGED_BY = {
  'app.kubernetes.io/managed-by': 'remora-injector',
  'app.kubernetes.io/part-of': 'remora',
};

function status(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

export async function ensureTrustBundle(
  api: ConfigMapApi,
  namespace: string,
  pem: string,
): Promise<'created' | 'updated' | 'unchanged'> {
  const name = TRUST_BUNDLE.configMap;
  let existing: V1ConfigMap | undefined;
  try {
    existing = await api.readNamespacedConfigMap({ name, namespace });
  } catch (err) {
    if (status(err) !== 404) throw err;
  }
  if (!existing) {
    try {
      await api.createNamespacedConfigMap({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name, namespace, labels: MANAGED_BY },
          data: { [TRUST_BUNDLE.key]: pem },
        },
      });
      return 'created';
    } catch (err) {
      // Another replica created it a moment ago: the next pass compares its content.
      if (status(err) === 409) return 'unchanged';
      throw err;
    }
  }
  if (existing.data?.[TRUST_BUNDLE.key] === pem) return 'unchanged';
  await api.replaceNamespacedConfigMap({
    name,
    namespace,
    body: { ...existing, data: { ...existing.data, [TRUST_BUNDLE.key]: pem } },
  });
  return 'updated';
}

/** Whether a namespace gets the bundle: every namespace but the system ones (never injected). */
export function wantsTrustBundle(namespace: string): boolean {
  return !(SYSTEM_NAMESPACES as readonly string[]).includes(namespace);
}

/** Publishes into each of `namespaces()`, logging (not throwing) per-namespace failures. */
export async function publishTrustBundle(
  api: ConfigMapApi,
  namespaces: readonly string[],
  pem: string,
  logger: Logger,
): Promise<void> {
  for (const ns of namespaces) {
    if (!wantsTrustBundle(ns)) continue;
    try {
      const r = await ensureTrustBundle(api, ns, pem);
      if (r !== 'unchanged')
        logger.info({ event: 'trust_bundle_published', namespace: ns, result: r }, 'trust bundle published');
    } catch (err) {
      logger.warn(
        { event: 'trust_bundle_failed', namespace: ns, err },
        `cannot publish the trust bundle in ${ns}`,
      );
    }
  }
}
