/**
 * The policy document (docs/policy.md): YAML or JSON text → a validated, frozen PolicyDocument,
 * or a PolicyInvalidError listing every problem with its path
 * (`policies[0].inbound[1].authorization.rules[2].source.cidrs[0]: "10.0.0.0/33" ...`).
 *
 * Strict on purpose (fastify's habit: validate once, then trust): unknown fields are refused, so
 * a typo (`namespace` for `namespaces`) never silently widens a rule; sizes and counts are capped
 * so a document cannot cost the proxy unbounded memory or time; YAML aliases are bounded
 * (billion-laughs) and duplicate keys refused. The text is parsed into Maps, never plain objects,
 * so keys like `__proto__` are just unknown fields; the result is rebuilt from checked values.
 */
import { createHash } from 'node:crypto';
import { parseDocument } from 'yaml';
import { PolicyInvalidError } from '../errors.js';
import { isPeerIdentityHeader } from '../http/headers.js';
import {
  canonicalAddress,
  parseCidr,
  parseDnsLabel,
  parsePort,
  parseDnsSubdomain,
  parseSpiffeId,
} from '../values.js';
import type { Parsed } from '../values.js';
import { parsePattern } from './pattern.js';
import type {
  Authorization,
  AuthzRule,
  CircuitBreaker,
  HeaderMatch,
  InboundPolicy,
  OutboundPolicy,
  OutlierDetection,
  PathMatch,
  Policy,
  PolicyDocument,
  RateLimit,
  RequestMatch,
  RetryPolicy,
  Route,
  SourceMatch,
} from './types.js';

export const API_VERSION = 'remora.dev/v1';
export const KIND = 'PolicySet';

/** Bounds on what one document may hold (docs/policy.md lists them). */
export const POLICY_LIMITS = Object.freeze({
  /** UTF-8 bytes of text */
  maxBytes: 1024 * 1024,
  maxPolicies: 256,
  /** inbound or outbound sections per policy */
  maxSections: 64,
  /** rules per authorization, routes per section */
  maxRules: 1024,
  /** entries of any other list (identities, cidrs, paths, headers, ports, methods, ...) */
  maxEntries: 1024,
  /** YAML alias expansions (anchors are fine, a billion laughs is not) */
  maxAliases: 100,
  /** errors reported (a broken huge document would otherwise yield a huge message) */
  maxErrors: 100,
  /** characters of an identity, path, header value */
  maxString: 4096,
  /** nesting of flow collections (`[`, `{`) and of block ones (indentation column) */
  maxDepth: 64,
  maxIndent: 256,
});

const DAY_MS = 24 * 60 * 60 * 1000;

class Problems {
  readonly list: string[] = [];
  private dropped = 0;
  add(path: string, msg: string): void {
    if (this.list.length < POLICY_LIMITS.maxErrors) this.list.push(`${path}: ${msg}`);
    else this.dropped++;
  }
  result(): string[] {
    return this.dropped === 0 ? this.list : [...this.list, `... and ${this.dropped} more errors`];
  }
}

type Raw = unknown;

function show(v: Raw): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  if (v instanceof Map) return 'a mapping';
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return String(v);
}

function typeName(v: Raw): string {
  if (v instanceof Map) return 'a mapping';
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return `a ${typeof v}`;
}

/** A checked mapping: its string keys, unknown ones reported. */
function mapping(
  p: Problems,
  v: Raw,
  path: string,
  allowed: readonly string[],
  required: readonly string[] = [],
): Map<string, Raw> | undefined {
  if (!(v instanceof Map)) {
    p.add(path, `must be a mapping, got ${typeName(v)}`);
    return undefined;
  }
  const out = new Map<string, Raw>();
  for (const [k, val] of v as Map<Raw, Raw>) {
    if (typeof k !== 'string') {
      p.add(path, `has a key that is not a string (${show(k)})`);
      continue;
    }
    if (!allowed.includes(k)) {
      p.add(join(path, k), `unknown field (expected one of: ${allowed.join(', ')})`);
      continue;
    }
    out.set(k, val);
  }
  for (const r of required) if (!out.has(r)) p.add(join(path, r), 'is required');
  return out;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function list<T>(
  p: Problems,
  v: Raw,
  path: string,
  max: number,
  each: (item: Raw, path: string) => T | undefined,
): T[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    p.add(path, `must be a list, got ${typeName(v)}`);
    return undefined;
  }
  if (v.length > max) {
    p.add(path, `has ${v.length} entries; at most ${max} are allowed`);
    return undefined;
  }
  const out: T[] = [];
  for (let i = 0; i < v.length; i++) {
    const r = each(v[i], `${path}[${i}]`);
    if (r !== undefined) out.push(r);
  }
  return out;
}

function str(
  p: Problems,
  v: Raw,
  path: string,
  check?: (s: string) => string | undefined,
): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    p.add(path, `must be a string, got ${typeName(v)} (${show(v)})`);
    return undefined;
  }
  if (v.length > POLICY_LIMITS.maxString) {
    p.add(path, `is ${v.length} characters long; at most ${POLICY_LIMITS.maxString}`);
    return undefined;
  }
  const why = check?.(v);
  if (why !== undefined) {
    p.add(path, `${show(v)} ${why}`);
    return undefined;
  }
  return v;
}

function int(p: Problems, v: Raw, path: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    p.add(path, `must be an integer, got ${typeName(v)} (${show(v)})`);
    return undefined;
  }
  if (v < min || v > max) {
    p.add(path, `${v} is out of range ${min}..${max}`);
    return undefined;
  }
  return v;
}

function num(p: Problems, v: Raw, path: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    p.add(path, `must be a finite number, got ${typeName(v)} (${show(v)})`);
    return undefined;
  }
  if (v <= 0 || v > max) {
    p.add(path, `${v} must be above 0 and at most ${max}`);
    return undefined;
  }
  return v;
}

function oneOf<T extends string>(p: Problems, v: Raw, path: string, values: readonly T[]): T | undefined {
  return str(p, v, path, (s) =>
    (values as readonly string[]).includes(s) ? undefined : `is not one of: ${values.join(', ')}`,
  ) as T | undefined;
}

/** Drops undefined values, so the frozen result has only the keys that were written. */
function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o))
    if ((o as Record<string, unknown>)[k] === undefined) delete (o as Record<string, unknown>)[k];
  return o;
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Value checks: each returns undefined when fine, else the reason (shown after the value).

/** RFC 9110 §5.6.2 token */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Names, identities and CIDRs follow the one rule set of ../values.ts (the webhook's and init's).
const reasonOf = (r: Parsed<unknown>): string | undefined => (r.ok ? undefined : r.reason);
const dnsLabel = (s: string): string | undefined => reasonOf(parseDnsLabel(s));
const dnsSubdomain = (s: string): string | undefined => reasonOf(parseDnsSubdomain(s));
const spiffe = (s: string, prefix: boolean): string | undefined => reasonOf(parseSpiffeId(s, prefix));

function cidr(s: string): string | undefined {
  const c = parseCidr(s);
  return c.ok ? undefined : `is not a CIDR: ${c.reason}`;
}

/** Printable ASCII without space, `?` or `#` (matching sees the path before the query). */
function pathText(s: string): string | undefined {
  if (s.charCodeAt(0) !== 0x2f) return 'must start with "/"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return 'has a space, control or non-ASCII character (percent-encode it)';
    if (c === 0x3f || c === 0x23) return 'has "?" or "#": paths match the part before the query';
  }
  return undefined;
}

function pattern(s: string): string | undefined {
  const t = pathText(s);
  if (t !== undefined) return t;
  const r = parsePattern(s);
  return typeof r === 'string' ? `is not a valid pattern: ${r}` : undefined;
}

function headerName(s: string): string | undefined {
  return TOKEN.test(s) ? undefined : 'is not a header name (RFC 9110 token characters)';
}

function headerValue(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return 'has a control character';
  }
  return undefined;
}

function method(s: string): string | undefined {
  if (!TOKEN.test(s)) return 'is not an HTTP method (RFC 9110 token)';
  return s === s.toUpperCase() ? undefined : `must be upper case (${s.toUpperCase()})`;
}

/** `ip:port` or `[ipv6]:port` → its canonical form (what the data path looks up). */
function destination(p: Problems, v: Raw, path: string): string | undefined {
  const s = str(p, v, path);
  if (s === undefined) return undefined;
  const bad = (why: string) => {
    p.add(path, `${show(s)} is not a destination (${why})`);
    return undefined;
  };
  const colon = s.lastIndexOf(':');
  if (colon <= 0) return bad('expected "ip:port" or "[ipv6]:port"');
  let host = s.slice(0, colon);
  const portText = s.slice(colon + 1);
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return bad('unclosed "["');
    host = host.slice(1, -1);
  } else if (host.includes(':')) {
    return bad('an IPv6 address must be in brackets: "[fd00::1]:80"');
  }
  const port = parsePort(portText);
  if (!port.ok) return bad('port 1..65535');
  const canon = canonicalAddress(host);
  if (canon === undefined) return bad('host must be an IP address');
  return canon.includes(':') ? `[${canon}]:${port.value}` : `${canon}:${port.value}`;
}

// ---------------------------------------------------------------------------------------------
// The document, section by section.

function sourceMatch(p: Problems, v: Raw, path: string): SourceMatch | undefined {
  const m = mapping(p, v, path, ['identities', 'namespaces', 'identityPrefixes', 'cidrs']);
  if (m === undefined) return undefined;
  const max = POLICY_LIMITS.maxEntries;
  return compact({
    identities: list(p, m.get('identities'), join(path, 'identities'), max, (x, q) =>
      str(p, x, q, (s) => spiffe(s, false)),
    ),
    namespaces: list(p, m.get('namespaces'), join(path, 'namespaces'), max, (x, q) => str(p, x, q, dnsLabel)),
    identityPrefixes: list(p, m.get('identityPrefixes'), join(path, 'identityPrefixes'), max, (x, q) =>
      str(p, x, q, (s) => spiffe(s, true)),
    ),
    cidrs: list(p, m.get('cidrs'), join(path, 'cidrs'), max, (x, q) => str(p, x, q, cidr)),
  });
}

/** Exactly one of `keys` present in `m`; reports none or several. */
function exactlyOne(
  p: Problems,
  m: Map<string, Raw>,
  path: string,
  keys: readonly string[],
): string | undefined {
  const present = keys.filter((k) => m.has(k));
  if (present.length === 1) return present[0];
  p.add(
    path,
    present.length === 0
      ? `needs one of: ${keys.join(', ')}`
      : `has ${present.join(' and ')}; exactly one of ${keys.join(', ')} is allowed`,
  );
  return undefined;
}

function pathMatch(p: Problems, v: Raw, path: string): PathMatch | undefined {
  const m = mapping(p, v, path, ['exact', 'prefix', 'pattern', 'ignoreCase']);
  if (m === undefined) return undefined;
  const k = exactlyOne(p, m, path, ['exact', 'prefix', 'pattern']);
  const ic = m.get('ignoreCase');
  if (ic !== undefined && typeof ic !== 'boolean') {
    p.add(join(path, 'ignoreCase'), `must be true or false, got ${typeName(ic)} (${show(ic)})`);
    return undefined;
  }
  if (k === undefined) return undefined;
  const s = str(p, m.get(k), join(path, k), k === 'pattern' ? pattern : pathText);
  if (s === undefined) return undefined;
  const base = k === 'exact' ? { exact: s } : k === 'prefix' ? { prefix: s } : { pattern: s };
  return (ic === true ? { ...base, ignoreCase: true } : base) as PathMatch;
}

function headerMatch(p: Problems, v: Raw, path: string): HeaderMatch | undefined {
  const m = mapping(p, v, path, ['name', 'exact', 'prefix', 'present'], ['name']);
  if (m === undefined) return undefined;
  const name = str(p, m.get('name'), join(path, 'name'), headerName);
  const k = exactlyOne(p, m, path, ['exact', 'prefix', 'present']);
  if (name === undefined || k === undefined) return undefined;
  if (isPeerIdentityHeader(name)) {
    // Rules see the request as the caller sent it: this header would be the caller's word.
    p.add(
      join(path, 'name'),
      `${name} is the proxy's own (removed from every request, never the caller's to set): match the caller with source.identities`,
    );
    return undefined;
  }
  if (k === 'present') {
    if (m.get('present') !== true) {
      p.add(
        join(path, 'present'),
        `must be true (got ${show(m.get('present'))}); to refuse a header, use a deny rule`,
      );
      return undefined;
    }
    return { name, present: true };
  }
  const val = str(p, m.get(k), join(path, k), headerValue);
  if (val === undefined) return undefined;
  return k === 'exact' ? { name, exact: val } : { name, prefix: val };
}

function requestMatch(p: Problems, v: Raw, path: string): RequestMatch | undefined {
  const m = mapping(p, v, path, ['methods', 'paths', 'headers']);
  if (m === undefined) return undefined;
  const max = POLICY_LIMITS.maxEntries;
  return compact({
    methods: list(p, m.get('methods'), join(path, 'methods'), max, (x, q) => str(p, x, q, method)),
    paths: list(p, m.get('paths'), join(path, 'paths'), max, (x, q) => pathMatch(p, x, q)),
    headers: list(p, m.get('headers'), join(path, 'headers'), max, (x, q) => headerMatch(p, x, q)),
  });
}

const ACTIONS = ['allow', 'deny', 'audit'] as const;

function authorization(p: Problems, v: Raw, path: string): Authorization | undefined {
  const m = mapping(p, v, path, ['default', 'rules']);
  if (m === undefined) return undefined;
  const rules = list(p, m.get('rules'), join(path, 'rules'), POLICY_LIMITS.maxRules, (x, q) => {
    const r = mapping(p, x, q, ['name', 'action', 'source', 'request'], ['name', 'action']);
    if (r === undefined) return undefined;
    const name = str(p, r.get('name'), join(q, 'name'), dnsLabel);
    const action = oneOf(p, r.get('action'), join(q, 'action'), ACTIONS);
    const source = r.has('source') ? sourceMatch(p, r.get('source'), join(q, 'source')) : undefined;
    const request = r.has('request') ? requestMatch(p, r.get('request'), join(q, 'request')) : undefined;
    if (name === undefined || action === undefined) return undefined;
    return compact({ name, action, source, request }) as AuthzRule;
  });
  return compact({ default: oneOf(p, m.get('default'), join(path, 'default'), ACTIONS), rules });
}

const RETRY_ON = ['connect-failure', '5xx', 'reset'] as const;

function retries(p: Problems, v: Raw, path: string): RetryPolicy | undefined {
  const m = mapping(p, v, path, ['attempts', 'budgetPercent', 'backoffMs', 'maxBackoffMs', 'on']);
  if (m === undefined) return undefined;
  const r = compact({
    attempts: int(p, m.get('attempts'), join(path, 'attempts'), 0, 5),
    budgetPercent: int(p, m.get('budgetPercent'), join(path, 'budgetPercent'), 0, 100),
    backoffMs: int(p, m.get('backoffMs'), join(path, 'backoffMs'), 1, 60_000),
    maxBackoffMs: int(p, m.get('maxBackoffMs'), join(path, 'maxBackoffMs'), 1, 600_000),
    on: list(p, m.get('on'), join(path, 'on'), RETRY_ON.length, (x, q) => oneOf(p, x, q, RETRY_ON)),
  });
  if (r.backoffMs !== undefined && r.maxBackoffMs !== undefined && r.maxBackoffMs < r.backoffMs)
    p.add(join(path, 'maxBackoffMs'), `${r.maxBackoffMs} is below backoffMs (${r.backoffMs})`);
  return r;
}

function routes(p: Problems, v: Raw, path: string): Route[] | undefined {
  return list(p, v, path, POLICY_LIMITS.maxRules, (x, q) => {
    const m = mapping(p, x, q, ['match', 'timeoutMs', 'idleTimeoutMs', 'retries']);
    if (m === undefined) return undefined;
    return compact({
      match: m.has('match') ? requestMatch(p, m.get('match'), join(q, 'match')) : undefined,
      timeoutMs: int(p, m.get('timeoutMs'), join(q, 'timeoutMs'), 1, DAY_MS),
      idleTimeoutMs: int(p, m.get('idleTimeoutMs'), join(q, 'idleTimeoutMs'), 1, DAY_MS),
      retries: m.has('retries') ? retries(p, m.get('retries'), join(q, 'retries')) : undefined,
    });
  });
}

function ports(p: Problems, v: Raw, path: string): number[] | undefined {
  return list(p, v, path, POLICY_LIMITS.maxEntries, (x, q) => int(p, x, q, 1, 65535));
}

function rateLimit(p: Problems, v: Raw, path: string): RateLimit | undefined {
  const m = mapping(p, v, path, ['requestsPerSecond', 'burst', 'per'], ['requestsPerSecond']);
  if (m === undefined) return undefined;
  const rps = num(p, m.get('requestsPerSecond'), join(path, 'requestsPerSecond'), 1_000_000);
  const r = compact({
    requestsPerSecond: rps as number,
    burst: int(p, m.get('burst'), join(path, 'burst'), 1, 1_000_000),
    per: oneOf(p, m.get('per'), join(path, 'per'), ['identity', 'global'] as const),
  });
  return rps === undefined ? undefined : r;
}

function inbound(p: Problems, v: Raw, path: string): InboundPolicy | undefined {
  const m = mapping(p, v, path, ['ports', 'authorization', 'rateLimit', 'routes']);
  if (m === undefined) return undefined;
  return compact({
    ports: ports(p, m.get('ports'), join(path, 'ports')),
    authorization: m.has('authorization')
      ? authorization(p, m.get('authorization'), join(path, 'authorization'))
      : undefined,
    rateLimit: m.has('rateLimit') ? rateLimit(p, m.get('rateLimit'), join(path, 'rateLimit')) : undefined,
    routes: routes(p, m.get('routes'), join(path, 'routes')),
  });
}

function circuitBreaker(p: Problems, v: Raw, path: string): CircuitBreaker | undefined {
  const m = mapping(p, v, path, ['maxConnections', 'maxPendingRequests', 'maxRequests']);
  if (m === undefined) return undefined;
  const f = (k: string) => int(p, m.get(k), join(path, k), 1, 1_000_000);
  return compact({
    maxConnections: f('maxConnections'),
    maxPendingRequests: f('maxPendingRequests'),
    maxRequests: f('maxRequests'),
  });
}

function outlierDetection(p: Problems, v: Raw, path: string): OutlierDetection | undefined {
  const m = mapping(p, v, path, [
    'consecutive5xx',
    'consecutiveConnectFailures',
    'baseEjectionMs',
    'maxEjectedPercent',
  ]);
  if (m === undefined) return undefined;
  return compact({
    consecutive5xx: int(p, m.get('consecutive5xx'), join(path, 'consecutive5xx'), 0, 1000),
    consecutiveConnectFailures: int(
      p,
      m.get('consecutiveConnectFailures'),
      join(path, 'consecutiveConnectFailures'),
      0,
      1000,
    ),
    baseEjectionMs: int(p, m.get('baseEjectionMs'), join(path, 'baseEjectionMs'), 1, DAY_MS),
    maxEjectedPercent: int(p, m.get('maxEjectedPercent'), join(path, 'maxEjectedPercent'), 0, 100),
  });
}

function outbound(p: Problems, v: Raw, path: string): OutboundPolicy | undefined {
  const m = mapping(p, v, path, ['destinations', 'ports', 'routes', 'circuitBreaker', 'outlierDetection']);
  if (m === undefined) return undefined;
  return compact({
    destinations: list(
      p,
      m.get('destinations'),
      join(path, 'destinations'),
      POLICY_LIMITS.maxEntries,
      (x, q) => destination(p, x, q),
    ),
    ports: ports(p, m.get('ports'), join(path, 'ports')),
    routes: routes(p, m.get('routes'), join(path, 'routes')),
    circuitBreaker: m.has('circuitBreaker')
      ? circuitBreaker(p, m.get('circuitBreaker'), join(path, 'circuitBreaker'))
      : undefined,
    outlierDetection: m.has('outlierDetection')
      ? outlierDetection(p, m.get('outlierDetection'), join(path, 'outlierDetection'))
      : undefined,
  });
}

function policy(p: Problems, v: Raw, path: string): Policy | undefined {
  const m = mapping(p, v, path, ['name', 'selector', 'inbound', 'outbound'], ['name']);
  if (m === undefined) return undefined;
  const name = str(p, m.get('name'), join(path, 'name'), dnsLabel);
  let selector: Policy['selector'];
  if (m.has('selector')) {
    const s = mapping(p, m.get('selector'), join(path, 'selector'), ['namespace', 'workload']);
    if (s !== undefined)
      selector = compact({
        namespace: str(p, s.get('namespace'), join(path, 'selector.namespace'), dnsLabel),
        workload: str(p, s.get('workload'), join(path, 'selector.workload'), dnsSubdomain),
      });
  }
  const max = POLICY_LIMITS.maxSections;
  const ins = list(p, m.get('inbound'), join(path, 'inbound'), max, (x, q) => inbound(p, x, q));
  const outs = list(p, m.get('outbound'), join(path, 'outbound'), max, (x, q) => outbound(p, x, q));
  // Rule names: unique across the policy, since `<policy>/<rule>` is the deny reason.
  const seen = new Map<string, string>();
  (ins ?? []).forEach((sec, i) =>
    (sec.authorization?.rules ?? []).forEach((r, j) => {
      const here = `${join(path, 'inbound')}[${i}].authorization.rules[${j}].name`;
      const first = seen.get(r.name);
      if (first !== undefined)
        p.add(here, `${show(r.name)} is already used at ${first}; rule names are unique per policy`);
      else seen.set(r.name, here);
    }),
  );
  if (name === undefined) return undefined;
  return compact({ name, selector, inbound: ins, outbound: outs });
}

/** Parses and validates a policy document; throws PolicyInvalidError listing every problem. */
export function parsePolicyDocument(text: string): PolicyDocument {
  const p = new Problems();
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > POLICY_LIMITS.maxBytes)
    throw new PolicyInvalidError([`document: ${bytes} bytes; at most ${POLICY_LIMITS.maxBytes} are allowed`]);
  const read = readYaml(text);
  if (!read.ok) throw new PolicyInvalidError([read.error]);
  const raw = read.value;
  const m = mapping(
    p,
    raw,
    'document',
    ['apiVersion', 'kind', 'policies'],
    ['apiVersion', 'kind', 'policies'],
  );
  if (m === undefined) throw new PolicyInvalidError(p.result());
  const apiVersion = m.get('apiVersion');
  if (m.has('apiVersion') && apiVersion !== API_VERSION)
    p.add('apiVersion', `${show(apiVersion)} is not supported (expected "${API_VERSION}")`);
  const kind = m.get('kind');
  if (m.has('kind') && kind !== KIND) p.add('kind', `${show(kind)} is not supported (expected "${KIND}")`);
  const policies =
    list(p, m.get('policies'), 'policies', POLICY_LIMITS.maxPolicies, (x, q) => policy(p, x, q)) ?? [];
  const names = new Map<string, number>();
  policies.forEach((pol, i) => {
    const first = names.get(pol.name);
    if (first !== undefined)
      p.add(
        `policies[${i}].name`,
        `${show(pol.name)} is already used by policies[${first}]; policy names are unique`,
      );
    else names.set(pol.name, i);
  });
  if (p.list.length > 0) throw new PolicyInvalidError(p.result());
  return deepFreeze({ apiVersion: API_VERSION, kind: KIND, policies });
}

/**
 * Refuses absurd nesting before the YAML parser sees it: `[[[[...` or `- - - -...` a few hundred
 * thousand deep parses for seconds before the parser's own stack gives out, while the deepest
 * legitimate document nests about ten levels. The scan is a rough upper bound (brackets inside
 * plain scalars count too), far above any real document.
 */
function nestingProblem(text: string): string | undefined {
  let depth = 0;
  let quote = 0; // the open quote character, 0 outside quotes
  let column = 0; // column of the first content on this line (spaces and `- ` markers skipped)
  let leading = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      leading = true;
      column = 0;
      continue;
    }
    if (leading) {
      if (c === 0x20 || c === 0x2d || c === 0x09) {
        if (++column > POLICY_LIMITS.maxIndent)
          return `document: indented or nested deeper than ${POLICY_LIMITS.maxIndent} columns`;
        continue;
      }
      leading = false;
    }
    if (quote !== 0) {
      if (c === quote) quote = 0;
      else if (c === 0x5c && quote === 0x22) i++; // \" inside a double-quoted string
      continue;
    }
    if (c === 0x22 || c === 0x27) quote = c;
    else if (c === 0x23 && (i === 0 || text.charCodeAt(i - 1) <= 0x20)) {
      const nl = text.indexOf('\n', i);
      i = nl === -1 ? text.length : nl - 1; // a comment runs to the end of the line
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > POLICY_LIMITS.maxDepth)
        return `document: nested deeper than ${POLICY_LIMITS.maxDepth} levels`;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return undefined;
}

/** YAML (1.2, so JSON too) → a tree of Maps, arrays and scalars; or the reason it is not. */
function readYaml(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (text.trim() === '') return { ok: false, error: 'document: is empty' };
  const deep = nestingProblem(text);
  if (deep !== undefined) return { ok: false, error: deep };
  let doc;
  try {
    doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, merge: false, strict: true });
  } catch (err) {
    return { ok: false, error: `document: not YAML or JSON: ${(err as Error).message}` };
  }
  const first = doc.errors[0];
  if (first !== undefined) {
    const at = first.linePos?.[0];
    const where = at === undefined ? '' : `line ${at.line}, column ${at.col}: `;
    return {
      ok: false,
      // prettyErrors appends " at line L, column C:" and an excerpt; keep the message, place first.
      error: `document: not valid YAML or JSON: ${where}${(first.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
    };
  }
  try {
    return { ok: true, value: doc.toJS({ mapAsMap: true, maxAliasCount: POLICY_LIMITS.maxAliases }) };
  } catch (err) {
    // yaml refuses an alias explosion with a ReferenceError naming the resource exhaustion.
    return {
      ok: false,
      error: `document: refused: ${(err as Error).message} (at most ${POLICY_LIMITS.maxAliases} alias expansions)`,
    };
  }
}

/** Short, stable version of a document's text: sha256 hex, first 12 characters. */
export function policyVersion(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}
