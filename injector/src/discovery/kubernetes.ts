/**
 * Kubernetes discovery source: informers on Services, EndpointSlices and Pods; the map
 * ClusterIP:port → endpoints is a pure function of the three caches (`buildServices`), rebuilt
 * after a burst of changes and handed to the store, which announces only what changed.
 *
 * An endpoint is meshed when its pod carries `remora.dev/status` (the injector wrote it); its
 * identity is the pod's service account in the trust domain.
 */
import { CoreV1Api, DiscoveryV1Api, makeInformer } from '@kubernetes/client-node';
import type {
  Informer,
  KubeConfig,
  KubernetesObject,
  V1EndpointSlice,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import { ANNOTATIONS } from '@remora/proxy/contract';
import type { Logger } from 'pino';
import type { PodLike } from '../inject/types.js';
import { workloadName } from '../inject/workload.js';
import { labelFields } from './store.js';
import type { DiscoveryStore, WireEndpoint } from './store.js';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Changes arriving together (a rollout) cost one rebuild. */
const DEBOUNCE_MS = 50;

const dest = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

export function buildServices(
  services: readonly V1Service[],
  slices: readonly V1EndpointSlice[],
  pods: readonly V1Pod[],
  trustDomain: string,
): Map<string, WireEndpoint[]> {
  const podsByKey = new Map<string, V1Pod>();
  for (const p of pods) podsByKey.set(`${p.metadata?.namespace}/${p.metadata?.name}`, p);
  const slicesBySvc = new Map<string, V1EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (svc === undefined) continue;
    const k = `${s.metadata?.namespace}/${svc}`;
    const list = slicesBySvc.get(k) ?? [];
    list.push(s);
    slicesBySvc.set(k, list);
  }
  const out = new Map<string, WireEndpoint[]>();
  for (const svc of services) {
    const ns = svc.metadata?.namespace ?? '';
    const ips = (svc.spec?.clusterIPs ?? [svc.spec?.clusterIP]).filter(
      (ip): ip is string => typeof ip === 'string' && ip !== '' && ip !== 'None',
    );
    if (ips.length === 0) continue;
    const mySlices = slicesBySvc.get(`${ns}/${svc.metadata?.name}`) ?? [];
    for (const sp of svc.spec?.ports ?? []) {
      if ((sp.protocol ?? 'TCP') !== 'TCP') continue;
      const eps: WireEndpoint[] = [];
      for (const slice of mySlices) {
        const port = (slice.ports ?? []).find((p) => (p.name ?? '') === (sp.name ?? ''))?.port;
        if (port === undefined) continue;
        for (const e of slice.endpoints) {
          if (e.conditions?.ready === false) continue;
          const ref = e.targetRef;
          const pod = ref?.kind === 'Pod' ? podsByKey.get(`${ref.namespace ?? ns}/${ref.name}`) : undefined;
          const meshed = pod?.metadata?.annotations?.[ANNOTATIONS.status] !== undefined;
          const identity = `spiffe://${trustDomain}/ns/${pod?.metadata?.namespace ?? ns}/sa/${pod?.spec?.serviceAccountName ?? 'default'}`;
          // The destination labels: the Service, and the workload the same way the injector
          // names an injected pod's own (REMORA_WORKLOAD), so both sides of an edge agree.
          const labels = labelFields({
            service: `${svc.metadata?.name}.${ns}`,
            workload: pod === undefined ? undefined : workloadName(pod as PodLike),
            namespace: pod?.metadata?.namespace ?? ns,
          });
          for (const ip of e.addresses)
            eps.push(meshed ? { ip, port, meshed, identity, ...labels } : { ip, port, meshed, ...labels });
        }
      }
      eps.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
      for (const ip of ips) out.set(dest(ip, sp.port), eps);
    }
  }
  return out;
}

export interface KubernetesSource {
  synced(): boolean;
  stop(): void;
}

export async function startKubernetesDiscovery(
  kc: KubeConfig,
  store: DiscoveryStore,
  trustDomain: string,
  logger: Logger,
): Promise<KubernetesSource> {
  const core = kc.makeApiClient(CoreV1Api);
  const disco = kc.makeApiClient(DiscoveryV1Api);
  const services = makeInformer<V1Service>(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
  const slices = makeInformer<V1EndpointSlice>(kc, '/apis/discovery.k8s.io/v1/endpointslices', () =>
    disco.listEndpointSliceForAllNamespaces(),
  );
  const pods = makeInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  const rebuild = (): void => {
    timer = undefined;
    const changed = store.replace(buildServices(services.list(), slices.list(), pods.list(), trustDomain));
    if (changed.length > 0)
      logger.debug({ event: 'discovery_changed', destinations: changed.length }, 'discovery changed');
  };
  const soon = (): void => {
    if (started && timer === undefined) timer = setTimeout(rebuild, DEBOUNCE_MS);
  };
  const follow = <T extends KubernetesObject>(inf: Informer<T>): void => {
    inf.on('add', soon);
    inf.on('update', soon);
    inf.on('delete', soon);
    inf.on('error', (err: unknown) => {
      logger.warn({ event: 'discovery_watch_error', err }, 'discovery watch failed; retrying');
      setTimeout(() => void inf.start().catch(() => undefined), 5000).unref();
    });
  };
  follow(services);
  follow(slices);
  follow(pods);
  await Promise.all([services.start(), slices.start(), pods.start()]);
  started = true;
  rebuild();
  return {
    synced: () => started,
    stop: () => {
      if (timer) clearTimeout(timer);
      for (const inf of [services, slices, pods]) void inf.stop();
    },
  };
}
