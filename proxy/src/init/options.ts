/**
 * remora-init's options and their parsing from command-line flags. Parsing is pure: it returns
 * frozen options or throws one ConfigError that lists every bad flag, so nothing is applied
 * when any flag is wrong (DESIGN §8).
 */
import { PORTS, PROXY_GID, PROXY_UID } from '../contract.js';
import { ConfigError } from '../errors.js';
import { parseCidr, parsePort as parseSharedPort, splitList } from '../values.js';

/** `'*'` means "every port" / "every destination". */
export type All = '*';

export interface InitOptions {
  /** UID of the proxy; its traffic is never captured (DESIGN §2). */
  readonly proxyUid: number;
  /** GID of the proxy; excluded as well, so a process of that group is never captured. */
  readonly proxyGid: number;
  /** Where inbound TCP is redirected (the proxy's inbound listener). */
  readonly inboundPort: number;
  /** Where outbound TCP is redirected (the proxy's outbound listener). */
  readonly outboundPort: number;
  /** Inbound destination ports captured; `'*'` = all TCP ports. */
  readonly includeInboundPorts: All | readonly number[];
  /** Inbound destination ports never captured (wins over the include list). */
  readonly excludeInboundPorts: readonly number[];
  /** Outbound destination ports never captured. */
  readonly excludeOutboundPorts: readonly number[];
  /** Outbound destinations captured; `'*'` = everything. IPv4 and IPv6 CIDRs may be mixed. */
  readonly includeOutboundCidrs: All | readonly string[];
  /** Outbound destinations never captured (wins over the include list). */
  readonly excludeOutboundCidrs: readonly string[];
  /** Also write the IPv6 rule set (ip6tables). */
  readonly ipv6: boolean;
}

/** Defaults from DESIGN §2: a bare `remora-init` captures all inbound and outbound TCP. */
export const DEFAULT_OPTIONS: InitOptions = Object.freeze({
  proxyUid: PROXY_UID,
  proxyGid: PROXY_GID,
  inboundPort: PORTS.inbound,
  outboundPort: PORTS.outbound,
  includeInboundPorts: '*',
  excludeInboundPorts: Object.freeze([]),
  excludeOutboundPorts: Object.freeze([]),
  includeOutboundCidrs: '*',
  excludeOutboundCidrs: Object.freeze([]),
  ipv6: true,
});

export const BACKENDS = Object.freeze(['auto', 'legacy', 'nft'] as const);
export type BackendChoice = (typeof BACKENDS)[number];

export type Mode = 'apply' | 'dry-run' | 'cleanup' | 'help';

export interface InitArgs {
  readonly mode: Mode;
  readonly backend: BackendChoice;
  readonly options: InitOptions;
}

type ValueFlag =
  | '--proxy-uid'
  | '--proxy-gid'
  | '--inbound-port'
  | '--outbound-port'
  | '--include-inbound-ports'
  | '--exclude-inbound-ports'
  | '--exclude-outbound-ports'
  | '--include-outbound-cidrs'
  | '--exclude-outbound-cidrs'
  | '--iptables-backend';

const VALUE_FLAGS: readonly ValueFlag[] = [
  '--proxy-uid',
  '--proxy-gid',
  '--inbound-port',
  '--outbound-port',
  '--include-inbound-ports',
  '--exclude-inbound-ports',
  '--exclude-outbound-ports',
  '--include-outbound-cidrs',
  '--exclude-outbound-cidrs',
  '--iptables-backend',
];
const BOOLEAN_FLAGS = ['--ipv6', '--no-ipv6', '--dry-run', '--cleanup', '--help', '-h'] as const;

/** Largest id the kernel accepts; (uid_t)-1 is reserved for "no change". */
const MAX_ID = 4294967294;

export const USAGE = `Usage: remora-init [flags]

Writes the nat rules that send a pod's TCP traffic through remora-proxy, atomically
(iptables-restore --noflush), for IPv4 and IPv6. Running it again changes nothing.

  --proxy-uid N                   proxy UID, never captured (default ${PROXY_UID})
  --proxy-gid N                   proxy GID, never captured (default ${PROXY_GID})
  --inbound-port P                inbound redirect port (default ${PORTS.inbound})
  --outbound-port P               outbound redirect port (default ${PORTS.outbound})
  --include-inbound-ports LIST    inbound ports captured, '*' = all (default *)
  --exclude-inbound-ports LIST    inbound ports never captured
  --exclude-outbound-ports LIST   outbound ports never captured
  --include-outbound-cidrs LIST   outbound CIDRs captured, '*' = all (default *)
  --exclude-outbound-cidrs LIST   outbound CIDRs never captured
  --ipv6 / --no-ipv6              also write the IPv6 rules (default --ipv6)
  --iptables-backend B            auto | legacy | nft (default auto: detected)
  --dry-run                       print the rules, touch nothing
  --cleanup                       remove Remora's chains and jump rules, nothing else
  --help                          this text

Lists are comma-separated. Ports ${PORTS.tunnel} (tunnel), ${PORTS.health} (health), ${PORTS.metrics} (metrics),
${PORTS.admin} (admin) and the redirect ports themselves are never captured inbound.`;

function dedupe<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

function parsePort(flag: string, raw: string, errors: string[]): number | undefined {
  const p = parseSharedPort(raw);
  if (!p.ok) {
    errors.push(`${flag}: "${raw}" ${p.reason}`);
    return undefined;
  }
  return p.value;
}

function parseId(flag: string, raw: string, errors: string[]): number | undefined {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n > MAX_ID) {
    errors.push(`${flag}: "${raw}" is not a numeric id (0-${MAX_ID})`);
    return undefined;
  }
  return n;
}

function parsePortList(flag: string, raw: string, errors: string[]): number[] {
  const ports: number[] = [];
  for (const item of splitList(raw)) {
    const p = parsePort(flag, item, errors);
    if (p !== undefined) ports.push(p);
  }
  return dedupe(ports);
}

/**
 * Returns the CIDR in the form iptables-save prints (network address, explicit prefix), or
 * undefined. A bare address is a host route (/32 or /128). The rule is the shared one
 * (proxy/src/values.ts), so the webhook admits exactly the CIDRs this accepts.
 */
export function normalizeCidr(raw: string): string | undefined {
  const c = parseCidr(raw);
  return c.ok ? c.value : undefined;
}

function parseCidrList(flag: string, raw: string, errors: string[]): string[] {
  const cidrs: string[] = [];
  for (const item of splitList(raw)) {
    const c = parseCidr(item);
    if (!c.ok) errors.push(`${flag}: "${item}" ${c.reason}`);
    else cidrs.push(c.value);
  }
  return dedupe(cidrs);
}

/**
 * Parses remora-init's argv (without node and script). Accepts `--flag value` and `--flag=value`.
 * Throws ConfigError naming every bad flag and value.
 */
export function parseInitArgs(argv: readonly string[]): InitArgs {
  const errors: string[] = [];
  const values = new Map<ValueFlag, string>();
  const seen = new Set<string>();
  let ipv6 = DEFAULT_OPTIONS.ipv6;
  let dryRun = false;
  let cleanup = false;
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq !== -1 ? arg.slice(0, eq) : arg;
    if ((VALUE_FLAGS as readonly string[]).includes(name)) {
      const flag = name as ValueFlag;
      let value: string | undefined;
      if (eq !== -1 && name !== arg) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length && !(argv[i + 1] ?? '').startsWith('--')) value = argv[++i];
      if (value === undefined) {
        errors.push(`${flag}: missing value`);
        continue;
      }
      if (seen.has(flag)) errors.push(`${flag}: given more than once`);
      seen.add(flag);
      values.set(flag, value);
    } else if ((BOOLEAN_FLAGS as readonly string[]).includes(arg)) {
      if (arg === '--ipv6' || arg === '--no-ipv6') {
        if (seen.has('ipv6')) errors.push(`${arg}: --ipv6/--no-ipv6 given more than once`);
        seen.add('ipv6');
        ipv6 = arg === '--ipv6';
      } else if (arg === '--dry-run') dryRun = true;
      else if (arg === '--cleanup') cleanup = true;
      else help = true;
    } else if (arg.startsWith('-')) {
      errors.push(`${name}: unknown flag`);
    } else {
      errors.push(`"${arg}": unexpected argument (remora-init takes only flags)`);
    }
  }

  const get = (flag: ValueFlag): string | undefined => values.get(flag);
  const idOr = (flag: ValueFlag, dflt: number): number => {
    const raw = get(flag);
    return raw === undefined ? dflt : (parseId(flag, raw, errors) ?? dflt);
  };
  const portOr = (flag: ValueFlag, dflt: number): number => {
    const raw = get(flag);
    return raw === undefined ? dflt : (parsePort(flag, raw.trim(), errors) ?? dflt);
  };
  const portsOrAll = (flag: ValueFlag, dflt: All | readonly number[]): All | readonly number[] => {
    const raw = get(flag);
    if (raw === undefined) return dflt;
    return raw.trim() === '*' ? '*' : parsePortList(flag, raw, errors);
  };
  const cidrsOrAll = (flag: ValueFlag, dflt: All | readonly string[]): All | readonly string[] => {
    const raw = get(flag);
    if (raw === undefined) return dflt;
    return raw.trim() === '*' ? '*' : parseCidrList(flag, raw, errors);
  };
  const ports = (flag: ValueFlag): readonly number[] => {
    const raw = get(flag);
    return raw === undefined ? [] : parsePortList(flag, raw, errors);
  };
  const cidrs = (flag: ValueFlag): readonly string[] => {
    const raw = get(flag);
    return raw === undefined ? [] : parseCidrList(flag, raw, errors);
  };

  const options: InitOptions = Object.freeze({
    proxyUid: idOr('--proxy-uid', DEFAULT_OPTIONS.proxyUid),
    proxyGid: idOr('--proxy-gid', DEFAULT_OPTIONS.proxyGid),
    inboundPort: portOr('--inbound-port', DEFAULT_OPTIONS.inboundPort),
    outboundPort: portOr('--outbound-port', DEFAULT_OPTIONS.outboundPort),
    includeInboundPorts: portsOrAll('--include-inbound-ports', DEFAULT_OPTIONS.includeInboundPorts),
    excludeInboundPorts: ports('--exclude-inbound-ports'),
    excludeOutboundPorts: ports('--exclude-outbound-ports'),
    includeOutboundCidrs: cidrsOrAll('--include-outbound-cidrs', DEFAULT_OPTIONS.includeOutboundCidrs),
    excludeOutboundCidrs: cidrs('--exclude-outbound-cidrs'),
    ipv6,
  });

  if (get('--inbound-port') !== undefined || get('--outbound-port') !== undefined) {
    if (options.inboundPort === options.outboundPort) {
      errors.push(`--inbound-port and --outbound-port must differ (both ${options.inboundPort})`);
    }
  }
  const rawBackend = get('--iptables-backend');
  let backend: BackendChoice = 'auto';
  if (rawBackend !== undefined) {
    if ((BACKENDS as readonly string[]).includes(rawBackend)) backend = rawBackend as BackendChoice;
    else errors.push(`--iptables-backend: "${rawBackend}" is not one of ${BACKENDS.join(', ')}`);
  }
  if (dryRun && cleanup) errors.push('--dry-run and --cleanup cannot be combined');

  if (errors.length > 0) throw new ConfigError(errors);
  const mode: Mode = help ? 'help' : cleanup ? 'cleanup' : dryRun ? 'dry-run' : 'apply';
  return Object.freeze({ mode, backend, options });
}
