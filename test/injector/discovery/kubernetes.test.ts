/**
 * Kubernetes discovery: the pure map from Services, EndpointSlices and Pods, then the informers
 * against a small fake API server on loopback (list + watch), a watch event reaching a
 * subscribed destination through the store.
 */
import http from 'node:http';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeKubeConfig } from '../fake-api.js';
import { ANNOTATIONS } from '../../../proxy/src/contract.js';
import { buildServices, startKubernetesDiscovery } from '../../../injector/src/discovery/kubernetes.js';
import type { KubernetesSource } from '../../../injector/src/discovery/kubernetes.js';
import { DiscoveryStore } from '../../../injector/src/discovery/store.js';
import type { WireEndpoint } from '../../../injector/src/discovery/store.js';

const svc = (name: string, clusterIP: string, ports: { name?: string; port: number }[]): V1Service => ({
  metadata: { name, namespace: 'shop', resourceVersion: '1' },
  spec: { clusterIP, clusterIPs: [clusterIP], ports: ports.map((p) => ({ ...p, protocol: 'TCP' })) },
});
const slice = (
  service: string,
  port: { name?: string; port: number },
  endpoints: { ip: string; pod: string; ready?: boolean }[],
  name = `${service}-abc`,
): V1EndpointSlice => ({
  addressType: 'IPv4',
  metadata: {
    name,
    namespace: 'shop',
    labels: { 'kubernetes.io/service-name': service },
    resourceVersion: '1',
  },
  ports: [port],
  endpoints: endpoints.map((e) => ({
    addresses: [e.ip],
    conditions: { ready: e.ready ?? true },
    targetRef: { kind: 'Pod', name: e.pod, namespace: 'shop' },
  })),
});
const pod = (name: string, sa: string, injected: boolean): V1Pod => ({
  metadata: {
    name,
    namespace: 'shop',
    resourceVersion: '1',
    annotations: injected ? { [ANNOTATIONS.status]: '{"version":"0.1.0"}' } : {},
  },
  spec: { serviceAccountName: sa, containers: [] },
});

const SERVICES = [
  svc('web', '10.96.0.10', [{ name: 'http', port: 80 }]),
  svc('headless', 'None', [{ port: 80 }]),
];
const SLICES = [
  slice('web', { name: 'http', port: 8080 }, [
    { ip: '10.1.0.3', pod: 'web-1' },
    { ip: '10.1.0.4', pod: 'legacy-1' },
    { ip: '10.1.0.5', pod: 'web-2', ready: false },
  ]),
];
const PODS = [pod('web-1', 'web', true), pod('legacy-1', 'legacy', false), pod('web-2', 'web', true)];

describe('buildServices', () => {
  it('maps ClusterIP:port to ready endpoints, meshed with identity only when the pod was injected', () => {
    const m = buildServices(SERVICES, SLICES, PODS, 'cluster.local');
    expect([...m.keys()]).toEqual(['10.96.0.10:80']);
    expect(m.get('10.96.0.10:80')).toEqual([
      // service, workload and namespace: the proxies' destination labels (the pods here have no
      // labels or owners, so the workload is the pod name, as the injector names it).
      {
        ip: '10.1.0.3',
        port: 8080,
        meshed: true,
        identity: 'spiffe://cluster.local/ns/shop/sa/web',
        service: 'web.shop',
        workload: 'web-1',
        namespace: 'shop',
      },
      {
        ip: '10.1.0.4',
        port: 8080,
        meshed: false,
        service: 'web.shop',
        workload: 'legacy-1',
        namespace: 'shop',
      },
    ]);
  });
});

describe('informers (fake API server)', () => {
  let server: http.Server;
  const watches = new Map<string, http.ServerResponse[]>();
  let source: KubernetesSource;
  const store = new DiscoveryStore();

  beforeAll(async () => {
    const lists: Record<string, { kind: string; items: unknown[] }> = {
      '/api/v1/services': { kind: 'ServiceList', items: SERVICES },
      '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSliceList', items: SLICES },
      '/api/v1/pods': { kind: 'PodList', items: PODS },
    };
    server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const list = lists[url.pathname];
      if (!list) {
        res.writeHead(404).end();
        return;
      }
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        const open = watches.get(url.pathname) ?? [];
        open.push(res);
        watches.set(url.pathname, open);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          apiVersion: 'v1',
          kind: list.kind,
          metadata: { resourceVersion: '1' },
          items: list.items,
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = fakeKubeConfig(server);
    source = await startKubernetesDiscovery(kc, store, 'cluster.local', pino({ level: 'silent' }));
  });
  afterAll(async () => {
    source.stop();
    for (const open of watches.values()) for (const r of open) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('lists at start, then a watch event reaches the subscribers of that destination only', async () => {
    expect(source.synced()).toBe(true);
    expect(store.get('10.96.0.10:80')?.map((e) => e.ip)).toEqual(['10.1.0.3', '10.1.0.4']);
    const seen: (readonly WireEndpoint[] | null)[] = [];
    const other: unknown[] = [];
    const stop = store.subscribe('10.96.0.10:80', (eps) => seen.push(eps));
    const stopOther = store.subscribe('10.96.0.99:80', (eps) => other.push(eps));
    const end = Date.now() + 5000;
    while ((watches.get('/apis/discovery.k8s.io/v1/endpointslices')?.length ?? 0) === 0) {
      if (Date.now() > end) throw new Error('no endpointslice watch opened');
      await new Promise((r) => setTimeout(r, 20));
    }
    const changed = slice('web', { name: 'http', port: 8080 }, [
      { ip: '10.1.0.3', pod: 'web-1' },
      { ip: '10.1.0.4', pod: 'legacy-1' },
      { ip: '10.1.0.5', pod: 'web-2', ready: true },
    ]);
    changed.metadata = { ...changed.metadata, resourceVersion: '2' };
    for (const w of watches.get('/apis/discovery.k8s.io/v1/endpointslices') ?? [])
      w.write(`${JSON.stringify({ type: 'MODIFIED', object: changed })}\n`);
    while (seen.length === 0) {
      if (Date.now() > end) throw new Error('no update');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen[0]?.map((e) => e.ip)).toEqual(['10.1.0.3', '10.1.0.4', '10.1.0.5']);
    expect(other).toEqual([]);
    stop();
    stopOther();
  });
});

describe('buildServices: destination labels', () => {
  it("names a Deployment's pod by its app label and leaves out a value unfit for a label", () => {
    const labelled: V1Pod = {
      ...pod('web-1', 'web', true),
      metadata: { ...pod('web-1', 'web', true).metadata, labels: { app: 'storefront' } },
    };
    const odd: V1Pod = {
      ...pod('legacy-1', 'legacy', false),
      metadata: { ...pod('legacy-1', 'legacy', false).metadata, labels: { app: 'has space' } },
    };
    const eps = buildServices(SERVICES, SLICES, [labelled, odd], 'cluster.local').get('10.96.0.10:80');
    expect(eps?.[0]).toMatchObject({ service: 'web.shop', workload: 'storefront', namespace: 'shop' });
    expect(eps?.[1]).toEqual({
      ip: '10.1.0.4',
      port: 8080,
      meshed: false,
      service: 'web.shop',
      namespace: 'shop',
    });
  });
});
