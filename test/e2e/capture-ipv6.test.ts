// remora-init captures IPv6 as well (its default), so the proxy must accept on IPv6 too: the
// supervisor holds [::]:15006 and [::1]:15001 beside the IPv4 listeners and hands them to the
// engine. Pod A runs remora-init, remora-proxy as 1337 and the apps; pod B the apps only. The
// app's IPv6 connections, out and in, must arrive through the proxy (its counters move) instead
// of being refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INBOUND_PASSTHROUGH_SOURCE, METRICS } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, eventually, httpJson, sumMetric, tcpExchange } from './harness/index.js';
import type { Identity, Pod } from './harness/index.js';
import { proxyMetrics, runInit, startProxy } from './harness/remora.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore', 'setpriv', 'ss'],
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

describe.skipIf(skip !== undefined)(`IPv6 capture through remora-proxy in namespaces ${skip ?? ''}`, () => {
  let h: Harness;
  let a: Pod;
  let b: Pod;

  async function opened(direction: Direction): Promise<number> {
    return sumMetric(await proxyMetrics(h, a), METRICS.tcpOpened, { direction });
  }

  async function movedBy(direction: Direction, before: number, by: number): Promise<number> {
    const n = await eventually(
      `${direction} opened +${by}`,
      () => opened(direction),
      (n) => n >= before + by,
    );
    return n - before;
  }

  beforeAll(async () => {
    h = Harness.create();
    a = h.addPod('a');
    b = h.addPod('b');
    await runInit(h, a);
    await startProxy(h, a);
    for (const pod of [a, b]) {
      await h.startAgent(pod, 'http-server', [String(HTTP_PORT)], { as: APP });
      await h.startAgent(pod, 'echo-server', [String(ECHO_PORT)], { as: APP });
    }
  });
  afterAll(() => h.teardown());

  it('the app’s outbound HTTP and TCP over IPv6 go through the proxy and arrive', async () => {
    const before = await opened('outbound');
    const reply = await httpJson<Reply>(h, a, `http://[${b.ip6}]:${HTTP_PORT}/out6`, APP);
    expect(reply).toMatchObject({ server: 'b', url: '/out6', remote: a.ip6 });
    expect(await tcpExchange(h, a, b.ip6, ECHO_PORT, 'hello over ipv6', APP)).toEqual({
      ok: true,
      data: 'hello over ipv6',
    });
    expect(await movedBy('outbound', before, 2)).toBe(2);
  });

  it('inbound HTTP over IPv6 from another pod goes through the proxy to the app', async () => {
    const before = await opened('inbound');
    const reply = await httpJson<Reply>(h, b, `http://[${a.ip6}]:${HTTP_PORT}/in6`);
    // The proxy's own connection to the app, not B's address: it went through the proxy.
    expect(reply).toMatchObject({ server: 'a', url: '/in6', remote: INBOUND_PASSTHROUGH_SOURCE.ipv4 });
    expect(await movedBy('inbound', before, 1)).toBe(1);
  });

  it('a pod without IPv6 still gets a working proxy: the IPv6 listeners are skipped with a log line', async () => {
    const c = h.addPod('c');
    for (const key of ['net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.lo.disable_ipv6']) {
      const r = await h.exec(c, 'sysctl', ['-w', `${key}=1`]);
      expect(r.code, r.stderr).toBe(0);
    }
    // The pod has no IPv6, so remora-init leaves ip6tables alone too.
    await runInit(h, c, ['--no-ipv6']);
    const proxy = await startProxy(h, c);
    await h.startAgent(c, 'http-server', [String(HTTP_PORT)], { as: APP });
    const reply = await httpJson<Reply>(h, b, `http://${c.ip}:${HTTP_PORT}/v4-only`);
    expect(reply).toMatchObject({ server: 'c', url: '/v4-only', remote: INBOUND_PASSTHROUGH_SOURCE.ipv4 });
    expect(proxy.output()).toContain('listener_skipped');
  });
});
