// remora-init's rules in a real network namespace, with probe listeners standing in for the
// proxy on the redirect ports: each probe counts the connections the rules send to it, so these
// tests show what is captured and what is not, independent of the proxy engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PORTS } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, httpJson, httpRequest, natTable, tcpExchange } from './harness/index.js';
import type { Identity, Pod } from './harness/index.js';
import { BIN, PROXY_IDENTITY, runInit } from './harness/remora.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore', 'setpriv', 'ss'],
});

const APP: Identity = { uid: 1000, gid: 1000 };
const APP_PORT = 8080;
const OTHER_PORT = 8081;
const ECHO_PORT = 9000;

interface Reply {
  server: string;
  remote: string;
}

describe.skipIf(skip !== undefined)(`remora-init rules in a namespace, probe listeners ${skip ?? ''}`, () => {
  let h: Harness;
  let a: Pod;
  let b: Pod;

  /** Connections the probe on `port` in pod A has counted (read over lo, never captured). */
  async function count(port: number): Promise<number> {
    const r = await httpRequest(h, a, `http://127.0.0.1:${port}/count`);
    if (!r.ok) throw new Error(`probe ${port}: ${r.error}`);
    return Number(r.body);
  }

  /** Runs `traffic`, returns its result and how many connections each probe counted meanwhile. */
  async function counted<T>(
    traffic: () => Promise<T>,
  ): Promise<{ result: T; outbound: number; inbound: number }> {
    const [o0, i0] = [await count(PORTS.outbound), await count(PORTS.inbound)];
    const result = await traffic();
    return {
      result,
      outbound: (await count(PORTS.outbound)) - o0,
      inbound: (await count(PORTS.inbound)) - i0,
    };
  }

  beforeAll(async () => {
    h = Harness.create();
    a = h.addPod('a');
    b = h.addPod('b');
    await runInit(h, a);
    // Probes bound to '::' take IPv4 and IPv6, like the proxy's listeners would.
    await h.startAgent(a, 'probe', [String(PORTS.outbound)], { as: PROXY_IDENTITY });
    await h.startAgent(a, 'probe', [String(PORTS.inbound)], { as: PROXY_IDENTITY });
    await h.startAgent(a, 'http-server', [String(APP_PORT)], { as: APP });
    await h.startAgent(a, 'http-server', [String(OTHER_PORT)], { as: APP });
    // A stand-in on the health port: inbound traffic to it must arrive untouched.
    await h.startAgent(a, 'http-server', [String(PORTS.health)], { as: PROXY_IDENTITY });
    await h.startAgent(b, 'http-server', [String(APP_PORT)], { as: APP });
    await h.startAgent(b, 'echo-server', [String(ECHO_PORT)], { as: APP });
  });
  afterAll(() => h.teardown());

  it('the app’s outbound TCP, IPv4 and IPv6, is redirected to the outbound port', async () => {
    const v4 = await counted(() => httpJson<Reply>(h, a, `http://${b.ip}:${APP_PORT}/`, APP));
    expect(v4.result.server).toBe('probe-a');
    expect(v4).toMatchObject({ outbound: 1, inbound: 0 });
    const v6 = await counted(() => httpJson<Reply>(h, a, `http://[${b.ip6}]:${APP_PORT}/`, APP));
    expect(v6.result.server).toBe('probe-a');
    expect(v6).toMatchObject({ outbound: 1, inbound: 0 });
  });

  it('traffic of UID 1337, and of GID 1337 under another UID, is not captured', async () => {
    const byUid = await counted(() => httpJson<Reply>(h, a, `http://${b.ip}:${APP_PORT}/`, PROXY_IDENTITY));
    expect(byUid).toMatchObject({ result: { server: 'b', remote: a.ip }, outbound: 0, inbound: 0 });
    const byGid = await counted(() => tcpExchange(h, a, b.ip, ECHO_PORT, 'gid', { uid: 1001, gid: 1337 }));
    expect(byGid).toMatchObject({ result: { ok: true, data: 'gid' }, outbound: 0, inbound: 0 });
  });

  it('the app’s loopback traffic to itself (127.0.0.1 and its own pod IP) is not captured', async () => {
    const lo = await counted(() => httpJson<Reply>(h, a, `http://127.0.0.1:${APP_PORT}/`, APP));
    expect(lo).toMatchObject({ result: { server: 'a', remote: '127.0.0.1' }, outbound: 0, inbound: 0 });
    const own = await counted(() => httpJson<Reply>(h, a, `http://${a.ip}:${APP_PORT}/`, APP));
    expect(own).toMatchObject({ result: { server: 'a', remote: a.ip }, outbound: 0, inbound: 0 });
  });

  it('inbound TCP from another pod, IPv4 and IPv6, is redirected to the inbound port', async () => {
    const v4 = await counted(() => httpJson<Reply>(h, b, `http://${a.ip}:${APP_PORT}/`));
    expect(v4).toMatchObject({ result: { server: 'probe-a' }, outbound: 0, inbound: 1 });
    const v6 = await counted(() => httpJson<Reply>(h, b, `http://[${a.ip6}]:${APP_PORT}/`));
    expect(v6).toMatchObject({ result: { server: 'probe-a' }, outbound: 0, inbound: 1 });
  });

  it('the health port is never captured inbound', async () => {
    const health = await counted(() => httpJson<Reply>(h, b, `http://${a.ip}:${PORTS.health}/healthz/ready`));
    expect(health).toMatchObject({ result: { server: 'a', remote: b.ip }, outbound: 0, inbound: 0 });
  });

  it('the proxy connecting to its own pod IP over lo is treated as inbound (reaches the inbound port)', async () => {
    const r = await counted(() => httpJson<Reply>(h, a, `http://${a.ip}:${APP_PORT}/`, PROXY_IDENTITY));
    expect(r).toMatchObject({ result: { server: 'probe-a' }, outbound: 0, inbound: 1 });
    // ... but not for a port that is never captured inbound.
    const health = await counted(() =>
      httpJson<Reply>(h, a, `http://${a.ip}:${PORTS.health}/`, PROXY_IDENTITY),
    );
    expect(health).toMatchObject({ result: { server: 'a' }, outbound: 0, inbound: 0 });
  });

  it('re-running remora-init changes nothing, IPv4 and IPv6', async () => {
    const before = [await natTable(h, a), await natTable(h, a, 'ip6tables-save')];
    await runInit(h, a);
    await runInit(h, a);
    expect([await natTable(h, a), await natTable(h, a, 'ip6tables-save')]).toEqual(before);
    expect(before[0]?.match(/-j REMORA_INBOUND$/gm)).toHaveLength(3); // PREROUTING + 2 proxy-to-pod-IP
    expect(before[0]?.match(/^-A OUTPUT .*-j REMORA_OUTPUT$/gm)).toHaveLength(1);
  });

  it('new flags replace the rules in place: include ports, exclude ports and CIDRs', async () => {
    await runInit(h, a, [
      `--include-inbound-ports=${APP_PORT}`,
      `--exclude-outbound-ports=${ECHO_PORT}`,
      `--exclude-outbound-cidrs=${b.ip}/32`,
    ]);
    const table = await natTable(h, a);
    expect(table.match(/^-A PREROUTING .*REMORA/gm)).toHaveLength(1);
    // Inbound: 8080 captured, 8081 not.
    expect(await counted(() => httpJson<Reply>(h, b, `http://${a.ip}:${APP_PORT}/`))).toMatchObject({
      inbound: 1,
    });
    const other = await counted(() => httpJson<Reply>(h, b, `http://${a.ip}:${OTHER_PORT}/`));
    expect(other).toMatchObject({ result: { server: 'a', remote: b.ip }, inbound: 0 });
    // Outbound: B's IPv4 address excluded, its IPv6 address still captured; port 9000 excluded.
    const v4 = await counted(() => httpJson<Reply>(h, a, `http://${b.ip}:${APP_PORT}/`, APP));
    expect(v4).toMatchObject({ result: { server: 'b' }, outbound: 0 });
    const v6 = await counted(() => httpJson<Reply>(h, a, `http://[${b.ip6}]:${APP_PORT}/`, APP));
    expect(v6).toMatchObject({ result: { server: 'probe-a' }, outbound: 1 });
    const echo6 = await counted(() => tcpExchange(h, a, b.ip6, ECHO_PORT, 'x', APP));
    expect(echo6).toMatchObject({ result: { ok: true, data: 'x' }, outbound: 0 });
    await runInit(h, a); // back to the defaults for whatever runs next
  });

  it('--cleanup removes every Remora chain and jump and nothing else; traffic flows directly again', async () => {
    // A rule of someone else's in the same table must survive.
    const foreign = await h.exec(a, 'iptables', [
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'udp',
      '--dport',
      '5353',
      '-j',
      'RETURN',
    ]);
    expect(foreign.code).toBe(0);
    await runInit(h, a, ['--cleanup']);
    const v4 = await natTable(h, a);
    const v6 = await natTable(h, a, 'ip6tables-save');
    expect(v4).not.toContain('REMORA');
    expect(v6).not.toContain('REMORA');
    expect(v4).toContain('-A OUTPUT -p udp -m udp --dport 5353 -j RETURN');
    const direct = await counted(() => httpJson<Reply>(h, a, `http://${b.ip}:${APP_PORT}/`, APP));
    expect(direct).toMatchObject({ result: { server: 'b' }, outbound: 0, inbound: 0 });
    await runInit(h, a, ['--cleanup']); // nothing left: still succeeds
  });
});

describe.skipIf(skip !== undefined)(`remora-init backends in a namespace ${skip ?? ''}`, () => {
  let h: Harness;
  let c: Pod;
  beforeAll(() => {
    h = Harness.create();
    c = h.addPod('c');
  });
  afterAll(() => h.teardown());

  it('bad flags or --dry-run: the binary touches nothing (exit 2 with every error; dry-run prints)', async () => {
    const before = await natTable(h, c);
    const bad = await h.exec(c, process.execPath, [
      BIN.init,
      '--inbound-port=0',
      '--exclude-outbound-cidrs=x',
      '--y',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--inbound-port: "0" is not a port');
    // One rule set for values (issue 16, proxy/src/values.ts): init, the webhook and policy say the same.
    expect(bad.stderr).toContain('--exclude-outbound-cidrs: "x" is not an IP address or CIDR');
    expect(bad.stderr).toContain('--y: unknown flag');
    const dry = await runInit(h, c, ['--dry-run']);
    expect(dry.stdout).toContain('-A OUTPUT -p tcp -j REMORA_OUTPUT');
    expect(await natTable(h, c)).toBe(before);
    expect(before).not.toContain('REMORA');
  });

  it('legacy on request; then auto-detection follows the backend that holds rules; cleanup', async () => {
    await runInit(h, c, ['--iptables-backend=legacy']);
    const legacy = await natTable(h, c, 'iptables-legacy-save');
    expect(legacy).toContain('-A OUTPUT -p tcp -j REMORA_OUTPUT');
    const detected = await runInit(h, c);
    expect(detected.stderr).toContain('iptables backend: legacy (detected)');
    expect(await natTable(h, c, 'iptables-legacy-save')).toBe(legacy);
    expect(await natTable(h, c, 'iptables-nft-save')).not.toContain('REMORA');
    await runInit(h, c, ['--cleanup']);
    expect(await natTable(h, c, 'iptables-legacy-save')).not.toContain('REMORA');
    expect(await natTable(h, c, 'ip6tables-legacy-save')).not.toContain('REMORA');
  });
});
