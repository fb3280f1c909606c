/**
 * The injector's streams against hostile or broken clients, over real TLS on loopback: a
 * stream without a client certificate was served to anyone; one pod could open streams without
 * bound; a subscriber that stopped reading made the injector buffer every update for it. Now:
 * no workload certificate from the mesh CA, no stream (401/403); caps per client (429) and in
 * total (503); a paused subscriber is closed once its unsent bytes pass the bound, which the
 * hub counts (peakBufferedBytes), while a reading subscriber gets every update.
 */
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CA_PATHS } from '../../../proxy/src/contract.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import type { StreamLimits } from '../../../injector/src/ca/ndjson.js';
import { DiscoveryStore } from '../../../injector/src/discovery/store.js';
import type { WireEndpoint } from '../../../injector/src/discovery/store.js';
import { discoveryRoute } from '../../../injector/src/discovery/stream.js';
import { PolicyStore } from '../../../injector/src/policy/store.js';
import { policyRoute } from '../../../injector/src/policy/stream.js';
import { InjectorMetrics } from '../../../injector/src/webhook/metrics.js';
import { startLoopbackCa, workloadCert } from '../../helpers/workload-cert.js';
import type { WorkloadCert } from '../../helpers/workload-cert.js';

const TD = 'mesh.test';
const root = newRoot(TD);
const web = workloadCert(root, `spiffe://${TD}/ns/shop/sa/web`);
const api = workloadCert(root, `spiffe://${TD}/ns/shop/sa/api`);
const quiet = pino({ level: 'silent' });
let server: CaServer | undefined;
let store: DiscoveryStore;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(limits?: StreamLimits): Promise<CaServer> {
  store = new DiscoveryStore();
  server = await startLoopbackCa(root, TD, {
    routes: [discoveryRoute(store), policyRoute(new PolicyStore(quiet))],
    ...(limits ? { streamLimits: limits } : {}),
  });
  return server;
}

interface Opened {
  status: number;
  reason: string;
  close(): void;
}

/** Opens one stream and resolves at its status; a 200 stays open until close(). */
function open(port: number, path: string, who?: { keyPem: string; certPem: string }): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        path,
        ca: root.certPem,
        checkServerIdentity: () => undefined,
        agent: false,
        ...(who ? { key: who.keyPem, cert: who.certPem } : {}),
      },
      (res) => {
        if (res.statusCode === 200) {
          resolve({ status: 200, reason: '', close: () => req.destroy() });
          return;
        }
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            reason: (JSON.parse(text) as { reason: string }).reason,
            close: () => req.destroy(),
          }),
        );
      },
    );
    req.on('error', reject);
  });
}

const DISCOVERY = `${CA_PATHS.discovery}?dest=10.96.0.1:80`;
const POLICY = `${CA_PATHS.policy}?workload=shop/web`;

describe('stream clients are authenticated with their workload certificate', () => {
  it.each([DISCOVERY, POLICY])(
    '%s without a client certificate: 401, counted, nothing subscribed',
    async (path) => {
      const ca = await start();
      const r = await open(ca.port, path);
      expect(r).toMatchObject({ status: 401, reason: 'no_client_certificate' });
      expect(ca.streams.refused.no_client_certificate).toBe(1);
      expect(store.subscriptions()).toBe(0);
      const metrics = new InjectorMetrics();
      metrics.observeCa(ca);
      expect(metrics.render()).toContain(
        'remora_injector_streams_refused_total{reason="no_client_certificate"} 1\n',
      );
    },
  );

  it('a certificate from another root: 401', async () => {
    const ca = await start();
    const stranger = workloadCert(newRoot(TD), `spiffe://${TD}/ns/shop/sa/web`);
    expect(await open(ca.port, DISCOVERY, stranger)).toMatchObject({ status: 401 });
  });

  it('a certificate of this root naming another trust domain: 403', async () => {
    const ca = await start();
    const foreign = workloadCert(root, 'spiffe://other.test/ns/shop/sa/web');
    expect(await open(ca.port, DISCOVERY, foreign)).toMatchObject({
      status: 403,
      reason: 'foreign_identity',
    });
  });

  it('the workload certificate opens the stream', async () => {
    const ca = await start();
    const r = await open(ca.port, DISCOVERY, web);
    try {
      expect(r.status).toBe(200);
      expect(ca.streams.open).toBe(1);
    } finally {
      r.close();
    }
    await expect.poll(() => ca.streams.open).toBe(0);
  });
});

describe('a stream outliving its client certificate', () => {
  it('ends at the first heartbeat after the certificate expired', async () => {
    store = new DiscoveryStore();
    const ca = await startLoopbackCa(root, TD, { routes: [discoveryRoute(store)], heartbeatMs: 50 });
    server = ca;
    // Valid for three seconds from now (issue() backdates notBefore, not notAfter). X.509 times
    // have whole seconds: a one-second certificate could be expired before its first request
    // (a 401 seen once in CI), three leave two at least.
    const shortLived = workloadCert(root, `spiffe://${TD}/ns/shop/sa/web`, 3 / 86_400);
    await new Promise<void>((resolve, reject) => {
      const req = https.get(
        {
          host: '127.0.0.1',
          port: ca.port,
          path: DISCOVERY,
          ca: root.certPem,
          checkServerIdentity: () => undefined,
          agent: false,
          key: shortLived.keyPem,
          cert: shortLived.certPem,
        },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.resume();
          res.on('close', () => resolve());
        },
      );
      req.on('error', () => resolve());
    });
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(new X509Certificate(shortLived.certPem).validTo));
    await expect.poll(() => ca.streams.open).toBe(0);
  });
});

describe('stream caps', () => {
  const openMany = async (port: number, who: WorkloadCert, n: number, from = 0): Promise<Opened[]> =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        open(port, `${CA_PATHS.discovery}?dest=10.96.1.${from + i}:80`, who),
      ),
    );

  it('one client past its cap gets 429; another client is not affected', async () => {
    const ca = await start({ maxPerClient: 20, maxTotal: 1000, maxBufferedBytes: 1 << 20 });
    const mine = await openMany(ca.port, web, 30);
    try {
      expect(mine.filter((r) => r.status === 200)).toHaveLength(20);
      expect(mine.filter((r) => r.status === 429 && r.reason === 'too_many_streams_per_client')).toHaveLength(
        10,
      );
      expect(ca.streams.open).toBe(20);
      expect(store.subscriptions()).toBe(20);
      const theirs = await open(ca.port, DISCOVERY, api);
      expect(theirs.status).toBe(200);
      theirs.close();
    } finally {
      for (const r of mine) r.close();
    }
    await expect.poll(() => ca.streams.open).toBe(0);
    // Closed streams free their slots.
    const again = await openMany(ca.port, web, 5);
    expect(again.every((r) => r.status === 200)).toBe(true);
    for (const r of again) r.close();
  });

  it('past the total cap everyone gets 503', async () => {
    const ca = await start({ maxPerClient: 100, maxTotal: 8, maxBufferedBytes: 1 << 20 });
    const first = await openMany(ca.port, web, 8);
    try {
      expect(first.every((r) => r.status === 200)).toBe(true);
      expect(await open(ca.port, DISCOVERY, api)).toMatchObject({ status: 503, reason: 'too_many_streams' });
    } finally {
      for (const r of first) r.close();
    }
  });
});

describe('backpressure', () => {
  const endpoints = (gen: number): WireEndpoint[] =>
    Array.from({ length: 2000 }, (_, i) => ({
      ip: `10.1.${Math.floor(i / 250)}.${i % 250}`,
      port: 8000 + (gen % 1000),
      meshed: true,
      identity: `spiffe://${TD}/ns/shop/sa/web`,
    }));

  it('a paused subscriber is closed past the bound and counted; the heap never holds more than the bound for it', async () => {
    const bound = 256 * 1024;
    const ca = await start({ maxPerClient: 10, maxTotal: 100, maxBufferedBytes: bound });
    store.replace(new Map([['10.96.0.1:80', endpoints(0)]]));
    // The paused one: a raw TLS client that sends its GET, reads the first bytes and stops.
    const paused = tls.connect({
      host: '127.0.0.1',
      port: ca.port,
      ca: root.certPem,
      key: web.keyPem,
      cert: web.certPem,
      checkServerIdentity: () => undefined,
    });
    await new Promise<void>((resolve, reject) => {
      paused.once('secureConnect', () => paused.write(`GET ${DISCOVERY} HTTP/1.1\r\nhost: x\r\n\r\n`));
      paused.once('data', () => {
        paused.pause();
        resolve();
      });
      paused.once('error', reject);
    });
    // The reading one sees every update through to the last.
    let last = '';
    const reader = https.get(
      {
        host: '127.0.0.1',
        port: ca.port,
        path: DISCOVERY,
        ca: root.certPem,
        checkServerIdentity: () => undefined,
        agent: false,
        key: api.keyPem,
        cert: api.certPem,
      },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          const nl = buf.lastIndexOf('\n');
          if (nl >= 0) {
            const lines = buf.slice(0, nl).split('\n');
            buf = buf.slice(nl + 1);
            for (const l of lines) if (l.length > 2) last = l;
          }
        });
      },
    );
    await expect.poll(() => ca.streams.open).toBe(2);
    try {
      let gen = 0;
      // Each update is ~150 KB; the kernel's socket buffers take a few MB, then the injector's
      // own queue for the paused stream grows until the bound closes it.
      while (ca.streams.slowClosed === 0 && gen < 2000) {
        store.replace(new Map([['10.96.0.1:80', endpoints(++gen)]]));
        // Let the sockets move (the reader drains; the paused one does not).
        await new Promise((r) => setImmediate(r));
      }
      expect(ca.streams.slowClosed).toBe(1);
      expect(ca.streams.peakBufferedBytes).toBeLessThanOrEqual(bound);
      await expect.poll(() => ca.streams.open).toBe(1);
      const final = endpoints(gen)[0]?.port;
      await expect
        .poll(
          () =>
            last === '' ? undefined : (JSON.parse(last) as { endpoints: WireEndpoint[] }).endpoints[0]?.port,
          {
            timeout: 20_000,
          },
        )
        .toBe(final);
    } finally {
      paused.destroy();
      reader.destroy();
    }
  });
});
