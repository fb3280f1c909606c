/**
 * A noisy app against the proxy's discovery: every distinct `ip:port` the app dialled opened a
 * stream to the injector that was never closed (a scanner opened hundreds). Against a real
 * injector CA listener on loopback: subscriptions are capped (CLOCK eviction: what is in use
 * stays), unsubscribed when idle, and new ones are budgeted, so an address that is not a
 * service costs little; both sides' counts stay bounded. The streams present the workload
 * certificate, and wait for it when there is none yet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRoot } from '../../../injector/src/ca/root.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { DiscoveryStore } from '../../../injector/src/discovery/store.js';
import { discoveryRoute } from '../../../injector/src/discovery/stream.js';
import { DEFAULT_MAX_DESTINATIONS, StreamDiscovery } from '../../../proxy/src/discovery/stream.js';
import type { StreamDiscoveryOptions } from '../../../proxy/src/discovery/stream.js';
import { createLogger } from '../../../proxy/src/log.js';
import { startLoopbackCa, workloadCert } from '../../helpers/workload-cert.js';

const TD = 'mesh.test';
const root = newRoot(TD);
const proxy = workloadCert(root, `spiffe://${TD}/ns/shop/sa/scanner`);
const store = new DiscoveryStore();
let server: CaServer;

beforeAll(async () => {
  store.replace(new Map([['10.96.0.10:80', [{ ip: '10.1.0.3', port: 8080, meshed: false }]]]));
  server = await startLoopbackCa(root, TD, { routes: [discoveryRoute(store)] });
});
afterAll(() => server.close());

function client(o: Partial<StreamDiscoveryOptions> = {}): StreamDiscovery {
  return new StreamDiscovery({
    address: { host: '127.0.0.1', port: server.port },
    caBundle: root.certPem,
    serverIdentity: `spiffe://${TD}/ns/remora-system/sa/remora-injector`,
    credentials: proxy.credentials,
    log: createLogger('silent'),
    backoff: { baseMs: 50, maxMs: 200 },
    ...o,
  });
}

const dest = (i: number): string => `10.97.${Math.floor(i / 250)}.${i % 250}:80`;

describe('discovery subscriptions of a noisy app', () => {
  it('300 dialled destinations from one proxy stay bounded on both sides; the one in use stays subscribed', async () => {
    const d = client({ subscribeRate: { perSecond: 1, burst: 1000 } });
    try {
      expect((await d.pending('10.96.0.10:80'))?.[0]?.key).toBe('10.1.0.3:8080');
      for (let i = 0; i < 300; i++) {
        expect(await d.pending(dest(i))).toBeUndefined(); // not a service
        expect(d.lookup('10.96.0.10:80')?.length).toBe(1); // the app keeps using its real service
      }
      expect(d.subscribed()).toHaveLength(DEFAULT_MAX_DESTINATIONS);
      expect(d.subscribed()).toContain('10.96.0.10:80');
      expect(d.subscribed()).not.toContain(dest(0));
      expect(d.subscribed()).toContain(dest(299));
      expect(d.stats.evictedForRoom).toBe(301 - DEFAULT_MAX_DESTINATIONS);
      // The injector's side follows: evicted subscriptions close their streams.
      await expect.poll(() => server.streams.open, { timeout: 10_000 }).toBe(DEFAULT_MAX_DESTINATIONS);
      expect(store.subscriptions()).toBe(DEFAULT_MAX_DESTINATIONS);
    } finally {
      d.close();
    }
    await expect.poll(() => server.streams.open, { timeout: 10_000 }).toBe(0);
  });

  it('a destination unused for a sweep interval is unsubscribed; one in use is kept', async () => {
    const d = client();
    try {
      await d.pending('10.96.0.10:80');
      await d.pending(dest(1));
      await d.pending(dest(2));
      await expect.poll(() => server.streams.open).toBe(3);
      d.sweep(); // clears the marks of the fresh subscriptions
      d.lookup('10.96.0.10:80');
      d.sweep();
      expect(d.subscribed()).toEqual(['10.96.0.10:80']);
      expect(d.stats.evictedIdle).toBe(2);
      await expect.poll(() => server.streams.open).toBe(1);
      // Dialled again later: subscribed again, answered again.
      expect(await d.pending(dest(1))).toBeUndefined();
      expect(d.subscribed()).toContain(dest(1));
    } finally {
      d.close();
    }
  });

  it('past the subscription budget a new address answers "unknown" at once and opens no stream (injected clock)', async () => {
    let now = 0;
    const d = client({ subscribeRate: { perSecond: 1, burst: 3 }, now: () => now });
    try {
      for (let i = 0; i < 3; i++) await d.pending(dest(10 + i));
      const opened = server.streams.opened;
      expect(d.pending(dest(13))).toBeUndefined(); // synchronous: no wait, no stream
      expect(d.pending(dest(14))).toBeUndefined();
      expect(d.stats.notSubscribed).toBe(2);
      expect(d.subscribed()).not.toContain(dest(13));
      // Already-subscribed destinations are unaffected.
      expect(d.pending(dest(10))).toBeUndefined();
      expect(d.subscribed()).toContain(dest(10));
      expect(server.streams.opened).toBe(opened);
      now += 1000;
      expect(await d.pending(dest(13))).toBeUndefined();
      expect(d.subscribed()).toContain(dest(13));
    } finally {
      d.close();
    }
  });

  it('before its first certificate the stream waits instead of dialling without one', async () => {
    let release: () => void = () => undefined;
    const later = new Promise<void>((r) => (release = r));
    let ready = false;
    const d = client({
      credentials: {
        current: () => (ready ? proxy : undefined),
        first: () => later,
      },
    });
    try {
      const answer = d.pending('10.96.0.10:80');
      const refusedBefore = server.streams.refused.no_client_certificate ?? 0;
      const openedBefore = server.streams.opened;
      await new Promise((r) => setTimeout(r, 100));
      expect(server.streams.opened).toBe(openedBefore);
      ready = true;
      release();
      expect((await answer)?.[0]?.key).toBe('10.1.0.3:8080');
      expect(server.streams.refused.no_client_certificate ?? 0).toBe(refusedBefore);
    } finally {
      d.close();
    }
  });
});
