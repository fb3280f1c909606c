/**
 * The discovery stream end to end on loopback: the injector's static-file source served on the
 * CA's HTTPS listener, the proxy's StreamDiscovery subscribing on demand, changes pushed to the
 * subscribed destinations only, resync after the injector restarts, bad input refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_PATHS } from '../../../proxy/src/contract.js';
import { StreamDiscovery } from '../../../proxy/src/discovery/stream.js';
import { createLogger } from '../../../proxy/src/log.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { watchStaticDiscovery } from '../../../injector/src/discovery/static.js';
import { DiscoveryStore } from '../../../injector/src/discovery/store.js';
import { discoveryRoute } from '../../../injector/src/discovery/stream.js';
import { workloadCert } from '../../helpers/workload-cert.js';

const TD = 'mesh.test';
const ID_WEB = `spiffe://${TD}/ns/shop/sa/web`;
const root = newRoot(TD);
const proxyCert = workloadCert(root, ID_WEB);
let dir: string;
let file: string;
let store: DiscoveryStore;
let stopWatch: () => void;
let server: CaServer;
let port = 0;
const quiet = pino({ level: 'silent' });

function writeServices(services: Record<string, unknown[]>): void {
  const doc: Record<string, { endpoints: unknown[] }> = {};
  for (const [k, v] of Object.entries(services)) doc[k] = { endpoints: v };
  writeFileSync(file, JSON.stringify({ services: doc }));
}

async function start(): Promise<void> {
  server = await startCaServer({
    host: '127.0.0.1',
    port,
    ca: root,
    trustDomain: TD,
    reviewer: staticTokenReviewer(new Map()),
    ttlSeconds: 3600,
    logger: quiet,
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
    routes: [discoveryRoute(store)],
  });
  port = server.port;
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function client(): StreamDiscovery {
  return new StreamDiscovery({
    address: { host: '127.0.0.1', port },
    caBundle: root.certPem,
    serverIdentity: `spiffe://${TD}/ns/remora-system/sa/remora-injector`,
    credentials: proxyCert.credentials,
    log: createLogger('silent'),
    backoff: { baseMs: 50, maxMs: 200 },
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-disc-'));
  file = join(dir, 'services.json');
  writeServices({
    '10.96.0.10:80': [{ ip: '10.1.0.3', port: 8080, meshed: true, identity: ID_WEB }],
    '10.96.0.11:5432': [{ ip: '10.1.0.9', port: 5432, meshed: false }],
  });
  store = new DiscoveryStore();
  stopWatch = watchStaticDiscovery(file, store, quiet, 50);
  await start();
});
afterAll(async () => {
  stopWatch();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('discovery stream (injector static source → proxy)', () => {
  it('subscribes on demand: only the dialled destination is streamed, and changes arrive', async () => {
    const d = client();
    try {
      expect(d.lookup('10.96.0.10:80')).toBeUndefined();
      const eps = await d.pending('10.96.0.10:80');
      expect(eps?.map((e) => [e.key, e.meshed, e.identity])).toEqual([['10.1.0.3:8080', true, ID_WEB]]);
      expect(d.pending('10.96.0.10:80')).toBeUndefined();
      expect(d.subscribed()).toEqual(['10.96.0.10:80']);
      expect(store.subscriptions()).toBe(1);
      writeServices({
        '10.96.0.10:80': [
          { ip: '10.1.0.3', port: 8080, meshed: true, identity: ID_WEB },
          { ip: '10.1.0.4', port: 8080, meshed: true, identity: ID_WEB },
        ],
        '10.96.0.11:5432': [{ ip: '10.1.0.9', port: 5432, meshed: false }],
      });
      await until(() => d.lookup('10.96.0.10:80')?.length === 2, 'second endpoint');
    } finally {
      d.close();
    }
    await until(() => store.subscriptions() === 0, 'unsubscribed after close');
  });

  it('a destination that is not a service answers "none" at once, and appears when added', async () => {
    const d = client();
    try {
      expect(await d.pending('10.96.0.99:80')).toBeUndefined();
      expect(d.pending('10.96.0.99:80')).toBeUndefined(); // resolved: not waiting again
      writeServices({ '10.96.0.99:80': [{ ip: '10.1.0.7', port: 80, meshed: false }] });
      await until(() => d.lookup('10.96.0.99:80')?.[0]?.key === '10.1.0.7:80', 'new service');
    } finally {
      d.close();
    }
  });

  it('resyncs after the injector restarts: a change made while it was down is seen', async () => {
    writeServices({ '10.96.0.20:80': [{ ip: '10.1.0.20', port: 80, meshed: false }] });
    await until(() => store.get('10.96.0.20:80') !== null, 'store loaded');
    const d = client();
    try {
      await d.pending('10.96.0.20:80');
      expect(d.lookup('10.96.0.20:80')?.[0]?.ip).toBe('10.1.0.20');
      await server.close();
      writeServices({ '10.96.0.20:80': [{ ip: '10.1.0.21', port: 80, meshed: false }] });
      await until(() => store.get('10.96.0.20:80')?.[0]?.ip === '10.1.0.21', 'store changed');
      // While the injector is down, the last endpoints keep serving.
      expect(d.lookup('10.96.0.20:80')?.[0]?.ip).toBe('10.1.0.20');
      await start();
      await until(() => d.lookup('10.96.0.20:80')?.[0]?.ip === '10.1.0.21', 'resynced', 10_000);
    } finally {
      d.close();
    }
  });

  it('refuses a request without a valid destination (400), and a bad file keeps the last map', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      https
        .get(
          {
            host: '127.0.0.1',
            port,
            path: `${CA_PATHS.discovery}?dest=nope`,
            ca: root.certPem,
            checkServerIdentity: () => undefined,
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .on('error', reject);
    });
    expect(status).toBe(400);
    const before = store.get('10.96.0.20:80');
    writeFileSync(file, '{"services": {"bad": 1}}');
    await new Promise((r) => setTimeout(r, 300));
    expect(store.get('10.96.0.20:80')).toEqual(before);
  });
});
