/**
 * Where the injector's policy document comes from: `REMORA_POLICY_FILE` (outside Kubernetes;
 * read now, an invalid file stops the start like any bad setting), else the ConfigMap
 * `remora-policy` key `policy.yaml` in the injector's namespace (`REMORA_POLICY_CONFIGMAP`),
 * watched like the mesh ConfigMap; outside Kubernetes without a file, no policy is served.
 */
import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { INJECTOR_ENV, POLICY_CONFIGMAP } from '@remora/proxy/contract';
import type { Logger } from 'pino';
import { watchMeshConfigMap, watchMeshFile } from '../config/watch.js';
import { InjectorConfigError } from '../errors.js';
import type { PolicyStore } from './store.js';

export interface PolicySourceOptions {
  readonly file: string | undefined;
  readonly configMap: { readonly namespace: string; readonly name: string };
  readonly kc: KubeConfig | undefined;
  readonly store: PolicyStore;
  readonly logger: Logger;
  readonly pollMs?: number;
}

/** Starts following the source; returns the function that stops it. */
export async function startPolicySource(o: PolicySourceOptions): Promise<() => void | Promise<void>> {
  if (o.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.file, 'utf8');
    } catch (err) {
      throw new InjectorConfigError([
        `${INJECTOR_ENV.policyFile}: cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      ]);
    }
    if (!o.store.update(text, o.file))
      throw new InjectorConfigError(
        o.store.lastErrors.map((e) => `${INJECTOR_ENV.policyFile}: ${o.file}: ${e}`),
      );
    return watchMeshFile(o.file, o.store, o.pollMs);
  }
  if (o.kc === undefined) return () => undefined;
  const { namespace, name } = o.configMap;
  return watchMeshConfigMap(o.kc, namespace, name, POLICY_CONFIGMAP.key, o.store, o.logger, 'policy');
}
