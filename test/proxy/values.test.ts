/**
 * One table of values (value, kind, accepted as X or refused with the reason), run through every
 * consumer of that kind: the shared validator (proxy/src/values.ts), the webhook's annotation
 * parser and mesh config, remora-init's flags, the proxy's config, the policy parser and the
 * CA's config. Every consumer must accept exactly the values the validator accepts (with the
 * same canonical value, where the consumer exposes it) and refuse the rest naming the value.
 * The webhook admitting what remora-init then refuses in the pod is the bug this guards
 * (issue 16: `fe80::1%eth0/64`; and `10.0.0.1`, refused by the webhook only).
 */
import { describe, expect, it } from 'vitest';
import { parseCaConfig } from '../../injector/src/ca/config.js';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from '../../injector/src/config/mesh.js';
import type { MeshConfig } from '../../injector/src/config/mesh.js';
import { parseInjectorConfig } from '../../injector/src/config.js';
import { parseServices } from '../../injector/src/discovery/static.js';
import { parseAnnotations } from '../../injector/src/inject/annotations.js';
import type { InjectOptions } from '../../injector/src/inject/annotations.js';
import { parseConfig } from '../../proxy/src/config/config.js';
import type { ProxyConfig } from '../../proxy/src/config/config.js';
import { ENV, INJECTOR_ENV } from '../../proxy/src/contract.js';
import { parseDiscovery } from '../../proxy/src/discovery/static.js';
import { parseInitArgs } from '../../proxy/src/init/options.js';
import type { InitOptions } from '../../proxy/src/init/options.js';
import { parsePolicyDocument } from '../../proxy/src/policy/document.js';
import type { PolicyDocument } from '../../proxy/src/policy/types.js';
import {
  formatPortRange,
  parseBindPort,
  parseCidr,
  parseDnsLabel,
  parseIpAddress,
  parsePort,
  parsePortList,
  parsePortRanges,
  parseSeconds,
  parseSpiffeId,
  parseTrustDomain,
} from '../../proxy/src/values.js';
import type { Parsed, PortRange } from '../../proxy/src/values.js';

type Kind =
  | 'address'
  | 'cidr'
  | 'port'
  | 'bind port'
  | 'port list'
  | 'port ranges'
  | 'drain seconds'
  | 'identity'
  | 'trust domain'
  | 'namespace';

/** What a consumer did with a value: accepted (with the value as it holds it, if it exposes one) or refused. */
type Outcome = { ok: true; value?: unknown } | { ok: false; message: string };
type Consumer = (raw: string) => Outcome;

const errorsOf = (err: unknown): string =>
  ((err as { errors?: readonly string[] }).errors ?? [(err as Error).message]).join('\n');
const attempt = (fn: () => unknown): Outcome => {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    return { ok: false, message: errorsOf(err) };
  }
};
const shared =
  <T>(fn: (raw: string) => Parsed<T>): Consumer =>
  (raw) => {
    const r = fn(raw);
    return r.ok ? r : { ok: false, message: r.reason };
  };

const webhook =
  (key: string, pick: (o: InjectOptions) => unknown): Consumer =>
  (raw) => {
    const r = parseAnnotations({ [key]: raw }, DEFAULT_MESH_CONFIG);
    return r.ok ? { ok: true, value: pick(r.options) } : { ok: false, message: r.errors.join('\n') };
  };
const init =
  (flag: string, pick: (o: InitOptions) => unknown, extra: string[] = []): Consumer =>
  (raw) =>
    attempt(() => pick(parseInitArgs([`${flag}=${raw}`, ...extra]).options));
const proxy =
  (name: string, pick: (c: ProxyConfig) => unknown, wrap = (raw: string) => raw): Consumer =>
  (raw) =>
    attempt(() => pick(parseConfig({ [ENV.podIp]: '10.1.2.3', [name]: wrap(raw) })));
const mesh =
  (yaml: (raw: string) => string, pick: (m: MeshConfig) => unknown): Consumer =>
  (raw) =>
    attempt(() => pick(parseMeshConfig(yaml(raw))));
/** A policy document holding the one policy `policyOf(raw)`; accepted (with its first policy) or refused. */
const policyDoc =
  (
    policyOf: (raw: string) => object,
    pick: (p: PolicyDocument['policies'][number]) => unknown = () => undefined,
  ): Consumer =>
  (raw) =>
    attempt(() =>
      pick(
        parsePolicyDocument(
          JSON.stringify({
            apiVersion: 'remora.dev/v1',
            kind: 'PolicySet',
            policies: [{ name: 'p', ...policyOf(raw) }],
          }),
        ).policies[0] as PolicyDocument['policies'][number],
      ),
    );
/** A policy whose one inbound rule has `source(raw)` as its source. */
const policy = (source: (raw: string) => object): Consumer =>
  policyDoc((raw) => ({
    inbound: [
      { authorization: { default: 'deny', rules: [{ name: 'r', action: 'allow', source: source(raw) }] } },
    ],
  }));
const q = JSON.stringify;
/** A static discovery file (the proxy's and the injector's parsers) with one service, one endpoint. */
const discovery =
  (
    parse: (text: string) => unknown,
    service: (raw: string) => string,
    endpoint: (raw: string) => object,
  ): Consumer =>
  (raw) => {
    const text = q({ services: { [service(raw)]: { endpoints: [endpoint(raw)] } } });
    const r = attempt(() => parse(text));
    return r.ok ? { ok: true } : r;
  };
const meshedAt = (identity: string) => ({ ip: '10.1.0.5', port: 8080, meshed: true, identity });
const ranges = (texts: readonly string[]): PortRange[] =>
  texts.map((t) => {
    const [a, b] = t.split('-').map(Number);
    return [a as number, (b ?? a) as number];
  });

const CONSUMERS: Record<Kind, Record<string, Consumer>> = {
  address: {
    'values.parseIpAddress': shared(parseIpAddress),
    [`proxy ${ENV.podIp}`]: proxy(ENV.podIp, (c) => c.podIp),
    'proxy discovery file endpoint ip': discovery(
      parseDiscovery,
      () => '10.96.0.10:80',
      (raw) => ({ ip: raw, port: 80 }),
    ),
    'injector discovery file endpoint ip': discovery(
      parseServices,
      () => '10.96.0.10:80',
      (raw) => ({ ip: raw, port: 80 }),
    ),
  },
  cidr: {
    'values.parseCidr': shared(parseCidr),
    'webhook exclude-outbound-cidrs': webhook(
      'remora.dev/exclude-outbound-cidrs',
      (o) => o.excludeOutboundCidrs[0],
    ),
    'webhook include-outbound-cidrs': webhook('remora.dev/include-outbound-cidrs', (o) =>
      o.includeOutboundCidrs === '*' ? '*' : o.includeOutboundCidrs[0],
    ),
    'init --exclude-outbound-cidrs': init('--exclude-outbound-cidrs', (o) => o.excludeOutboundCidrs[0]),
    'init --include-outbound-cidrs': init('--include-outbound-cidrs', (o) =>
      o.includeOutboundCidrs === '*' ? '*' : o.includeOutboundCidrs[0],
    ),
    'policy source.cidrs': policy((raw) => ({ cidrs: [raw] })),
  },
  port: {
    'values.parsePort': shared(parsePort),
    'init --inbound-port': init('--inbound-port', (o) => o.inboundPort, ['--outbound-port=1']),
    [`proxy ${ENV.outboundTarget}`]: proxy(
      ENV.outboundTarget,
      (c) => c.outboundTarget?.port,
      (raw) => `ca.example:${raw}`,
    ),
    'proxy discovery file service port': discovery(
      parseDiscovery,
      (raw) => `10.96.0.10:${raw}`,
      () => ({ ip: '10.1.0.5', port: 80 }),
    ),
    'injector discovery file service port': discovery(
      parseServices,
      (raw) => `10.96.0.10:${raw}`,
      () => ({ ip: '10.1.0.5', port: 80 }),
    ),
    'policy outbound destinations': policyDoc(
      (raw) => ({ outbound: [{ destinations: [`10.96.0.10:${raw}`] }] }),
      (p) => Number(p.outbound?.[0]?.destinations?.[0]?.split(':')[1]),
    ),
    'mesh caAddress': mesh(
      (raw) => `caAddress: ${q(`ca.example:${raw}`)}`,
      (m) => Number(m.caAddress.slice(m.caAddress.lastIndexOf(':') + 1)),
    ),
  },
  'bind port': {
    'values.parseBindPort': shared(parseBindPort),
    [`proxy ${ENV.inboundPort}`]: proxy(ENV.inboundPort, (c) => c.inboundPort),
  },
  'port list': {
    'values.parsePortList': shared(parsePortList),
    'webhook exclude-inbound-ports': webhook(
      'remora.dev/exclude-inbound-ports',
      (o) => o.excludeInboundPorts,
    ),
    'webhook exclude-outbound-ports': webhook(
      'remora.dev/exclude-outbound-ports',
      (o) => o.excludeOutboundPorts,
    ),
    'webhook localhost-inbound-ports': webhook(
      'remora.dev/localhost-inbound-ports',
      (o) => o.localhostInboundPorts,
    ),
    'init --exclude-inbound-ports': init('--exclude-inbound-ports', (o) => o.excludeInboundPorts),
    'init --exclude-outbound-ports': init('--exclude-outbound-ports', (o) => o.excludeOutboundPorts),
    [`proxy ${ENV.localhostInboundPorts}`]: proxy(ENV.localhostInboundPorts, (c) => c.localhostInboundPorts),
  },
  'port ranges': {
    'values.parsePortRanges': shared(parsePortRanges),
    'webhook opaque-ports': webhook('remora.dev/opaque-ports', (o) => ranges(o.opaquePorts)),
    [`proxy ${ENV.opaquePorts}`]: proxy(ENV.opaquePorts, (c) => c.opaquePorts),
    [`proxy ${ENV.httpPorts}`]: proxy(ENV.httpPorts, (c) => c.httpPorts),
  },
  'drain seconds': {
    'values.parseSeconds': shared((raw) => parseSeconds(raw, 3600)),
    'webhook drain-seconds': webhook('remora.dev/drain-seconds', (o) => o.drainSeconds),
    'mesh drainSeconds': mesh(
      (raw) => `drainSeconds: ${q(raw)}`,
      (m) => m.drainSeconds,
    ),
    [`proxy ${ENV.drainSeconds}`]: proxy(ENV.drainSeconds, (c) => c.drainSeconds),
  },
  identity: {
    'values.parseSpiffeId': shared((raw) => parseSpiffeId(raw)),
    'policy source.identities': policy((raw) => ({ identities: [raw] })),
    'proxy discovery file identity': discovery(parseDiscovery, () => '10.96.0.10:80', meshedAt),
    'injector discovery file identity': discovery(parseServices, () => '10.96.0.10:80', meshedAt),
  },
  'trust domain': {
    'values.parseTrustDomain': shared(parseTrustDomain),
    'mesh trustDomain': mesh(
      (raw) => `trustDomain: ${q(raw)}`,
      (m) => m.trustDomain,
    ),
    [`proxy ${ENV.trustDomain}`]: proxy(ENV.trustDomain, (c) => c.trustDomain),
    [`CA ${INJECTOR_ENV.trustDomain}`]: (raw) =>
      attempt(
        () => parseCaConfig({ [INJECTOR_ENV.trustDomain]: raw }, { fileExists: () => false }).trustDomain,
      ),
    'policy source.identities (its trust domain)': policy((raw) => ({
      identities: [`spiffe://${raw}/ns/a/sa/b`],
    })),
  },
  namespace: {
    'values.parseDnsLabel': shared(parseDnsLabel),
    'policy source.namespaces': policy((raw) => ({ namespaces: [raw] })),
    [`injector ${INJECTOR_ENV.meshConfigMap} namespace`]: (raw) =>
      attempt(
        () =>
          parseInjectorConfig({ [INJECTOR_ENV.meshConfigMap]: `${raw}/remora-mesh` }, []).meshConfigMap
            .namespace,
      ),
    'mesh namespacePolicies[].namespace': mesh(
      (raw) => `namespacePolicies: [{ namespace: ${q(raw)}, forbidAnnotations: [] }]`,
      (m) => m.namespacePolicies[0]?.namespace,
    ),
  },
};

type Row = [kind: Kind, value: string, expected: { accept: unknown } | { error: string }];
const PREFIX_ABOVE_32 = 'has a prefix length above 32';
const NOT_CIDR = 'is not an IP address or CIDR';
const BAD_PORT = 'is not a port (1-65535)';
const badList = (entry: string) => `must be a comma-separated list of ports 1-65535 (bad entry "${entry}")`;
const badRanges = (entry: string) =>
  `must be a comma-separated list of ports 1-65535 or ranges like 9000-9010 (bad entry "${entry}")`;
const BAD_SECONDS = 'must be a number of seconds 0-3600 (e.g. 5 or 2.5)';
const BAD_TD = 'is not a trust domain (a-z, 0-9, ".", "-", "_", at most 255, alphanumeric ends)';
const BAD_LABEL = 'is not a DNS label (a-z, 0-9, "-", at most 63, alphanumeric ends)';

const TABLE: Row[] = [
  ['address', '10.1.2.3', { accept: '10.1.2.3' }],
  ['address', 'fd00::1', { accept: 'fd00::1' }],
  ['address', 'fe80::1%eth0', { error: 'is not an IP address' }],
  ['address', '010.1.2.3', { error: 'is not an IP address' }],
  ['address', 'pod-a', { error: 'is not an IP address' }],

  ['cidr', '10.0.0.0/8', { accept: '10.0.0.0/8' }],
  ['cidr', '10.1.2.3/8', { accept: '10.0.0.0/8' }],
  // Decided (docs/injector.md): a bare address is a host route, as init and policy read it.
  ['cidr', '10.0.0.1', { accept: '10.0.0.1/32' }],
  ['cidr', '::1', { accept: '::1/128' }],
  ['cidr', 'fd00::/8', { accept: 'fd00::/8' }],
  ['cidr', '2001:DB8::/32', { accept: '2001:db8::/32' }],
  ['cidr', '::ffff:10.0.0.1', { accept: '10.0.0.1/32' }],
  ['cidr', '0.0.0.0/0', { accept: '0.0.0.0/0' }],
  // Decided: a zone means nothing to iptables or to policy; refused at admission, not in the pod.
  ['cidr', 'fe80::1%eth0/64', { error: NOT_CIDR }],
  ['cidr', '10.0.0.0/33', { error: PREFIX_ABOVE_32 }],
  ['cidr', 'fd00::/129', { error: 'has a prefix length above 128' }],
  ['cidr', '300.1.1.1/8', { error: NOT_CIDR }],
  ['cidr', '010.0.0.0/8', { error: NOT_CIDR }],
  ['cidr', '10.0.0.0/08', { error: 'has no valid prefix length' }],
  ['cidr', '10.0.0.0/', { error: 'has no valid prefix length' }],
  [
    'cidr',
    '::ffff:10.0.0.0/104',
    { error: 'an IPv4-mapped address cannot carry a prefix; write the IPv4 CIDR' },
  ],
  ['cidr', 'nope', { error: NOT_CIDR }],

  ['port', '80', { accept: 80 }],
  ['port', '65535', { accept: 65535 }],
  ['port', '08080', { accept: 8080 }],
  ['port', '0', { error: BAD_PORT }],
  ['port', '65536', { error: BAD_PORT }],
  ['port', '-1', { error: BAD_PORT }],
  ['port', '8o', { error: BAD_PORT }],
  ['port', '000080', { error: BAD_PORT }],

  ['bind port', '0', { accept: 0 }],
  ['bind port', '15006', { accept: 15006 }],
  ['bind port', '65536', { error: 'is not a port to listen on (0-65535)' }],
  ['bind port', '1e3', { error: 'is not a port to listen on (0-65535)' }],

  ['port list', '80', { accept: [80] }],
  ['port list', '80,443', { accept: [80, 443] }],
  ['port list', '80, 443,80', { accept: [80, 443] }],
  // Decided: white space separates entries too (the proxy read `80 443` so; now all do).
  ['port list', '80 443', { accept: [80, 443] }],
  ['port list', '80,http', { error: badList('http') }],
  ['port list', '0', { error: badList('0') }],
  ['port list', '65536', { error: badList('65536') }],
  ['port list', '8000-8010', { error: badList('8000-8010') }],

  ['port ranges', '3306', { accept: [[3306, 3306]] }],
  ['port ranges', '09000-9010', { accept: [[9000, 9010]] }],
  [
    'port ranges',
    '3306, 5432 9000-9010',
    {
      accept: [
        [3306, 3306],
        [5432, 5432],
        [9000, 9010],
      ],
    },
  ],
  ['port ranges', '9010-9000', { error: badRanges('9010-9000') }],
  ['port ranges', '0', { error: badRanges('0') }],
  ['port ranges', '70000', { error: badRanges('70000') }],
  ['port ranges', 'mysql', { error: badRanges('mysql') }],
  ['port ranges', '3306;5432', { error: badRanges('3306;5432') }],

  ['drain seconds', '0', { accept: 0 }],
  ['drain seconds', '25', { accept: 25 }],
  // Decided: fractions are seconds too (the proxy drained for 2.5 s; the webhook refused it).
  ['drain seconds', '2.5', { accept: 2.5 }],
  ['drain seconds', '3600', { accept: 3600 }],
  ['drain seconds', '3601', { error: BAD_SECONDS }],
  ['drain seconds', '-5', { error: BAD_SECONDS }],
  ['drain seconds', '1e3', { error: BAD_SECONDS }],
  ['drain seconds', '0x10', { error: BAD_SECONDS }],
  ['drain seconds', 'five', { error: BAD_SECONDS }],

  ['identity', 'spiffe://cluster.local/ns/shop/sa/web', { accept: 'spiffe://cluster.local/ns/shop/sa/web' }],
  [
    'identity',
    'spiffe://cluster.local',
    { error: 'is not a SPIFFE identity (no path after the trust domain)' },
  ],
  [
    'identity',
    'https://cluster.local/ns/a',
    { error: 'is not a SPIFFE identity (must start with "spiffe://")' },
  ],
  [
    'identity',
    'spiffe://Cluster.Local/ns/a',
    { error: 'is not a SPIFFE identity (bad trust domain "Cluster.Local")' },
  ],
  [
    'identity',
    'spiffe://cluster.local/ns/../sa/x',
    {
      error:
        'is not a SPIFFE identity (bad path segment: empty, "." or "..", or a character outside A-Z a-z 0-9 . - _)',
    },
  ],

  ['trust domain', 'cluster.local', { accept: 'cluster.local' }],
  ['trust domain', 'example.org', { accept: 'example.org' }],
  // Decided: SPIFFE-ID §2.1 allows "_"; the CA and the mesh config refused it, policy took it.
  ['trust domain', 'my_mesh.local', { accept: 'my_mesh.local' }],
  ['trust domain', 'Not-Valid', { error: BAD_TD }],
  ['trust domain', '-mesh', { error: BAD_TD }],
  ['trust domain', 'mesh.', { error: BAD_TD }],

  ['namespace', 'shop', { accept: 'shop' }],
  ['namespace', 'a-b1', { accept: 'a-b1' }],
  ['namespace', 'Shop', { error: BAD_LABEL }],
  ['namespace', '-a', { error: BAD_LABEL }],
  ['namespace', 'a.b', { error: BAD_LABEL }],
  ['namespace', 'a'.repeat(64), { error: BAD_LABEL }],
];

describe('one rule set for values: every consumer agrees with the shared validator', () => {
  const cases = TABLE.flatMap(([kind, value, expected]) =>
    Object.entries(CONSUMERS[kind]).map(([consumer, run]) => ({ kind, value, expected, consumer, run })),
  );
  it.each(cases)('$kind $value: $consumer', ({ value, expected, consumer, run }) => {
    const got = run(value);
    if ('accept' in expected) {
      expect(got, `${consumer} refused ${value}: ${got.ok ? '' : got.message}`).toMatchObject({ ok: true });
      if (got.ok && got.value !== undefined) expect(got.value).toEqual(expected.accept);
    } else {
      expect(got.ok, `${consumer} accepted ${value}`).toBe(false);
      if (got.ok) return;
      if (consumer.startsWith('values.')) expect(got.message).toBe(expected.error);
      // Every refusal names the value (as written, or quoted), or for a list its bad entry.
      else {
        const entry = /bad entry "([^"]*)"/.exec(expected.error)?.[1];
        const names = [value, JSON.stringify(value).slice(1, -1), ...(entry === undefined ? [] : [entry])];
        expect(
          names.some((n) => got.message.includes(n)),
          got.message,
        ).toBe(true);
      }
    }
  });

  it('every kind has the shared validator and at least one other consumer', () => {
    for (const [kind, consumers] of Object.entries(CONSUMERS)) {
      const names = Object.keys(consumers);
      expect(
        names.filter((n) => n.startsWith('values.')),
        kind,
      ).toHaveLength(1);
      expect(names.length, kind).toBeGreaterThan(1);
      expect(
        TABLE.some(([k, , e]) => k === kind && 'error' in e),
        kind,
      ).toBe(true);
    }
  });

  it('formatPortRange writes what the proxy reads back', () => {
    expect(
      ['3306', '9000-9010'].map((t) => parsePortRanges(t)).map((r) => r.ok && r.value.map(formatPortRange)),
    ).toEqual([['3306'], ['9000-9010']]);
  });
});
