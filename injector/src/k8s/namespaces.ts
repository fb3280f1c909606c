/**
 * The namespace lister of the webhook: an informer cache of namespaces (their labels decide
 * injection), with a direct read on a cache miss, e.g. a namespace created a moment ago.
 */
import type { KubeConfig, V1Namespace } from '@kubernetes/client-node';
import { CoreV1Api, makeInformer } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { NamespaceInfo } from '../inject/types.js';
import type { NamespaceLister } from '../webhook/server.js';

function info(ns: V1Namespace): NamespaceInfo {
  return { name: ns.metadata?.name ?? '', labels: ns.metadata?.labels ?? {} };
}

export async function startNamespaceLister(
  kc: KubeConfig,
  logger: Logger,
): Promise<{
  lister: NamespaceLister;
  synced: () => boolean;
  /** Names of the namespaces in the cache. */
  names: () => string[];
  /** Called with the name of each namespace the watch adds. */
  onAdd: (cb: (name: string) => void) => void;
  stop: () => Promise<void>;
}> {
  const core = kc.makeApiClient(CoreV1Api);
  // Synced means a list has succeeded (the informer's "connect" fires before the list).
  let synced = false;
  const informer = makeInformer<V1Namespace>(kc, '/api/v1/namespaces', async () => {
    const list = await core.listNamespace();
    synced = true;
    return list;
  });
  informer.on('error', (err: unknown) => {
    logger.warn({ event: 'namespace_watch_error', err }, 'namespace watch failed; retrying');
    setTimeout(() => {
      informer.start().catch(() => undefined);
    }, 5000).unref();
  });
  await informer.start();
  const lister: NamespaceLister = async (name) => {
    const cached = informer.get(name);
    if (cached) return info(cached);
    try {
      return info(await core.readNamespace({ name }));
    } catch (err) {
      if ((err as { code?: unknown }).code === 404) return undefined;
      // Not knowing the labels must not silently mean "not enabled": fail the review instead,
      // and the API server applies the webhook's failurePolicy.
      logger.warn({ event: 'namespace_lookup_failed', namespace: name, err }, 'namespace lookup failed');
      throw err;
    }
  };
  return {
    lister,
    synced: () => synced,
    names: () =>
      informer
        .list()
        .map((n) => n.metadata?.name ?? '')
        .filter((n) => n !== ''),
    onAdd: (cb) => informer.on('add', (n: V1Namespace) => cb(n.metadata?.name ?? '')),
    stop: () => informer.stop(),
  };
}
