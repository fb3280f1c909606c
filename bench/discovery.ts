/**
 * Discovery at scale (issue 4 §3): a simulated cluster of 10,000 pods and 2,000 services (5 pods
 * each, one EndpointSlice per service) goes through the injector's pure `buildServices` into the
 * store and is served on a real HTTPS discovery listener; `clients` proxy-side StreamDiscovery
 * instances each subscribe to `perClient` random destinations. Then one endpoint of a watched
 * service changes, and we measure the time until every subscriber of it knows.
 * Reports: heap of the control plane's caches + map, rebuild time, propagation time.
 *
 * Run: npm run build && npx tsc -p bench && node --expose-gc bench/dist/discovery.js
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PODS = 10_000;
const SERVICES = 2_000;
const CLIENTS = Number(/--clients=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 100);
const PER_CLIENT = 10;

type Obj = Record<string, unknown>;
interface Store {
  replace(m: Map<string, unknown[]>): string[];
  subscriptions(): number;
}
interface Endpoint {
  ip: string;
}
interface Client {
  pending(k: string): Promise<unknown> | undefined;
  lookup(k: string): readonly Endpoint[] | undefined;
  close(): void;
}
const imp = async <T>(p: string): Promise<T> => (await import(join(ROOT, p))) as T;
const { buildServices } = await imp<{
  buildServices: (s: Obj[], e: Obj[], p: Obj[], td: string) => Map<string, unknown[]>;
}>('injector/dist/discovery/kubernetes.js');
const { DiscoveryStore } = await imp<{ DiscoveryStore: new () => Store }>('injector/dist/discovery/store.js');
const { discoveryRoute } = await imp<{ discoveryRoute: (s: Store) => unknown }>(
  'injector/dist/discovery/stream.js',
);
const { startCaServer } = await imp<{
  startCaServer: (o: Obj) => Promise<{ port: number; close(): Promise<void> }>;
}>('injector/dist/ca/server.js');
const { newRoot } = await imp<{ newRoot: (td: string) => { certPem: string } }>('injector/dist/ca/root.js');
const { issue } = await imp<{ issue: (ca: unknown, spec: Obj) => { keyPem: string; certPem: string } }>(
  'injector/dist/pki/ca.js',
);
const { StreamDiscovery } = await imp<{ StreamDiscovery: new (o: Obj) => Client }>(
  'proxy/dist/discovery/stream.js',
);
const { createLogger } = await imp<{ createLogger: (l: string) => unknown }>('proxy/dist/log.js');
const { pino } = await import('pino');

const ip = (i: number): string => `10.${1 + Math.floor(i / 65_536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
const clusterIp = (s: number): string => `10.96.${Math.floor(s / 256)}.${s % 256}`;

function cluster(gen: number): { services: Obj[]; slices: Obj[]; pods: Obj[] } {
  const services: Obj[] = [];
  const slices: Obj[] = [];
  const pods: Obj[] = [];
  const perSvc = PODS / SERVICES;
  for (let s = 0; s < SERVICES; s++) {
    const name = `svc-${s}`;
    services.push({
      metadata: { name, namespace: 'sim' },
      spec: { clusterIP: clusterIp(s), ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
    const endpoints: Obj[] = [];
    for (let k = 0; k < perSvc; k++) {
      const p = s * perSvc + k;
      const podName = `pod-${p}`;
      pods.push({
        metadata: { name: podName, namespace: 'sim', annotations: { 'remora.dev/status': '{}' } },
        spec: { serviceAccountName: name, containers: [] },
      });
      // Generation 1 moves svc-0's first endpoint to a new IP (a pod replaced).
      const addr = gen === 1 && s === 0 && k === 0 ? '10.250.0.1' : ip(p);
      endpoints.push({
        addresses: [addr],
        conditions: { ready: true },
        targetRef: { kind: 'Pod', name: podName, namespace: 'sim' },
      });
    }
    slices.push({
      metadata: { name: `${name}-1`, namespace: 'sim', labels: { 'kubernetes.io/service-name': name } },
      ports: [{ name: 'http', port: 8080 }],
      endpoints,
    });
  }
  return { services, slices, pods };
}

const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heap0 = process.memoryUsage().heapUsed;
const c0 = cluster(0);
const store = new DiscoveryStore();
let t = performance.now();
store.replace(buildServices(c0.services, c0.slices, c0.pods, 'cluster.local'));
const firstBuildMs = performance.now() - t;
gc?.();
const heapCluster = process.memoryUsage().heapUsed - heap0;

const root = newRoot('cluster.local');
const server = await startCaServer({
  host: '127.0.0.1',
  port: 0,
  ca: root,
  trustDomain: 'cluster.local',
  reviewer: () => Promise.reject(new Error('unused')),
  ttlSeconds: 3600,
  logger: pino({ level: 'silent' }),
  namespace: 'remora-system',
  serviceAccount: 'remora-injector',
  routes: [discoveryRoute(store)],
});
const clients: Client[] = [];
const watching: Client[] = [];
const target = `${clusterIp(0)}:80`;
for (let i = 0; i < CLIENTS; i++) {
  // Each simulated proxy shows its own workload certificate, as the injector requires.
  const own = issue(root, {
    subject: {},
    validityDays: 1,
    uris: [`spiffe://cluster.local/ns/bench/sa/client-${i}`],
    extKeyUsage: ['clientAuth'],
  });
  const d = new StreamDiscovery({
    address: { host: '127.0.0.1', port: server.port },
    caBundle: root.certPem,
    credentials: { current: () => own, first: () => Promise.resolve(own) },
    serverIdentity: 'spiffe://cluster.local/ns/remora-system/sa/remora-injector',
    log: createLogger('silent'),
  });
  clients.push(d);
  const dests = new Set<string>([target]);
  while (dests.size < PER_CLIENT) dests.add(`${clusterIp(Math.floor(Math.random() * SERVICES))}:80`);
  await Promise.all([...dests].map((k) => d.pending(k)));
  watching.push(d);
}
gc?.();
const heapWithStreams = process.memoryUsage().heapUsed - heap0;

const c1 = cluster(1);
t = performance.now();
const changed = store.replace(buildServices(c1.services, c1.slices, c1.pods, 'cluster.local'));
const rebuildMs = performance.now() - t;
const knows = (d: Client): boolean => (d.lookup(target) ?? []).some((e) => e.ip === '10.250.0.1');
while (!watching.every(knows)) await new Promise((r) => setImmediate(r));
const propagationMs = performance.now() - t;

process.stdout.write(
  `${JSON.stringify(
    {
      when: new Date().toISOString(),
      node: process.version,
      pods: PODS,
      services: SERVICES,
      streams: store.subscriptions(),
      clients: CLIENTS,
      destinationsPerClient: PER_CLIENT,
      heapMbClusterAndMap: Math.round(heapCluster / 1e5) / 10,
      heapMbWithStreams: Math.round(heapWithStreams / 1e5) / 10,
      firstBuildMs: Math.round(firstBuildMs),
      changedDestinations: changed.length,
      rebuildMs: Math.round(rebuildMs),
      changeToAllSubscribersMs: Math.round(propagationMs),
      gcExposed: gc !== undefined,
    },
    null,
    2,
  )}\n`,
);
for (const d of clients) d.close();
await server.close();
