import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../proxy/src/errors.js';
import { DEFAULT_OPTIONS, normalizeCidr, parseInitArgs } from '../../../proxy/src/init/options.js';
import { PORTS, PROXY_GID, PROXY_UID } from '../../../proxy/src/contract.js';

function errorsOf(argv: string[]): readonly string[] {
  try {
    parseInitArgs(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).errors;
  }
  throw new Error(`expected ${argv.join(' ')} to be rejected`);
}

describe('parseInitArgs', () => {
  it('a bare remora-init captures all inbound and outbound TCP with the contract defaults', () => {
    const args = parseInitArgs([]);
    expect(args.mode).toBe('apply');
    expect(args.backend).toBe('auto');
    expect(args.options).toEqual(DEFAULT_OPTIONS);
    expect(args.options).toMatchObject({
      proxyUid: PROXY_UID,
      proxyGid: PROXY_GID,
      inboundPort: PORTS.inbound,
      outboundPort: PORTS.outbound,
      includeInboundPorts: '*',
      includeOutboundCidrs: '*',
      ipv6: true,
    });
    expect(Object.isFrozen(args.options)).toBe(true);
  });

  it('reads every flag, in both --flag value and --flag=value forms, lists comma-separated', () => {
    const args = parseInitArgs([
      '--proxy-uid=2000',
      '--proxy-gid',
      '2001',
      '--inbound-port',
      '16006',
      '--outbound-port=16001',
      '--include-inbound-ports',
      '80, 8080,80',
      '--exclude-inbound-ports=22',
      '--exclude-outbound-ports',
      '3306,5432',
      '--include-outbound-cidrs',
      '10.0.0.0/8,FD00::/8',
      '--exclude-outbound-cidrs=10.96.0.1,169.254.169.254/32',
      '--no-ipv6',
      '--iptables-backend',
      'legacy',
    ]);
    expect(args.backend).toBe('legacy');
    expect(args.options).toEqual({
      proxyUid: 2000,
      proxyGid: 2001,
      inboundPort: 16006,
      outboundPort: 16001,
      includeInboundPorts: [80, 8080],
      excludeInboundPorts: [22],
      excludeOutboundPorts: [3306, 5432],
      includeOutboundCidrs: ['10.0.0.0/8', 'fd00::/8'],
      excludeOutboundCidrs: ['10.96.0.1/32', '169.254.169.254/32'],
      ipv6: false,
    });
  });

  it('"*" means all; an empty list means none', () => {
    const args = parseInitArgs(['--include-inbound-ports', '*', '--include-outbound-cidrs=']);
    expect(args.options.includeInboundPorts).toBe('*');
    expect(args.options.includeOutboundCidrs).toEqual([]);
  });

  it('modes: --dry-run, --cleanup, --help', () => {
    expect(parseInitArgs(['--dry-run']).mode).toBe('dry-run');
    expect(parseInitArgs(['--cleanup']).mode).toBe('cleanup');
    expect(parseInitArgs(['--help']).mode).toBe('help');
  });

  it.each([
    [['--inbound-port', 'abc'], '--inbound-port: "abc" is not a port (1-65535)'],
    [['--outbound-port', '0'], '--outbound-port: "0" is not a port (1-65535)'],
    [['--exclude-inbound-ports', '80,70000'], '--exclude-inbound-ports: "70000" is not a port (1-65535)'],
    [['--exclude-outbound-ports', '-1'], '--exclude-outbound-ports: "-1" is not a port (1-65535)'],
    [['--exclude-outbound-ports'], '--exclude-outbound-ports: missing value'],
    [['--include-inbound-ports', '8o'], '--include-inbound-ports: "8o" is not a port (1-65535)'],
    [
      ['--exclude-outbound-cidrs', '10.0.0.0/33'],
      '--exclude-outbound-cidrs: "10.0.0.0/33" has a prefix length above 32',
    ],
    [
      ['--include-outbound-cidrs', '300.1.1.1'],
      '--include-outbound-cidrs: "300.1.1.1" is not an IP address or CIDR',
    ],
    [
      ['--include-outbound-cidrs', 'fd00::/129'],
      '--include-outbound-cidrs: "fd00::/129" has a prefix length above 128',
    ],
    [['--proxy-uid', '-5'], '--proxy-uid: "-5" is not a numeric id (0-4294967294)'],
    [['--proxy-gid', '--dry-run'], '--proxy-gid: missing value'],
    [['--proxy-gid', '1.5'], '--proxy-gid: "1.5" is not a numeric id (0-4294967294)'],
    [['--proxy-uid', '4294967295'], '--proxy-uid: "4294967295" is not a numeric id (0-4294967294)'],
    [['--frobnicate'], '--frobnicate: unknown flag'],
    [['--frobnicate=1'], '--frobnicate: unknown flag'],
    [['extra'], '"extra": unexpected argument (remora-init takes only flags)'],
    [['--inbound-port', '15001'], '--inbound-port and --outbound-port must differ (both 15001)'],
    [['--iptables-backend', 'xtables'], '--iptables-backend: "xtables" is not one of auto, legacy, nft'],
    [['--dry-run', '--cleanup'], '--dry-run and --cleanup cannot be combined'],
    [['--proxy-uid', '1', '--proxy-uid', '2'], '--proxy-uid: given more than once'],
    [['--ipv6', '--no-ipv6'], '--no-ipv6: --ipv6/--no-ipv6 given more than once'],
  ])('rejects %j naming the flag and value', (argv, message) => {
    expect(errorsOf(argv)).toEqual([message]);
  });

  it('reports every bad flag at once, not just the first', () => {
    const errors = errorsOf([
      '--inbound-port',
      'x',
      '--outbound-port',
      '99999',
      '--exclude-outbound-cidrs',
      'nope,10.0.0.0/8,also-nope',
      '--what',
    ]);
    expect(errors).toEqual([
      '--what: unknown flag',
      '--inbound-port: "x" is not a port (1-65535)',
      '--outbound-port: "99999" is not a port (1-65535)',
      '--exclude-outbound-cidrs: "nope" is not an IP address or CIDR',
      '--exclude-outbound-cidrs: "also-nope" is not an IP address or CIDR',
    ]);
  });
});

describe('normalizeCidr', () => {
  it.each([
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['192.168.7.9', '192.168.7.9/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['255.255.255.255/31', '255.255.255.254/31'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['::1', '::1/128'],
  ])('%s → %s (the form iptables-save prints)', (raw, want) => {
    expect(normalizeCidr(raw)).toBe(want);
  });

  it.each(['', '/8', '10.0.0.0/', '10.0.0.0/a', '10.0.0/8', 'fe80::%eth0/64', '10.0.0.0/8/8'])(
    'rejects %j',
    (raw) => {
      expect(normalizeCidr(raw)).toBeUndefined();
    },
  );
});
