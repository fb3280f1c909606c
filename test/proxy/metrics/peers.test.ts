/**
 * Peer labels (DESIGN §7) on a real mesh hop: two engines assembled as in production, a real
 * identity CA, mTLS on loopback. A calls B's service; A's outbound series name B (service,
 * workload, namespace, identity from discovery), B's inbound series name A (from the identity A
 * proved). A plaintext caller of B stays `unknown`. Also the cardinality cap with 10,000 callers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV, METRICS } from '../../../proxy/src/contract.js';
import { parseDiscovery, workloadsByIdentity } from '../../../proxy/src/discovery/static.js';
import { endpointPeer, inboundPeer, servicePeer } from '../../../proxy/src/metrics/peer.js';
import { DEFAULT_MAX_PEERS, OVERFLOW_PEER, ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { sample, scrape } from '../harness.js';
import { startAssembled } from '../telemetry/assembled.js';
import type { AssembledProxy } from '../telemetry/assembled.js';

const TD = 'peers.test';
const ID_A = `spiffe://${TD}/ns/shop/sa/client`;
const ID_B = `spiffe://${TD}/ns/payments/sa/ledger`;
const SERVICE = '127.0.0.210:80';
const TOKENS = new Map([
  ['token-a-0123456789abcdef', { namespace: 'shop', serviceAccount: 'client' }],
  ['token-b-0123456789abcdef', { namespace: 'payments', serviceAccount: 'ledger' }],
]);
const root = newRoot(TD);
let dir: string;
let ca: CaServer;
let app: http.Server;
const running: AssembledProxy[] = [];

async function sidecar(name: string, env: Record<string, string>): Promise<AssembledProxy> {
  const p = await startAssembled(name, {
    [ENV.caAddress]: `127.0.0.1:${ca.port}`,
    [ENV.caBundleFile]: join(dir, 'bundle.pem'),
    [ENV.trustDomain]: TD,
    ...env,
  });
  running.push(p);
  return p;
}

function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/x' }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-peers-'));
  writeFileSync(join(dir, 'bundle.pem'), root.certPem);
  ca = await startCaServer({
    host: '127.0.0.1',
    port: 0,
    ca: root,
    trustDomain: TD,
    reviewer: staticTokenReviewer(TOKENS),
    ttlSeconds: 3600,
    logger: pino({ level: 'silent' }),
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
  });
  app = http.createServer((_req, res) => res.end('ok\n'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  for (const p of running.splice(0)) await p.stop();
  await ca.close();
  await new Promise<void>((r) => app.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

describe('peer labels on a mesh hop', () => {
  let a: AssembledProxy;
  let b: AssembledProxy;
  let metricsA = '';
  let metricsB = '';

  beforeAll(async () => {
    const appPort = (app.address() as AddressInfo).port;
    writeFileSync(join(dir, 'a.token'), 'token-a-0123456789abcdef');
    writeFileSync(join(dir, 'b.token'), 'token-b-0123456789abcdef');
    // B knows A as a destination too: the workload name B's inbound series use for A.
    writeFileSync(
      join(dir, 'disc-b.json'),
      JSON.stringify({
        services: {
          '127.0.0.211:80': {
            endpoints: [
              {
                ip: '127.0.0.1',
                port: 1,
                meshed: true,
                identity: ID_A,
                workload: 'storefront',
                namespace: 'shop',
              },
            ],
          },
        },
      }),
    );
    b = await sidecar('b', {
      [ENV.tokenFile]: join(dir, 'b.token'),
      [ENV.podNamespace]: 'payments',
      [ENV.serviceAccount]: 'ledger',
      [ENV.workload]: 'ledger',
      [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
      [ENV.discoveryFile]: join(dir, 'disc-b.json'),
    });
    writeFileSync(
      join(dir, 'disc-a.json'),
      JSON.stringify({
        services: {
          [SERVICE]: {
            endpoints: [
              {
                ip: '127.0.0.1',
                port: appPort,
                meshed: true,
                identity: ID_B,
                tunnelPort: b.port('tunnel'),
                service: 'ledger.payments',
                workload: 'ledger',
                namespace: 'payments',
              },
            ],
          },
        },
      }),
    );
    a = await sidecar('a', {
      [ENV.tokenFile]: join(dir, 'a.token'),
      [ENV.podNamespace]: 'shop',
      [ENV.serviceAccount]: 'client',
      [ENV.workload]: 'storefront',
      [ENV.discoveryFile]: join(dir, 'disc-a.json'),
      [ENV.outboundTarget]: SERVICE,
    });
    for (let i = 0; i < 3; i++) expect(await get(a.port('outbound'))).toBe(200);
    // A plaintext caller straight to B's inbound listener (permissive mode).
    expect(await get(b.port('inbound'))).toBe(200);
    metricsA = await scrape(a.port('metrics'));
    metricsB = await scrape(b.port('metrics'));
  });

  const AS_SOURCE = { source_workload: 'storefront', source_namespace: 'shop', source_identity: ID_A };
  const B_AS_DEST = {
    destination_service: 'ledger.payments',
    destination_workload: 'ledger',
    destination_namespace: 'payments',
    destination_identity: ID_B,
  };

  it("A's outbound series name B from discovery", () => {
    const labels = { direction: 'outbound', status_code: '200', ...AS_SOURCE, ...B_AS_DEST };
    expect(sample(metricsA, METRICS.requestsTotal, labels)).toBe(3);
    expect(
      sample(metricsA, `${METRICS.requestDuration}_count`, { direction: 'outbound', ...B_AS_DEST }),
    ).toBe(3);
    expect(
      sample(metricsA, METRICS.tcpOpened, { direction: 'outbound', protocol: 'http1', ...B_AS_DEST }),
    ).toBe(1);
  });

  it("B's inbound series name A from the identity A proved (workload from B's discovery)", () => {
    const labels = {
      direction: 'inbound',
      status_code: '200',
      ...AS_SOURCE,
      destination_workload: 'ledger',
      destination_namespace: 'payments',
      destination_identity: ID_B,
    };
    expect(sample(metricsB, METRICS.requestsTotal, labels)).toBe(3);
    expect(
      sample(metricsB, METRICS.tcpOpened, { direction: 'inbound', protocol: 'http1', ...AS_SOURCE }),
    ).toBe(1);
  });

  it('a plaintext caller is unknown on every source label', () => {
    expect(
      sample(metricsB, METRICS.requestsTotal, {
        direction: 'inbound',
        status_code: '200',
        source_workload: 'unknown',
        source_namespace: 'unknown',
        source_identity: 'unknown',
      }),
    ).toBe(1);
  });
});

describe('peer resolution (pure)', () => {
  it('an identity discovery does not map reads its service account as the workload', () => {
    expect(inboundPeer('spiffe://td/ns/shop/sa/web')).toEqual({
      identity: 'spiffe://td/ns/shop/sa/web',
      namespace: 'shop',
      workload: 'web',
    });
    expect(inboundPeer('spiffe://td/odd')).toEqual({ identity: 'spiffe://td/odd' });
  });

  it('a service whose endpoints disagree keeps only what they agree on', () => {
    const eps = [
      ...(parseDiscovery(
        JSON.stringify({
          services: {
            '10.0.0.1:80': {
              endpoints: [
                {
                  ip: '10.1.0.1',
                  port: 80,
                  meshed: true,
                  identity: 'spiffe://td/ns/a/sa/x',
                  service: 's.a',
                  workload: 'w1',
                },
                {
                  ip: '10.1.0.2',
                  port: 80,
                  meshed: true,
                  identity: 'spiffe://td/ns/a/sa/x',
                  service: 's.a',
                  workload: 'w2',
                },
              ],
            },
          },
        }),
      ).get('10.0.0.1:80') ?? []),
    ];
    expect(servicePeer(eps)).toEqual({
      service: 's.a',
      workload: undefined,
      namespace: 'a',
      identity: 'spiffe://td/ns/a/sa/x',
    });
    expect(endpointPeer(eps[1] as (typeof eps)[number]).workload).toBe('w2');
    // Two workloads behind one identity: discovery cannot say which one called.
    expect(workloadsByIdentity([eps]).get('spiffe://td/ns/a/sa/x')).toBeUndefined();
  });

  it('refuses a discovery endpoint whose names are not Kubernetes names, listing each', () => {
    expect(() =>
      parseDiscovery(
        JSON.stringify({
          services: {
            '10.0.0.1:80': {
              endpoints: [
                { ip: '10.1.0.1', port: 80, workload: 'Bad Name"}' },
                { ip: '10.1.0.2', port: 80, service: 7 },
              ],
            },
          },
        }),
      ),
    ).toThrow(
      /endpoint 0: "workload" is not a Kubernetes name or label value.*endpoint 1: "service" is not a Kubernetes name or label value/,
    );
  });
});

describe('peer cardinality', () => {
  it('10,000 distinct callers: the first maxPeers get their own series, the rest share "overflow", counted', () => {
    const m = new ProxyMetrics(undefined, {
      workload: 'me',
      namespace: 'ns',
      identity: 'spiffe://td/ns/ns/sa/me',
    });
    for (let i = 0; i < 10_000; i++) {
      const p = m.inbound.peer(inboundPeer(`spiffe://td/ns/n${i}/sa/caller${i}`));
      p.opened.http1.inc();
      p.requests(200).inc();
      p.duration.observe(0.001);
    }
    // The same peer again is the same object (no new series, no lookup cost beyond the map).
    expect(m.inbound.peer(inboundPeer('spiffe://td/ns/n1/sa/caller1'))).toBe(
      m.inbound.peer(inboundPeer('spiffe://td/ns/n1/sa/caller1')),
    );
    const text = m.registry.render();
    const identities = new Set(
      [...text.matchAll(/^remora_requests_total\{[^}]*source_identity="([^"]*)"/gm)].map((x) => x[1]),
    );
    // own peers + "overflow" (the unknown peer counted no request here)
    expect(identities.size).toBe(DEFAULT_MAX_PEERS + 1);
    expect(identities.has(OVERFLOW_PEER)).toBe(true);
    expect(sample(text, METRICS.requestsTotal, { source_identity: OVERFLOW_PEER })).toBe(
      10_000 - DEFAULT_MAX_PEERS,
    );
    expect(sample(text, METRICS.peerOverflow, { direction: 'inbound' })).toBe(10_000 - DEFAULT_MAX_PEERS);
    // Bounded output: a few thousand lines, not hundreds of thousands.
    expect(text.split('\n').length).toBeLessThan(30 * (DEFAULT_MAX_PEERS + 4) * 2);
  });
});

describe('REMORA_METRICS_MAX_PEERS', () => {
  it('sets the cap (0: every peer is "overflow"); a bad value is a config error naming it', () => {
    expect(parseConfig({ [ENV.metricsMaxPeers]: '3' }).metricsMaxPeers).toBe(3);
    expect(parseConfig({}).metricsMaxPeers).toBe(DEFAULT_MAX_PEERS);
    for (const bad of ['many', '-1', '10001']) {
      expect(() => parseConfig({ [ENV.metricsMaxPeers]: bad })).toThrow(ENV.metricsMaxPeers);
    }
    const m = new ProxyMetrics(undefined, {}, { maxPeers: 0 });
    m.outbound
      .peer(endpointPeer({ identity: 'spiffe://td/ns/a/sa/b', service: 's.a' }))
      .requests(200)
      .inc();
    expect(sample(m.registry.render(), METRICS.requestsTotal, { destination_service: OVERFLOW_PEER })).toBe(
      1,
    );
  });
});
