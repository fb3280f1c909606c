/**
 * Outlier ejection. With real sockets: an engine's outbound listener reaches a discovery service
 * of three plain endpoints on loopback through the mesh; failing endpoints (500s, a closed port)
 * are ejected, get no traffic while out, come back, and never more than the allowed share is
 * out. And the ejection bookkeeping itself (OutlierGroup) with a test clock.
 */
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { METRICS } from '../../../proxy/src/contract.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { OutlierGroup, maxEjected, outlierSettings } from '../../../proxy/src/policy/outlier.js';
import { sample, scrape, until } from '../harness.js';
import {
  TestPolicy,
  closedPort,
  events,
  get,
  outboundPolicy,
  startMeshProxy,
  startUpstream,
} from './upstreams.js';
import type { MeshProxy, Upstream } from './upstreams.js';

const SERVICE = '127.0.0.220:80';
const logTime = (l: Record<string, unknown>): number => Date.parse(l.time as string);

let ups: Upstream[] = [];
let px: MeshProxy | undefined;

afterEach(async () => {
  await px?.close();
  px = undefined;
  await Promise.all(ups.map((u) => u.close()));
  ups = [];
});

async function setup(statuses: number[], outlierDetection: Record<string, unknown>): Promise<MeshProxy> {
  ups = await Promise.all(statuses.map((s) => startUpstream(s)));
  px = await startMeshProxy(
    SERVICE,
    ups.map((u) => u.port),
    new TestPolicy(outboundPolicy(SERVICE, { outlierDetection })),
  );
  return px;
}

async function ejectedGauge(p: MeshProxy): Promise<number | undefined> {
  return sample(await scrape(p.metricsPort), METRICS.outlierEjected);
}

describe('outlier ejection over a discovery service of three endpoints', () => {
  it('an endpoint answering 500 is ejected after consecutive5xx, gets no traffic while out, then comes back', async () => {
    const p = await setup([200, 200, 500], { consecutive5xx: 3, baseEjectionMs: 1500 });
    const bad = ups[2] as Upstream;
    // Until the third 500 (each request is sequential: nothing is in flight at the ejection).
    for (let i = 0; i < 200 && events(p.logs, 'outlier_ejected').length === 0; i++) await get(p.outboundPort);
    const [ejected] = events(p.logs, 'outlier_ejected');
    expect(ejected).toMatchObject({ endpoint: bad.key, reason: 'consecutive_5xx', ms: 1500, level: 'warn' });
    expect(bad.hits).toHaveLength(3);
    expect(await ejectedGauge(p)).toBe(1);
    expect(sample(await scrape(p.metricsPort), METRICS.outlierEjections, { reason: 'consecutive_5xx' })).toBe(
      1,
    );
    // While out: every answer is a 200 from the other two.
    // Each answer with the time it came: the request that ends the ejection may be answered (by
    // the returned endpoint) before its log line has come through the pipe.
    const during: { status: number; at: number }[] = [];
    while (events(p.logs, 'outlier_returned').length === 0) {
      const { status } = await get(p.outboundPort);
      during.push({ status, at: Date.now() });
    }
    const [returned] = events(p.logs, 'outlier_returned');
    expect(returned).toMatchObject({ endpoint: bad.key, level: 'warn' });
    expect(during.length).toBeGreaterThan(0);
    const from = logTime(ejected as Record<string, unknown>);
    const to = logTime(returned as Record<string, unknown>);
    expect(bad.hits.filter((t) => t > from && t < to)).toEqual([]);
    expect(during.filter((d) => d.at < to && d.status !== 200)).toEqual([]);
    // Out no more, unless the request that ended the ejection already went to it on probation
    // and its 500 ejected it again (nothing is in flight here, so the two readings agree).
    const probed = bad.hits.filter((t) => t >= to).length;
    expect(await ejectedGauge(p)).toBe(probed > 0 ? 1 : 0);
    // Back in: it gets traffic again, and still failing it is out again at its first 500
    // (probation), for twice as long (its second ejection in a row).
    for (let i = 0; i < 200 && events(p.logs, 'outlier_ejected').length < 2; i++) await get(p.outboundPort);
    expect(bad.hits.filter((t) => t >= to)).toHaveLength(1);
    expect(events(p.logs, 'outlier_ejected')[1]).toMatchObject({ endpoint: bad.key, ms: 3000 });
  });

  it('maxEjectedPercent 50 of three: with two endpoints failing only one is out at a time', async () => {
    const p = await setup([200, 500, 500], {
      consecutive5xx: 2,
      baseEjectionMs: 60_000,
      maxEjectedPercent: 50,
    });
    for (let i = 0; i < 200 && events(p.logs, 'outlier_ejected').length === 0; i++) await get(p.outboundPort);
    for (let i = 0; i < 40; i++) await get(p.outboundPort);
    const ejections = events(p.logs, 'outlier_ejected');
    expect(ejections).toHaveLength(1);
    expect(await ejectedGauge(p)).toBe(1);
    // The other failing endpoint stays in and keeps taking requests after the ejection.
    const out = ups.find((u) => u.key === ejections[0]?.endpoint) as Upstream;
    const stillIn = ups.find((u, i) => i > 0 && u !== out) as Upstream;
    const at = logTime(ejections[0] as Record<string, unknown>);
    expect(out.hits.filter((t) => t > at)).toEqual([]);
    expect(stillIn.hits.filter((t) => t > at).length).toBeGreaterThan(0);
  });

  it('a closed port is ejected after consecutive connect failures; then every request succeeds', async () => {
    const dead = await closedPort();
    ups = await Promise.all([startUpstream(), startUpstream()]);
    px = await startMeshProxy(
      SERVICE,
      [ups[0]?.port as number, ups[1]?.port as number, dead],
      new TestPolicy(
        outboundPolicy(SERVICE, {
          outlierDetection: { consecutiveConnectFailures: 2, baseEjectionMs: 60_000 },
        }),
      ),
    );
    const p = px;
    const answers: string[] = [];
    for (let i = 0; i < 200 && events(p.logs, 'outlier_ejected').length === 0; i++)
      answers.push((await get(p.outboundPort)).code ?? 'ok');
    expect(events(p.logs, 'outlier_ejected')[0]).toMatchObject({
      endpoint: `127.0.0.1:${dead}`,
      reason: 'consecutive_connect_failures',
    });
    expect(answers.filter((c) => c !== 'ok')).toEqual(['RMR_UPSTREAM_CONNECT', 'RMR_UPSTREAM_CONNECT']);
    const after = await Promise.all(Array.from({ length: 20 }, () => get(p.outboundPort)));
    expect(after.filter((a) => a.status !== 200)).toEqual([]);
  });

  it('opaque TCP to the service skips an endpoint ejected by HTTP answers', async () => {
    const p = await setup([200, 200, 500], { consecutive5xx: 2, baseEjectionMs: 60_000 });
    const bad = ups[2] as Upstream;
    for (let i = 0; i < 200 && events(p.logs, 'outlier_ejected').length === 0; i++) await get(p.outboundPort);
    expect(events(p.logs, 'outlier_ejected')[0]).toMatchObject({ endpoint: bad.key });
    const accepted = ups.map((u) => u.accepted);
    // Not HTTP: the outbound listener relays the bytes; each connection picks an endpoint.
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(p.outboundPort, '127.0.0.1', () => s.write('\x16opaque bytes\n'));
        s.on('data', () => undefined);
        s.on('error', reject);
        s.on('close', () => resolve());
        s.setTimeout(5000, () => s.destroy(new Error('no answer to the opaque bytes')));
      });
    }
    const opened = ups.map((u, i) => u.accepted - (accepted[i] as number));
    expect(opened[2]).toBe(0);
    expect((opened[0] as number) + (opened[1] as number)).toBe(20);
  });

  it('without outlierDetection in the section nobody is ejected', async () => {
    ups = await Promise.all([startUpstream(), startUpstream(500)]);
    px = await startMeshProxy(
      SERVICE,
      ups.map((u) => u.port),
      new TestPolicy(outboundPolicy(SERVICE, { circuitBreaker: { maxRequests: 100 } })),
    );
    const p = px;
    for (let i = 0; i < 30; i++) await get(p.outboundPort);
    expect(events(p.logs, 'outlier_ejected')).toEqual([]);
    await until(() => (ups[1]?.hits.length ?? 0) > 0, 'the failing endpoint still taking requests');
  });
});

describe('OutlierGroup bookkeeping (test clock)', () => {
  let clock = 0;
  const metrics = PolicyMetrics.of(new Registry());
  const group = new OutlierGroup('10.96.0.1:80', {
    metrics,
    log: pino({ level: 'silent' }),
    now: () => clock,
  });
  const eps = ['a', 'b', 'c', 'd'].map((k) => ({ key: k }));
  afterAll(() => group.close());

  it('the ejected share: at least one, never all, 0 % none', () => {
    expect([1, 2, 3, 4, 10].map((n) => maxEjected(n, 50))).toEqual([0, 1, 1, 2, 5]);
    expect([2, 3, 10].map((n) => maxEjected(n, 10))).toEqual([1, 1, 1]);
    expect([2, 3].map((n) => maxEjected(n, 100))).toEqual([1, 2]);
    expect(maxEjected(5, 0)).toBe(0);
  });

  it('defaults as documented in types.ts; a 0 threshold turns that kind off', () => {
    expect(outlierSettings({})).toEqual({
      consecutive5xx: 5,
      consecutiveConnectFailures: 3,
      baseEjectionMs: 30_000,
      maxEjectedPercent: 50,
    });
    group.settings = outlierSettings({ consecutive5xx: 0, consecutiveConnectFailures: 1 });
    group.available(eps);
    const h = group.health('a');
    for (let i = 0; i < 10; i++) h.failed('5xx');
    expect(h.ejected).toBe(false);
  });

  it('a success resets the consecutive count', () => {
    group.settings = outlierSettings({ consecutive5xx: 3, baseEjectionMs: 1000 });
    const h = group.health('b');
    h.failed('5xx');
    h.failed('5xx');
    h.succeeded();
    h.failed('5xx');
    h.failed('5xx');
    expect(h.ejected).toBe(false);
    h.failed('5xx');
    expect(h.ejected).toBe(true);
    expect(group.available(eps).map((e) => e.key)).toEqual(['a', 'c', 'd']);
  });

  it('the n-th ejection in a row lasts n x base; a whole base period back in ends the streak', async () => {
    group.settings = outlierSettings({ consecutive5xx: 2, baseEjectionMs: 20, maxEjectedPercent: 100 });
    const h = group.health('c');
    const ms: number[] = [];
    const eject = async (): Promise<void> => {
      h.failed('5xx');
      if (!h.ejected) h.failed('5xx');
      expect(h.ejected).toBe(true);
      ms.push(20 * h.ejections);
      await until(() => !h.ejected, 'c back in');
    };
    await eject(); // 2 failures
    expect(h.probation).toBe(true);
    await eject(); // probation: the first failure
    clock += 1000; // back in for longer than base before the next failure
    h.succeeded();
    expect(h.probation).toBe(false);
    await eject();
    expect(ms).toEqual([20, 40, 20]);
  });
});
