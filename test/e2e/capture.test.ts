// The sidecar carries real traffic: pod A runs remora-init, remora-proxy as UID/GID 1337 and an
// app (HTTP + TCP echo) as UID 1000; pod B runs the same apps without a proxy. Through real
// iptables capture in real network namespaces, every path of DESIGN §2 is checked by what
// arrives where and by the proxy's own counters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INBOUND_PASSTHROUGH_SOURCE, METRICS } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, eventually, httpJson, natTable, sumMetric, tcpExchange } from './harness/index.js';
import type { Identity, Pod } from './harness/index.js';
import { PROXY_IDENTITY, proxyMetrics, runInit, startProxy } from './harness/remora.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv', 'ss'],
});

const APP: Identity = { uid: 1000, gid: 1000 };
const HTTP_PORT = 8080;
const ECHO_PORT = 9000;

interface Reply {
  server: string;
  url: string;
  remote: string;
}

type Direction = 'inbound' | 'outbound';

describe.skipIf(skip !== undefined)(`capture through remora-proxy in namespaces ${skip ?? ''}`, () => {
  let h: Harness;
  let a: Pod;
  let b: Pod;

  async function counters(): Promise<Record<Direction, { opened: number; requests: number }>> {
    const s = await proxyMetrics(h, a);
    const of = (direction: Direction) => ({
      opened: sumMetric(s, METRICS.tcpOpened, { direction }),
      requests: sumMetric(s, METRICS.requestsTotal, { direction }),
    });
    return { inbound: of('inbound'), outbound: of('outbound') };
  }

  /** Connections accepted in `direction` whose first bytes were detected as `protocol`. */
  async function openedAs(direction: Direction, protocol: 'http1' | 'opaque'): Promise<number> {
    return sumMetric(await proxyMetrics(h, a), METRICS.tcpOpened, { direction, protocol });
  }

  /** Waits until the counter of `direction` has moved by at least `by` from `before`; returns it. */
  async function movedBy(direction: Direction, key: 'opened' | 'requests', before: number, by: number) {
    const c = await eventually(
      `${direction} ${key} +${by}`,
      counters,
      (c) => c[direction][key] >= before + by,
    );
    return c[direction][key] - before;
  }

  /**
   * Runs `traffic` that must NOT be captured, then one captured control connection (app → B),
   * and waits for the control to be counted: had `traffic` been captured, it would have been
   * accepted, and counted, before the control.
   */
  async function expectNotCaptured(traffic: () => Promise<void>): Promise<void> {
    const before = await counters();
    await traffic();
    expect(await httpJson<Reply>(h, a, `http://${b.ip}:${HTTP_PORT}/control`, APP)).toMatchObject({
      server: 'b',
    });
    expect(await movedBy('outbound', 'opened', before.outbound.opened, 1)).toBe(1);
    const after = await counters();
    expect(after.inbound.opened).toBe(before.inbound.opened);
  }

  beforeAll(async () => {
    h = Harness.create();
    a = h.addPod('a');
    b = h.addPod('b');
    await runInit(h, a);
    await startProxy(h, a);
    await h.startAgent(a, 'http-server', [String(HTTP_PORT)], { as: APP });
    await h.startAgent(a, 'echo-server', [String(ECHO_PORT)], { as: APP });
    await h.startAgent(b, 'http-server', [String(HTTP_PORT)], { as: APP });
    await h.startAgent(b, 'echo-server', [String(ECHO_PORT)], { as: APP });
  });
  afterAll(() => h.teardown());

  it('the app’s outbound HTTP to another pod goes through the proxy and arrives', async () => {
    const before = await counters();
    const http1 = await openedAs('outbound', 'http1');
    const reply = await httpJson<Reply>(h, a, `http://${b.ip}:${HTTP_PORT}/out`, APP);
    expect(reply).toEqual({ server: 'b', method: 'GET', url: '/out', remote: a.ip });
    expect(await movedBy('outbound', 'opened', before.outbound.opened, 1)).toBe(1);
    expect(await openedAs('outbound', 'http1')).toBe(http1 + 1);
    expect(await movedBy('outbound', 'requests', before.outbound.requests, 1)).toBe(1);
    expect((await counters()).inbound).toEqual(before.inbound);
  });

  it('the app’s outbound opaque TCP to another pod goes through the proxy and arrives', async () => {
    const before = await counters();
    const opaque = await openedAs('outbound', 'opaque');
    expect(await tcpExchange(h, a, b.ip, ECHO_PORT, 'hello over tcp', APP)).toEqual({
      ok: true,
      data: 'hello over tcp',
    });
    expect(await movedBy('outbound', 'opened', before.outbound.opened, 1)).toBe(1);
    expect(await openedAs('outbound', 'opaque')).toBe(opaque + 1);
  });

  it('inbound HTTP and TCP from another pod go through the proxy to the app', async () => {
    const before = await counters();
    const reply = await httpJson<Reply>(h, b, `http://${a.ip}:${HTTP_PORT}/in`);
    // The app sees the proxy's connection to its pod IP from the passthrough source, not B's address.
    expect(reply).toMatchObject({ server: 'a', url: '/in', remote: INBOUND_PASSTHROUGH_SOURCE.ipv4 });
    expect(await movedBy('inbound', 'opened', before.inbound.opened, 1)).toBe(1);
    expect(await movedBy('inbound', 'requests', before.inbound.requests, 1)).toBe(1);
    expect(await tcpExchange(h, b, a.ip, ECHO_PORT, 'inbound bytes')).toEqual({
      ok: true,
      data: 'inbound bytes',
    });
    expect(await movedBy('inbound', 'opened', before.inbound.opened, 2)).toBe(2);
  });

  it('the proxy connecting to its own pod IP takes the inbound path to the app', async () => {
    const before = await counters();
    const reply = await httpJson<Reply>(h, a, `http://${a.ip}:${HTTP_PORT}/self`, PROXY_IDENTITY);
    expect(reply).toMatchObject({ server: 'a', url: '/self', remote: INBOUND_PASSTHROUGH_SOURCE.ipv4 });
    expect(await movedBy('inbound', 'opened', before.inbound.opened, 1)).toBe(1);
  });

  it('traffic of UID 1337 is not looped back into the proxy', async () => {
    await expectNotCaptured(async () => {
      expect(
        await httpJson<Reply>(h, a, `http://${b.ip}:${HTTP_PORT}/uid1337`, PROXY_IDENTITY),
      ).toMatchObject({
        server: 'b',
        remote: a.ip,
      });
      expect(await tcpExchange(h, a, b.ip, ECHO_PORT, 'gid', { uid: 1001, gid: PROXY_IDENTITY.gid })).toEqual(
        {
          ok: true,
          data: 'gid',
        },
      );
    });
  });

  it('the app’s loopback traffic to itself is not captured', async () => {
    await expectNotCaptured(async () => {
      expect(await httpJson<Reply>(h, a, `http://127.0.0.1:${HTTP_PORT}/lo`, APP)).toMatchObject({
        server: 'a',
        remote: '127.0.0.1',
      });
      expect(await httpJson<Reply>(h, a, `http://${a.ip}:${HTTP_PORT}/own-ip`, APP)).toMatchObject({
        server: 'a',
        remote: a.ip,
      });
      expect(await tcpExchange(h, a, '127.0.0.1', ECHO_PORT, 'lo', APP)).toEqual({ ok: true, data: 'lo' });
    });
  });

  it('re-running remora-init changes nothing; --cleanup leaves no Remora rule and traffic flows directly', async () => {
    const before = [await natTable(h, a), await natTable(h, a, 'ip6tables-save')];
    await runInit(h, a);
    expect([await natTable(h, a), await natTable(h, a, 'ip6tables-save')]).toEqual(before);

    await runInit(h, a, ['--cleanup']);
    expect(await natTable(h, a)).not.toContain('REMORA');
    expect(await natTable(h, a, 'ip6tables-save')).not.toContain('REMORA');
    const c0 = await counters();
    expect(await httpJson<Reply>(h, a, `http://${b.ip}:${HTTP_PORT}/direct`, APP)).toMatchObject({
      server: 'b',
    });
    expect(await httpJson<Reply>(h, b, `http://${a.ip}:${HTTP_PORT}/direct`)).toMatchObject({ remote: b.ip });
    expect(await counters()).toEqual(c0);
  });
});
