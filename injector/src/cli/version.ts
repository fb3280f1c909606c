/**
 * `remora version`: the client's version, the control plane's (its Deployment's image tag) and
 * the proxies' (each meshed pod's `remora.dev/status`), read through a ClusterReader.
 */
import { INJECTOR, VERSION } from '@remora/proxy/contract';
import type { ClusterReader } from './cluster.js';
import { imageVersion, proxyVersionOf, reasonOf } from './check.js';

export interface Versions {
  client: string;
  /** The injector's version, or why it is not known. */
  controlPlane: { version: string } | { error: string };
  /** Meshed pods per proxy version, or why they could not be listed. */
  proxies: Map<string, number> | { error: string };
}

export async function clusterVersions(
  api: ClusterReader,
  namespace: string = INJECTOR.namespace,
): Promise<Versions> {
  let controlPlane: Versions['controlPlane'];
  try {
    const d = await api.deployment(namespace, INJECTOR.serviceName);
    const image = d.spec?.template.spec?.containers.find((c) => c.name === INJECTOR.serviceName)?.image;
    controlPlane = { version: imageVersion(image) ?? `unknown (image ${image ?? 'none'})` };
  } catch (err) {
    controlPlane = { error: reasonOf(err) };
  }
  let proxies: Versions['proxies'];
  try {
    proxies = new Map();
    for (const pod of await api.pods()) {
      const v = proxyVersionOf(pod);
      if (v !== undefined) proxies.set(v, (proxies.get(v) ?? 0) + 1);
    }
  } catch (err) {
    proxies = { error: reasonOf(err) };
  }
  return { client: VERSION, controlPlane, proxies };
}

export function formatVersions(v: Versions): string {
  const cp = 'version' in v.controlPlane ? v.controlPlane.version : `unavailable (${v.controlPlane.error})`;
  const px =
    v.proxies instanceof Map
      ? v.proxies.size === 0
        ? 'none meshed'
        : [...v.proxies].map(([ver, n]) => `${ver} (${n} pod${n === 1 ? '' : 's'})`).join(', ')
      : `unavailable (${v.proxies.error})`;
  return `client: ${v.client}\ncontrol plane: ${cp}\nproxies: ${px}\n`;
}
