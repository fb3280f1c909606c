import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS } from '../../../proxy/src/init/options.js';
import type { InitOptions } from '../../../proxy/src/init/options.js';
import { CHAIN_NAMES, buildRuleSet } from '../../../proxy/src/init/rules.js';
import { PORTS, PROXY_UID } from '../../../proxy/src/contract.js';

const opts = (o: Partial<InitOptions>): InitOptions => ({ ...DEFAULT_OPTIONS, ...o });

/** The rule set of a bare remora-init, IPv4, written out by hand as the reviewable reference. */
const DEFAULT_V4 = [
  '-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
  '-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
  '-A REMORA_INBOUND -p tcp -m tcp --dport 15008 -j RETURN',
  '-A REMORA_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
  '-A REMORA_INBOUND -p tcp -m tcp --dport 15090 -j RETURN',
  '-A REMORA_INBOUND -p tcp -m tcp --dport 15000 -j RETURN',
  '-A REMORA_INBOUND -p tcp -m tcp --dport 15001 -j RETURN',
  '-A REMORA_INBOUND -p tcp -m tcp --dport 15006 -j RETURN',
  '-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT',
  '-A REMORA_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
  '-A REMORA_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner --uid-owner 1337 -j REMORA_INBOUND',
  '-A REMORA_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner --gid-owner 1337 -j REMORA_INBOUND',
  '-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN',
  '-A REMORA_OUTPUT -m owner --gid-owner 1337 -j RETURN',
  '-A REMORA_OUTPUT -o lo -j RETURN',
  '-A REMORA_OUTPUT -j REMORA_REDIRECT',
];

describe('buildRuleSet', () => {
  it('default: all inbound and outbound TCP, proxy UID and GID excluded, loopback rules', () => {
    const rs = buildRuleSet(DEFAULT_OPTIONS);
    expect(rs.ipv4.rules).toEqual(DEFAULT_V4);
    expect(rs.ipv4.chains).toEqual(CHAIN_NAMES);
    expect(rs.ipv4.jumps).toEqual([
      '-A PREROUTING -p tcp -j REMORA_INBOUND',
      '-A OUTPUT -p tcp -j REMORA_OUTPUT',
    ]);
  });

  it('default IPv6 differs only in the loopback and passthrough addresses', () => {
    const rs = buildRuleSet(DEFAULT_OPTIONS);
    const expected = DEFAULT_V4.map((r) =>
      r.replace('127.0.0.6/32', '::6/128').replace('127.0.0.0/8', '::1/128'),
    );
    expect(rs.ipv6?.rules).toEqual(expected);
    expect(rs.ipv6?.jumps).toEqual(rs.ipv4.jumps);
  });

  it('--no-ipv6 produces no IPv6 rule set', () => {
    expect(buildRuleSet(opts({ ipv6: false })).ipv6).toBeUndefined();
  });

  it('tunnel, health, metrics and admin ports are never captured inbound, even when included', () => {
    const rs = buildRuleSet(opts({ includeInboundPorts: [80, PORTS.health, PORTS.tunnel] }));
    const inbound = rs.ipv4.rules.filter((r) => r.startsWith('-A REMORA_INBOUND'));
    for (const p of [PORTS.tunnel, PORTS.health, PORTS.metrics, PORTS.admin]) {
      expect(
        inbound.indexOf(`-A REMORA_INBOUND -p tcp -m tcp --dport ${p} -j RETURN`),
      ).toBeGreaterThanOrEqual(0);
    }
    // The RETURNs come first, so the include rules for 15020 and 15008 never fire.
    const firstCapture = inbound.findIndex((r) => r.endsWith('-j REMORA_IN_REDIRECT'));
    expect(inbound.slice(firstCapture)).toEqual([
      '-A REMORA_INBOUND -p tcp -m tcp --dport 80 -j REMORA_IN_REDIRECT',
      '-A REMORA_INBOUND -p tcp -m tcp --dport 15020 -j REMORA_IN_REDIRECT',
      '-A REMORA_INBOUND -p tcp -m tcp --dport 15008 -j REMORA_IN_REDIRECT',
    ]);
    expect(inbound).not.toContain('-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT');
  });

  it('include inbound ports: only those are redirected; an empty list captures no inbound port', () => {
    const some = buildRuleSet(opts({ includeInboundPorts: [8080, 9090] })).ipv4.rules;
    expect(some.filter((r) => r.endsWith('-j REMORA_IN_REDIRECT'))).toEqual([
      '-A REMORA_INBOUND -p tcp -m tcp --dport 8080 -j REMORA_IN_REDIRECT',
      '-A REMORA_INBOUND -p tcp -m tcp --dport 9090 -j REMORA_IN_REDIRECT',
    ]);
    const none = buildRuleSet(opts({ includeInboundPorts: [] })).ipv4.rules;
    expect(none.filter((r) => r.endsWith('-j REMORA_IN_REDIRECT'))).toEqual([]);
  });

  it('exclude inbound and outbound ports: RETURN before the capture rule', () => {
    const r = buildRuleSet(opts({ excludeInboundPorts: [22], excludeOutboundPorts: [5432, 6379] })).ipv4
      .rules;
    const i22 = r.indexOf('-A REMORA_INBOUND -p tcp -m tcp --dport 22 -j RETURN');
    expect(i22).toBeGreaterThan(-1);
    expect(i22).toBeLessThan(r.indexOf('-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT'));
    const out = r.filter((x) => x.startsWith('-A REMORA_OUTPUT'));
    expect(out.slice(-3)).toEqual([
      '-A REMORA_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN',
      '-A REMORA_OUTPUT -p tcp -m tcp --dport 6379 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ]);
  });

  it('CIDRs go to the rule set of their family; include lists replace the catch-all', () => {
    const rs = buildRuleSet(
      opts({
        includeOutboundCidrs: ['10.0.0.0/8', '2001:db8::/32'],
        excludeOutboundCidrs: ['10.96.0.0/12', 'fd00::/8'],
      }),
    );
    const tail = (rules: readonly string[]): string[] =>
      rules.slice(rules.indexOf('-A REMORA_OUTPUT -o lo -j RETURN') + 1);
    expect(tail(rs.ipv4.rules)).toEqual([
      '-A REMORA_OUTPUT -d 10.96.0.0/12 -j RETURN',
      '-A REMORA_OUTPUT -d 10.0.0.0/8 -j REMORA_REDIRECT',
    ]);
    expect(tail(rs.ipv6?.rules ?? [])).toEqual([
      '-A REMORA_OUTPUT -d fd00::/8 -j RETURN',
      '-A REMORA_OUTPUT -d 2001:db8::/32 -j REMORA_REDIRECT',
    ]);
  });

  it('an include list with only IPv6 CIDRs captures no IPv4 outbound traffic (and the reverse)', () => {
    const rs = buildRuleSet(opts({ includeOutboundCidrs: ['2001:db8::/32'] }));
    expect(rs.ipv4.rules.some((r) => r.endsWith('-j REMORA_REDIRECT'))).toBe(false);
    expect(rs.ipv6?.rules.some((r) => r.endsWith('-j REMORA_REDIRECT'))).toBe(true);
  });

  it('proxy UID, GID and redirect ports come from the options', () => {
    const r = buildRuleSet(opts({ proxyUid: 2000, proxyGid: 3000, inboundPort: 16006, outboundPort: 16001 }))
      .ipv4.rules;
    expect(r).toContain('-A REMORA_OUTPUT -m owner --uid-owner 2000 -j RETURN');
    expect(r).toContain('-A REMORA_OUTPUT -m owner --gid-owner 3000 -j RETURN');
    expect(r).toContain('-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006');
    expect(r).toContain('-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 16001');
    expect(r).toContain('-A REMORA_INBOUND -p tcp -m tcp --dport 16001 -j RETURN');
    expect(r.join('\n')).not.toContain(String(PROXY_UID));
  });

  it('the proxy is excluded before any capture rule; the app loopback RETURN before the redirect', () => {
    const r = buildRuleSet(DEFAULT_OPTIONS).ipv4.rules;
    const uid = r.indexOf('-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN');
    const gid = r.indexOf('-A REMORA_OUTPUT -m owner --gid-owner 1337 -j RETURN');
    const lo = r.indexOf('-A REMORA_OUTPUT -o lo -j RETURN');
    const redirect = r.indexOf('-A REMORA_OUTPUT -j REMORA_REDIRECT');
    expect(Math.max(uid, gid)).toBeLessThan(lo);
    expect(lo).toBeLessThan(redirect);
  });

  it('is pure: same options, same rules; frozen output', () => {
    expect(buildRuleSet(DEFAULT_OPTIONS)).toEqual(buildRuleSet(DEFAULT_OPTIONS));
    expect(Object.isFrozen(buildRuleSet(DEFAULT_OPTIONS).ipv4.rules)).toBe(true);
  });
});
