/**
 * The capture rule set, as data: a pure function of the options (STYLE #1). Rules are written
 * in the canonical form iptables-save prints them in, so the apply step can compare them with
 * what a namespace already holds. docs/init.md walks through every rule and why it is there.
 */
import { isIPv6 } from 'node:net';
import { INBOUND_PASSTHROUGH_SOURCE, PORTS } from '../contract.js';
import type { InitOptions } from './options.js';

/** Remora's own nat chains. Cleanup removes exactly these and the jumps to them. */
export const CHAINS = Object.freeze({
  /** Entered from PREROUTING: decides which inbound TCP goes to the inbound listener. */
  inbound: 'REMORA_INBOUND',
  /** REDIRECT to the inbound port. */
  inRedirect: 'REMORA_IN_REDIRECT',
  /** Entered from OUTPUT: decides which locally sent TCP goes to the outbound listener. */
  output: 'REMORA_OUTPUT',
  /** REDIRECT to the outbound port. */
  redirect: 'REMORA_REDIRECT',
});
export const CHAIN_NAMES: readonly string[] = Object.freeze(Object.values(CHAINS));

export type Family = 'ipv4' | 'ipv6';

/**
 * The proxy's inbound passthrough source (contract) as a host match: traffic from it over lo is
 * never captured again, which breaks the loop inbound → app → OUTPUT → inbound.
 */
const PASSTHROUGH: Readonly<Record<Family, string>> = Object.freeze({
  ipv4: `${INBOUND_PASSTHROUGH_SOURCE.ipv4}/32`,
  ipv6: `${INBOUND_PASSTHROUGH_SOURCE.ipv6}/128`,
});

/** The loopback range: never the pod's own IP, so the proxy's traffic to it is never re-captured. */
const LOOPBACK: Readonly<Record<Family, string>> = Object.freeze({ ipv4: '127.0.0.0/8', ipv6: '::1/128' });

export interface FamilyRules {
  readonly family: Family;
  /** Our chains, created (or flushed when present) by the restore input. */
  readonly chains: readonly string[];
  /** Rules of our chains, in order, as `-A CHAIN ...` lines in iptables-save form. */
  readonly rules: readonly string[];
  /** Rules in built-in chains that jump to ours, as `-A BUILTIN ...` lines. */
  readonly jumps: readonly string[];
}

export interface RuleSet {
  readonly ipv4: FamilyRules;
  /** Absent with --no-ipv6. */
  readonly ipv6?: FamilyRules;
}

/**
 * Inbound ports that are never redirected whatever the flags say: the tunnel, health and metrics
 * listeners are reached directly; the admin and outbound listeners must not become reachable from
 * off the pod through the inbound forward to 127.0.0.1:<port>; the inbound port itself is a no-op.
 */
export function reservedInboundPorts(opts: InitOptions): number[] {
  return [
    ...new Set([PORTS.tunnel, PORTS.health, PORTS.metrics, PORTS.admin, opts.outboundPort, opts.inboundPort]),
  ];
}

function familyOf(cidr: string): Family {
  return isIPv6(cidr.slice(0, cidr.indexOf('/'))) ? 'ipv6' : 'ipv4';
}

function dport(port: number): string {
  return `-p tcp -m tcp --dport ${port}`;
}

export function buildFamilyRules(opts: InitOptions, family: Family): FamilyRules {
  const { inbound, inRedirect, output, redirect } = CHAINS;
  const rules: string[] = [];
  const add = (chain: string, spec: string): void => {
    rules.push(`-A ${chain} ${spec}`);
  };

  add(inRedirect, `-p tcp -j REDIRECT --to-ports ${opts.inboundPort}`);
  add(redirect, `-p tcp -j REDIRECT --to-ports ${opts.outboundPort}`);

  // Inbound: exclusions first, so they win over an include list.
  const excludedIn = [...new Set([...reservedInboundPorts(opts), ...opts.excludeInboundPorts])];
  for (const p of excludedIn) add(inbound, `${dport(p)} -j RETURN`);
  if (opts.includeInboundPorts === '*') add(inbound, `-p tcp -j ${inRedirect}`);
  else for (const p of opts.includeInboundPorts) add(inbound, `${dport(p)} -j ${inRedirect}`);

  // Outbound. 1) The proxy's inbound side delivering to the pod IP from the passthrough source.
  add(output, `-s ${PASSTHROUGH[family]} -o lo -j RETURN`);
  // 2) The proxy connecting to the pod's own IP over lo (the app called a service that resolves
  //    to this very pod): treat it as inbound, with the same port rules as traffic from outside.
  const owners = [`--uid-owner ${opts.proxyUid}`, `--gid-owner ${opts.proxyGid}`];
  for (const o of owners) add(output, `! -d ${LOOPBACK[family]} -o lo -m owner ${o} -j ${inbound}`);
  // 3) Everything else the proxy sends is never captured (no loop back into itself).
  for (const o of owners) add(output, `-m owner ${o} -j RETURN`);
  // 4) The app's own loopback traffic (127.0.0.0/8, ::1, or its pod IP, all routed over lo).
  add(output, `-o lo -j RETURN`);
  for (const p of opts.excludeOutboundPorts) add(output, `${dport(p)} -j RETURN`);
  for (const c of opts.excludeOutboundCidrs) if (familyOf(c) === family) add(output, `-d ${c} -j RETURN`);
  if (opts.includeOutboundCidrs === '*') add(output, `-j ${redirect}`);
  else
    for (const c of opts.includeOutboundCidrs)
      if (familyOf(c) === family) add(output, `-d ${c} -j ${redirect}`);

  return Object.freeze({
    family,
    chains: Object.freeze([inbound, inRedirect, output, redirect]),
    rules: Object.freeze(rules),
    jumps: Object.freeze([`-A PREROUTING -p tcp -j ${inbound}`, `-A OUTPUT -p tcp -j ${output}`]),
  });
}

/** The whole rule set for the options: IPv4 always, IPv6 unless --no-ipv6. */
export function buildRuleSet(opts: InitOptions): RuleSet {
  const ipv4 = buildFamilyRules(opts, 'ipv4');
  return Object.freeze(opts.ipv6 ? { ipv4, ipv6: buildFamilyRules(opts, 'ipv6') } : { ipv4 });
}
