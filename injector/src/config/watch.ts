/**
 * The live mesh config: replaced on every valid change, kept as it is (with a warning saying
 * why) on an invalid one. Sources: a file (outside Kubernetes) or the ConfigMap via a watch.
 */
import { unwatchFile, readFileSync, watchFile } from 'node:fs';
import type { KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
import { CoreV1Api, ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { MeshConfigError } from '../errors.js';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from './mesh.js';
import type { MeshConfig } from './mesh.js';

/** What the watches below feed: the mesh config store, and the policy store (injector/src/policy). */
export interface TextSink {
  update(text: string, source: string): boolean;
  missing(source: string, why: string): void;
}

export class MeshConfigStore implements TextSink {
  private config: MeshConfig;
  private lastText: string | undefined;
  loaded = false;

  constructor(
    private readonly logger: Logger,
    initial: MeshConfig = DEFAULT_MESH_CONFIG,
  ) {
    this.config = initial;
  }

  current = (): MeshConfig => this.config;

  /** Applies new text; returns false (keeping the last good config) when it is invalid. */
  update(text: string, source: string): boolean {
    if (text === this.lastText) return true;
    try {
      this.config = parseMeshConfig(text);
      this.lastText = text;
      this.loaded = true;
      this.logger.info({ event: 'mesh_config_loaded', source }, 'mesh config loaded');
      return true;
    } catch (err) {
      const errors = err instanceof MeshConfigError ? err.errors : [(err as Error).message];
      this.logger.warn(
        { event: 'mesh_config_rejected', source, errors },
        `mesh config from ${source} rejected, keeping the last good one: ${errors.join('; ')}`,
      );
      return false;
    }
  }

  /** The source is gone: keep what we have, say so. */
  missing(source: string, why: string): void {
    this.logger.warn(
      { event: 'mesh_config_missing', source },
      `mesh config ${source}: ${why}; keeping the last good one`,
    );
  }
}

/** Reads `file` now and again whenever it changes (polling: survives ConfigMap-style symlink swaps). */
export function watchMeshFile(file: string, store: TextSink, intervalMs = 1000): () => void {
  const read = (): void => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      store.missing(file, (err as Error).message);
      return;
    }
    store.update(text, file);
  };
  read();
  watchFile(file, { interval: intervalMs, persistent: false }, read);
  // watchFile takes its baseline stat asynchronously: an edit landing between the read above and
  // that baseline raises no change event, so read once more after the baseline surely exists.
  const settle = setTimeout(read, intervalMs * 2);
  settle.unref();
  return () => {
    clearTimeout(settle);
    unwatchFile(file, read);
  };
}

/** Watches one ConfigMap (list + watch by name) and feeds its `key` to the store. */
export async function watchMeshConfigMap(
  kc: KubeConfig,
  namespace: string,
  name: string,
  key: string,
  store: TextSink,
  logger: Logger,
  what = 'mesh_config',
): Promise<() => Promise<void>> {
  const core = kc.makeApiClient(CoreV1Api);
  const fieldSelector = `metadata.name=${name}`;
  const source = `configmap ${namespace}/${name} key ${key}`;
  const informer = new ListWatch<V1ConfigMap>(
    `/api/v1/namespaces/${namespace}/configmaps`,
    new Watch(kc),
    () => core.listNamespacedConfigMap({ namespace, fieldSelector }),
    false,
    undefined,
    fieldSelector,
  );
  const apply = (cm: V1ConfigMap): void => {
    const text = cm.data?.[key];
    if (text === undefined) store.missing(source, `key ${key} is absent`);
    else store.update(text, source);
  };
  informer.on('add', apply);
  informer.on('update', apply);
  informer.on('delete', () => store.missing(source, 'the ConfigMap was deleted'));
  informer.on('error', (err: unknown) => {
    logger.warn({ event: `${what}_watch_error`, err }, `${source} watch failed; retrying`);
    setTimeout(() => {
      informer.start().catch(() => undefined);
    }, 5000).unref();
  });
  await informer.start();
  return () => informer.stop();
}
