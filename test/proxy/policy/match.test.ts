import { describe, expect, it } from 'vitest';
import { cidrContains, newAddress, parseAddress, parseCidr } from '../../../proxy/src/policy/cidr.js';
import type { Cidr } from '../../../proxy/src/policy/cidr.js';
import {
  RequestMatcher,
  SourceMatcher,
  identityNamespace,
  newFacts,
  setRequest,
  setSource,
} from '../../../proxy/src/policy/match.js';
import { matchPattern, normalizePath, parsePattern, pathEnd } from '../../../proxy/src/policy/pattern.js';
import type { PathPattern } from '../../../proxy/src/policy/pattern.js';
import type { RequestMatch, SourceMatch } from '../../../proxy/src/policy/types.js';

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (typeof c === 'string') throw new Error(`${text}: ${c}`);
  return c;
}

function inRange(range: string, address: string): boolean {
  const a = newAddress();
  if (!parseAddress(address, a)) throw new Error(`not an address: ${address}`);
  return cidrContains(cidr(range), a);
}

describe('CIDR', () => {
  it.each([
    ['10.0.0.0/8', '10.255.1.2', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['10.0.0.0/8', '::ffff:10.1.2.3', true], // a dual-stack socket's view of an IPv4 peer
    ['10.0.0.0/8', '::ffff:11.1.2.3', false],
    ['192.168.1.7', '192.168.1.7', true], // bare address = /32
    ['192.168.1.7', '192.168.1.8', false],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['0.0.0.0/0', '::1', false], // families never mix
    ['172.16.0.0/12', '172.31.255.255', true],
    ['172.16.0.0/12', '172.32.0.0', false],
    ['fd00::/8', 'fd12:3456::1', true],
    ['fd00::/8', 'fe80::1', false],
    ['fd00::/8', '10.0.0.1', false],
    ['::1', '::1', true],
    ['::1', '::2', false],
    ['::/0', '2001:db8::1', true],
    ['2001:db8::/32', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', true],
    ['2001:db8::/32', '2001:db9::', false],
    ['2001:db8:0:0:1::/80', '2001:db8::1:0:0:5', true],
    ['2001:db8:0:0:1::/80', '2001:db8::2:0:0:5', false],
    ['fe80::/10', 'fe80::1%eth0', true], // a zone is ignored
    ['::ffff:10.0.0.1', '10.0.0.1', true], // a bare mapped address is the IPv4 address
    ['64:ff9b::/96', '::ffff:1.2.3.4', false], // mapped peers are IPv4, never an IPv6 range
    ['2001:db8::1.2.3.4/128', '2001:db8::102:304', true],
  ])('%s contains %s: %s', (range, address, expected) => {
    expect(inRange(range, address)).toBe(expected);
  });

  it.each([
    ['10.0.0.0/33', 'has a prefix length above 32'],
    ['fd00::/129', 'has a prefix length above 128'],
    ['10.0.0/8', 'is not an IP address or CIDR'],
    ['10.0.0.256', 'is not an IP address or CIDR'],
    ['010.0.0.1', 'is not an IP address or CIDR'],
    ['10.0.0.0/', 'has no valid prefix length'],
    ['10.0.0.0/08', 'has no valid prefix length'],
    ['10.0.0.0/-1', 'has no valid prefix length'],
    ['fd00:::1', 'is not an IP address or CIDR'],
    ['1:2:3:4:5:6:7:8:9', 'is not an IP address or CIDR'],
    ['1::2::3', 'is not an IP address or CIDR'],
    ['12345::', 'is not an IP address or CIDR'],
    ['fe80::1%eth0', 'is not an IP address or CIDR'],
    ['::ffff:10.0.0.0/104', 'an IPv4-mapped address cannot carry a prefix; write the IPv4 CIDR'],
    ['example.com', 'is not an IP address or CIDR'],
    ['', 'is not an IP address or CIDR'],
  ])('refuses %j: %s', (text, reason) => {
    expect(parseCidr(text)).toBe(reason);
  });

  it('keeps the canonical text with host bits cleared', () => {
    expect(cidr('10.1.2.3/8').text).toBe('10.0.0.0/8');
    expect(cidr('FD00:0:0:0::1/8').text).toBe('fd00::/8');
    expect(cidr('2001:db8:0:0:1:0:0:1').text).toBe('2001:db8::1:0:0:1/128');
  });
});

function pattern(text: string): PathPattern {
  const p = parsePattern(text);
  if (typeof p === 'string') throw new Error(`${text}: ${p}`);
  return p;
}

function pmatch(pat: string, path: string): boolean {
  return matchPattern(pattern(pat), path, pathEnd(path));
}

describe('path patterns', () => {
  it.each([
    ['/o/*/items', '/o/12/items', true],
    ['/o/*/items', '/o/12/items?x=1', true],
    ['/o/*/items', '/o/items', false],
    ['/o/*/items', '/o/1/2/items', false],
    ['/o/*/items', '/o/12/items/', false],
    ['/o/*/items', '/o//items', false], // `*` is one non-empty segment
    ['/api/**', '/api', true],
    ['/api/**', '/api/', true],
    ['/api/**', '/api/a/b/c', true],
    ['/api/**', '/apix', false],
    ['/api/**', '/ap', false],
    ['/**', '/', true],
    ['/**', '/anything/at/all', true],
    ['/*/**', '/', false],
    ['/*/**', '/x', true],
    ['/', '/', true],
    ['/', '/a', false],
    ['/a/', '/a/', true],
    ['/a/', '/a', false],
    ['/*', '/a', true],
    ['/*', '/a/b', false],
    ['/a/*/c/*', '/a/b/c/d', true],
    ['/a/*/c/*', '/a/b/x/d', false],
  ])('%s on %s: %s', (pat, path, expected) => {
    expect(pmatch(pat, path)).toBe(expected);
  });

  it.each([
    ['o/*', 'must start with "/"'],
    ['/a*/b', '"*" must be a whole segment ("/a/*/b"), not part of one'],
    ['/a/***', '"*" must be a whole segment ("/a/*/b"), not part of one'],
    ['/**/x', '"**" may only be the last segment'],
    ['/a//b', 'has an empty segment ("//")'],
  ])('refuses %j: %s', (pat, reason) => {
    expect(parsePattern(pat)).toBe(reason);
  });

  it('matches a pathological 100 kB path in one pass, with the right answers', () => {
    const many = `/${'a/'.repeat(50_000)}end`; // 50,001 segments
    const noSlash = `/${'a'.repeat(100_000)}`;
    expect(pmatch('/a/*/*/*/*/*/*/*/*/*/*/**', many)).toBe(true);
    expect(pmatch('/*/*/*/*/*/*/*/*/*/*/*/x', many)).toBe(false);
    expect(pmatch('/a/**', many)).toBe(true);
    expect(pmatch('/*', noSlash)).toBe(true);
    expect(pmatch('/*/**', noSlash)).toBe(true);
    expect(pmatch('/a/*', noSlash)).toBe(false);
    // and through the matcher, normalization included (a `//` run forces it)
    const f = newFacts();
    const m = new RequestMatcher({ paths: [{ pattern: '/a/*/c' }, { prefix: '/zz' }] });
    setRequest(f, { method: 'GET', path: `/${'a//'.repeat(33_000)}`, rawHeaders: [] });
    expect(m.matches(f)).toBe(false);
  });
});

describe('path normalization (what a deny rule sees)', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a/b?x=/..', '/a/b'],
    ['/./admin', '/admin'],
    ['//admin', '/admin'],
    ['/x/../admin', '/admin'],
    ['/../../admin', '/admin'],
    ['/%61dmin', '/admin'],
    ['/%2e%2e/admin', '/admin'], // decoded dots are dot segments too
    // (an encoded slash never gets here: the HTTP stage refuses it, http/validate.ts)
    ['/a%2Fb', '/a%2Fb'],
    ['/a%2fb', '/a%2Fb'],
    ['/a/b/', '/a/b/'],
    ['/a/b/.', '/a/b/'],
    ['/a/b/..', '/a/'],
    ['/%zz', '/%zz'],
    ['/%', '/%'],
  ])('%s → %s', (raw, normalized) => {
    expect(normalizePath(raw)).toBe(normalized);
  });
});

function facts(
  identity: string | undefined,
  address: string,
  method = 'GET',
  path = '/',
  rawHeaders: string[] = [],
) {
  const f = newFacts();
  setSource(f, { identity, address });
  setRequest(f, { method, path, rawHeaders });
  return f;
}

describe('source matching', () => {
  const web = 'spiffe://cluster.local/ns/web/sa/frontend';
  const cases: [string, SourceMatch, string | undefined, string, boolean][] = [
    ['exact identity', { identities: [web] }, web, '10.0.0.1', true],
    [
      'exact identity, other',
      { identities: [web] },
      'spiffe://cluster.local/ns/web/sa/other',
      '10.0.0.1',
      false,
    ],
    ['exact identity, plaintext', { identities: [web] }, undefined, '10.0.0.1', false],
    ['namespace', { namespaces: ['web'] }, web, '10.0.0.1', true],
    ['namespace, other', { namespaces: ['shop'] }, web, '10.0.0.1', false],
    ['namespace of a non-workload identity', { namespaces: ['web'] }, 'spiffe://td/web', '10.0.0.1', false],
    ['prefix', { identityPrefixes: ['spiffe://cluster.local/ns/web/'] }, web, '10.0.0.1', true],
    [
      'prefix, sibling namespace',
      { identityPrefixes: ['spiffe://cluster.local/ns/we/'] },
      web,
      '10.0.0.1',
      false,
    ],
    ['cidr, plaintext', { cidrs: ['10.0.0.0/8'] }, undefined, '10.9.9.9', true],
    ['cidr, mapped', { cidrs: ['10.0.0.0/8'] }, undefined, '::ffff:10.9.9.9', true],
    ['cidr v6', { cidrs: ['fd00::/8', '10.0.0.0/8'] }, undefined, 'fd00::5', true],
    ['cidr, outside', { cidrs: ['10.0.0.0/8'] }, web, '192.168.0.1', false],
    ['identity AND cidr', { namespaces: ['web'], cidrs: ['10.0.0.0/8'] }, web, '10.1.1.1', true],
    ['identity AND cidr, cidr fails', { namespaces: ['web'], cidrs: ['10.0.0.0/8'] }, web, '11.1.1.1', false],
    ['cidr on a non-address', { cidrs: ['0.0.0.0/0'] }, undefined, 'unix-socket', false],
    ['empty source matches anyone', {}, undefined, '1.2.3.4', true],
  ];
  it.each(cases)('%s', (_name, m, identity, address, expected) => {
    expect(new SourceMatcher(m).matches(facts(identity, address))).toBe(expected);
  });

  it('reads the namespace from spiffe://td/ns/<ns>/sa/<sa> only', () => {
    expect(identityNamespace('spiffe://cluster.local/ns/shop/sa/cart')).toBe('shop');
    expect(identityNamespace('spiffe://cluster.local/ns/shop/sa/cart/x')).toBeUndefined();
    expect(identityNamespace('spiffe://cluster.local/ns//sa/cart')).toBeUndefined();
    expect(identityNamespace('https://cluster.local/ns/shop/sa/cart')).toBeUndefined();
  });
});

describe('request matching', () => {
  const cases: [string, RequestMatch, string, string, string[], boolean][] = [
    ['method', { methods: ['GET', 'HEAD'] }, 'HEAD', '/', [], true],
    ['method, other', { methods: ['GET'] }, 'POST', '/', [], false],
    ['method is case-sensitive', { methods: ['GET'] }, 'get', '/', [], false],
    ['exact path', { paths: [{ exact: '/healthz' }] }, 'GET', '/healthz?full=1', [], true],
    ['exact path, longer', { paths: [{ exact: '/healthz' }] }, 'GET', '/healthz/x', [], false],
    ['prefix', { paths: [{ prefix: '/api/' }] }, 'GET', '/api/v1', [], true],
    ['prefix, only in the query', { paths: [{ prefix: '/api/' }] }, 'GET', '/x?/api/', [], false],
    ['prefix after normalization', { paths: [{ prefix: '/admin/' }] }, 'GET', '/public/../admin/x', [], true],
    ['any of the paths', { paths: [{ exact: '/a' }, { pattern: '/o/*' }] }, 'GET', '/o/1', [], true],
    // `;` parameters are not part of the path to match (Tomcat routes without them)
    [
      'prefix, ;params stripped',
      { paths: [{ prefix: '/admin/' }] },
      'GET',
      '/admin;jsessionid=1/x',
      [],
      true,
    ],
    ['prefix, ..; is ..', { paths: [{ prefix: '/admin/' }] }, 'GET', '/ok/..;x/admin/x', [], true],
    ['exact, ;params stripped', { paths: [{ exact: '/a' }] }, 'GET', '/a;v=1?q', [], true],
    ['pattern, ;params stripped', { paths: [{ pattern: '/o/*/items' }] }, 'GET', '/o/1;x/items', [], true],
    ['; in the query only', { paths: [{ exact: '/a' }] }, 'GET', '/a?x=;y', [], true],
    // case
    ['prefix is case-sensitive by default', { paths: [{ prefix: '/admin/' }] }, 'GET', '/ADMIN/x', [], false],
    ['prefix, ignoreCase', { paths: [{ prefix: '/Admin/', ignoreCase: true }] }, 'GET', '/aDMIN/x', [], true],
    ['exact, ignoreCase', { paths: [{ exact: '/a/B', ignoreCase: true }] }, 'GET', '/A/b', [], true],
    ['exact, ignoreCase, longer', { paths: [{ exact: '/a', ignoreCase: true }] }, 'GET', '/Ab', [], false],
    [
      'pattern, ignoreCase',
      { paths: [{ pattern: '/O/*/Items', ignoreCase: true }] },
      'GET',
      '/o/X/ITEMS',
      [],
      true,
    ],
    ['pattern, case-sensitive', { paths: [{ pattern: '/o/*/items' }] }, 'GET', '/o/X/ITEMS', [], false],
    [
      'header exact, any case',
      { headers: [{ name: 'x-env', exact: 'prod' }] },
      'GET',
      '/',
      ['X-Env', 'prod'],
      true,
    ],
    [
      'header exact, value differs',
      { headers: [{ name: 'x-env', exact: 'prod' }] },
      'GET',
      '/',
      ['x-env', 'Prod'],
      false,
    ],
    [
      'header repeated: any value',
      { headers: [{ name: 'x-env', exact: 'prod' }] },
      'GET',
      '/',
      ['x-env', 'dev', 'X-ENV', 'prod'],
      true,
    ],
    [
      'header prefix',
      { headers: [{ name: 'authorization', prefix: 'Bearer ' }] },
      'GET',
      '/',
      ['Authorization', 'Bearer x'],
      true,
    ],
    ['header present', { headers: [{ name: 'x-debug', present: true }] }, 'GET', '/', ['x-debug', ''], true],
    [
      'header absent',
      { headers: [{ name: 'x-debug', present: true }] },
      'GET',
      '/',
      ['x-debugger', '1'],
      false,
    ],
    [
      'all headers must hold',
      {
        headers: [
          { name: 'a', exact: '1' },
          { name: 'b', exact: '2' },
        ],
      },
      'GET',
      '/',
      ['a', '1'],
      false,
    ],
    [
      'kinds AND',
      { methods: ['GET'], paths: [{ prefix: '/api/' }], headers: [{ name: 'x-env', exact: 'prod' }] },
      'GET',
      '/api/x',
      ['x-env', 'prod'],
      true,
    ],
    [
      'kinds AND, method fails',
      { methods: ['GET'], paths: [{ prefix: '/api/' }] },
      'PUT',
      '/api/x',
      [],
      false,
    ],
  ];
  it.each(cases)('%s', (_name, m, method, path, raw, expected) => {
    expect(new RequestMatcher(m).matches(facts(undefined, '127.0.0.1', method, path, raw))).toBe(expected);
  });
});
