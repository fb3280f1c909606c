import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../proxy/src/policy/compile.js';
import { parsePolicyDocument } from '../../../proxy/src/policy/document.js';
import type {
  CompiledPolicy,
  RequestInfo,
  SourceInfo,
  WorkloadRef,
} from '../../../proxy/src/policy/types.js';

const SELF: WorkloadRef = { namespace: 'shop', workload: 'orders' };
const WEB = 'spiffe://cluster.local/ns/web/sa/frontend';
const BATCH = 'spiffe://cluster.local/ns/batch/sa/job';

function compile(policies: string, self: WorkloadRef = SELF): CompiledPolicy {
  const doc = parsePolicyDocument(`apiVersion: remora.dev/v1\nkind: PolicySet\npolicies:\n${policies}`);
  return compilePolicy(doc, self, 'v-test');
}

function src(identity: string | undefined, address = '10.0.0.5'): SourceInfo {
  return { identity, address };
}

function get(path = '/', method = 'GET', rawHeaders: string[] = []): RequestInfo {
  return { method, path, rawHeaders };
}

function decide(p: CompiledPolicy, port: number, s: SourceInfo, r: RequestInfo = get()) {
  const d = p.inbound(port)?.authorizeRequest(s, r);
  return d === undefined ? 'unchecked' : `${d.action} ${d.reason}${d.needsMtls ? ' needsMtls' : ''}`;
}

describe('compilePolicy: selection', () => {
  const doc = `
  - name: any
    inbound: [{ authorization: { rules: [{ name: r, action: audit }] } }]
  - name: shop-ns
    selector: { namespace: shop }
    inbound: [{ authorization: { rules: [{ name: r, action: audit }] } }]
  - name: orders
    selector: { namespace: shop, workload: orders }
    inbound: [{ authorization: { rules: [{ name: r, action: audit }] } }]
  - name: other-ns
    selector: { namespace: web }
    inbound: [{ authorization: { rules: [{ name: r, action: audit }] } }]
  - name: other-workload
    selector: { namespace: shop, workload: cart }
    inbound: [{ authorization: { rules: [{ name: r, action: audit }] } }]
`;
  it('takes the policies whose selector matches, absent keys matching anything', () => {
    const p = compile(doc);
    expect(p.policies).toEqual(['any', 'shop-ns', 'orders']);
    expect(p.version).toBe('v-test');
    expect(p.inbound(80)?.key).toBe('any/inbound[0]+shop-ns/inbound[0]+orders/inbound[0]');
  });

  it('a workload that does not know its namespace only gets selector-free policies', () => {
    expect(compile(doc, { namespace: undefined, workload: 'orders' }).policies).toEqual(['any']);
  });

  it('nothing selected: no inbound, no outbound', () => {
    const p = compile(`
  - name: elsewhere
    selector: { namespace: web }
    inbound: [{ authorization: { default: deny } }]
    outbound: [{ routes: [{ timeoutMs: 5 }] }]
`);
    expect(p.policies).toEqual([]);
    expect(p.inbound(8080)).toBeUndefined();
    expect(p.outbound('10.0.0.1:80', 80)).toBeUndefined();
  });
});

describe('compilePolicy: authorization', () => {
  it('sections on one port merge; a section for another port does not apply', () => {
    const p = compile(`
  - name: a
    inbound:
      - ports: [8080]
        authorization: { default: deny }
      - ports: [9090]
        authorization: { rules: [{ name: no-batch, action: deny, source: { namespaces: [batch] } }] }
  - name: b
    inbound:
      - authorization: { rules: [{ name: web, action: allow, source: { namespaces: [web] } }] }
`);
    expect(decide(p, 8080, src(WEB))).toBe('allow b/web');
    expect(decide(p, 8080, src(BATCH))).toBe('deny a/default');
    expect(decide(p, 9090, src(BATCH))).toBe('deny a/no-batch');
    expect(decide(p, 9090, src(WEB))).toBe('allow b/web');
    expect(decide(p, 7070, src(BATCH))).toBe('allow b/default'); // only the catch-all section
    expect(p.inbound(8080)?.key).toBe('a/inbound[0]+b/inbound[0]');
    expect(p.inbound(7070)?.key).toBe('b/inbound[0]');
  });

  it('deny wins over allow and audit, whatever the order written', () => {
    const p = compile(`
  - name: a
    inbound:
      - authorization:
          rules:
            - { name: allow-web, action: allow, source: { namespaces: [web] } }
            - { name: watch-web, action: audit, source: { namespaces: [web] } }
            - { name: no-admin, action: deny, request: { paths: [{ prefix: /admin/ }] } }
`);
    expect(decide(p, 80, src(WEB), get('/admin/x'))).toBe('deny a/no-admin');
    // an audit rule never changes the decision: the request goes through, reported as audit
    expect(decide(p, 80, src(WEB), get('/shop'))).toBe('audit a/watch-web');
    expect(decide(p, 80, src(BATCH), get('/shop'))).toBe('allow a/default');
  });

  it('an audit rule never turns a denial into a pass', () => {
    const p = compile(`
  - name: a
    inbound:
      - authorization:
          default: deny
          rules:
            - { name: watch-all, action: audit }
            - { name: gets, action: allow, request: { methods: [GET] } }
`);
    expect(decide(p, 80, src(WEB), get('/', 'POST'))).toBe('deny a/default');
    expect(decide(p, 80, src(WEB), get('/', 'GET'))).toBe('audit a/watch-all');
  });

  it('the first matching rule of the winning action names the reason', () => {
    const p = compile(`
  - name: a
    inbound:
      - authorization:
          default: deny
          rules:
            - { name: first, action: allow, request: { methods: [GET] } }
            - { name: second, action: allow }
`);
    expect(decide(p, 80, src(undefined), get('/', 'GET'))).toBe('allow a/first');
    expect(decide(p, 80, src(undefined), get('/', 'POST'))).toBe('allow a/second');
  });

  it.each([
    [['allow', 'audit'], 'audit b/default'],
    [['deny', 'audit'], 'deny a/default'],
    [['audit', 'deny'], 'deny b/default'],
    [['allow', 'allow'], 'unchecked'],
    [['audit', 'allow'], 'audit a/default'],
  ])('defaults %j merge to the most restrictive: %s', (defaults, expected) => {
    const p = compile(`
  - name: a
    inbound: [{ authorization: { default: ${defaults[0]} } }]
  - name: b
    inbound: [{ authorization: { default: ${defaults[1]} } }]
`);
    expect(decide(p, 80, src(undefined))).toBe(expected);
  });

  it('a section without authorization (a rate limit only) leaves nothing to check', () => {
    const p = compile(`
  - name: a
    inbound: [{ rateLimit: { requestsPerSecond: 5 } }]
`);
    expect(p.inbound(80)?.authorizeRequest(src(undefined), get())).toBeUndefined();
    expect(p.inbound(80)?.authorizeConnection(src(undefined))).toBeUndefined();
    expect(p.inbound(80)?.rateLimit).toEqual({ requestsPerSecond: 5 });
  });

  it('an identity rule cannot match plaintext: the default decides and needsMtls says why', () => {
    const p = compile(`
  - name: a
    inbound:
      - authorization:
          default: deny
          rules:
            - { name: web, action: allow, source: { namespaces: [web] } }
            - { name: web-exact, action: allow, source: { identities: ["${WEB}"], cidrs: [10.0.0.0/8] } }
            - { name: lan, action: allow, source: { cidrs: [192.168.0.0/16] } }
`);
    expect(decide(p, 80, src(WEB))).toBe('allow a/web');
    expect(decide(p, 80, src(undefined))).toBe('deny a/default needsMtls');
    expect(decide(p, 80, src(undefined, '192.168.3.4'))).toBe('allow a/lan');
    // the identity rule would not have matched that address anyway: no mTLS hint... but the
    // namespace-only rule would have, so the hint stays
    expect(decide(p, 80, src(undefined, '172.16.0.1'))).toBe('deny a/default needsMtls');
    const onlyExact = compile(`
  - name: b
    inbound:
      - authorization:
          default: deny
          rules: [{ name: web-exact, action: allow, source: { identities: ["${WEB}"], cidrs: [10.0.0.0/8] } }]
`);
    expect(decide(onlyExact, 80, src(undefined, '10.1.1.1'))).toBe('deny b/default needsMtls');
    expect(decide(onlyExact, 80, src(undefined, '172.16.0.1'))).toBe('deny b/default');
  });

  it('a deny rule naming an identity does not match plaintext (the brief: identity rules need mTLS)', () => {
    const p = compile(`
  - name: a
    inbound: [{ authorization: { rules: [{ name: no-batch, action: deny, source: { namespaces: [batch] } }] } }]
`);
    expect(decide(p, 80, src(BATCH))).toBe('deny a/no-batch');
    expect(decide(p, 80, src(undefined))).toBe('allow a/default');
  });

  it('opaque TCP: deny rules match on their source alone; allow/audit rules with request conditions never match', () => {
    const p = compile(`
  - name: a
    inbound:
      - authorization:
          default: deny
          rules:
            - { name: no-admin-from-batch, action: deny, source: { namespaces: [batch] }, request: { paths: [{ prefix: /admin }] } }
            - { name: web-gets, action: allow, source: { namespaces: [web] }, request: { methods: [GET] } }
            - { name: audit-gets, action: audit, request: { methods: [GET] } }
            - { name: lan, action: allow, source: { cidrs: [192.168.0.0/16] } }
`);
    const conn = (s: SourceInfo) => {
      const d = p.inbound(80)?.authorizeConnection(s);
      return d === undefined ? 'unchecked' : `${d.action} ${d.reason}`;
    };
    expect(conn(src(BATCH))).toBe('deny a/no-admin-from-batch'); // fail safe
    expect(conn(src(WEB))).toBe('deny a/default'); // web-gets needs a GET that a connection cannot show
    expect(conn(src(undefined, '192.168.1.1'))).toBe('allow a/lan');
    // the same sources over HTTP
    expect(decide(p, 80, src(BATCH), get('/shop', 'POST'))).toBe('deny a/default');
    expect(decide(p, 80, src(WEB), get('/shop'))).toBe('audit a/audit-gets');
  });

  it('mapped IPv4 peers meet IPv4 CIDRs; IPv6 peers meet IPv6 CIDRs', () => {
    const p = compile(`
  - name: a
    inbound:
      - authorization:
          default: deny
          rules: [{ name: nets, action: allow, source: { cidrs: [10.0.0.0/8, "fd00::/8"] } }]
`);
    expect(decide(p, 80, src(undefined, '::ffff:10.2.3.4'))).toBe('allow a/nets');
    expect(decide(p, 80, src(undefined, 'fd00::9'))).toBe('allow a/nets');
    expect(decide(p, 80, src(undefined, '::1'))).toBe('deny a/default');
  });

  it('per-caller identity verdicts stay right across many callers (the cache starts over when full)', () => {
    const p = compile(`
  - name: a
    inbound:
      - authorization:
          default: deny
          rules:
            - { name: web, action: allow, source: { namespaces: [web] } }
            - { name: one, action: allow, source: { identities: ["spiffe://cluster.local/ns/x/sa/sa-7"] } }
`);
    for (let i = 0; i < 2500; i++) {
      const ns = i % 2 === 0 ? 'web' : 'x';
      const expected = ns === 'web' ? 'allow a/web' : i === 7 ? 'allow a/one' : 'deny a/default';
      const id = `spiffe://cluster.local/ns/${ns}/sa/sa-${i}`;
      expect(decide(p, 80, src(id))).toBe(expected);
      // asked again (a cached verdict) and asked plaintext in between: same answers
      expect(decide(p, 80, src(undefined))).toBe('deny a/default needsMtls');
      expect(decide(p, 80, src(id))).toBe(expected);
    }
  });

  it('decisions are the same frozen objects every time (nothing allocated per request)', () => {
    const p = compile(`
  - name: a
    inbound: [{ authorization: { default: deny, rules: [{ name: r, action: allow, request: { methods: [GET] } }] } }]
`);
    const i = p.inbound(80);
    const d1 = i?.authorizeRequest(src(undefined), get());
    const d2 = i?.authorizeRequest(src(WEB), get('/x'));
    expect(d1).toBe(d2);
    expect(Object.isFrozen(d1)).toBe(true);
    expect(i?.authorizeRequest(src(undefined), get('/', 'PUT'))).toBe(
      i?.authorizeRequest(src(WEB), get('/', 'DELETE')),
    );
  });
});

describe('compilePolicy: which ports L7 policy governs (they refuse non-HTTP)', () => {
  it('an authz rule with request conditions, a rate limit or a route governs; source-only rules and breakers do not', () => {
    const p = compile(`
  - name: p
    inbound:
      - ports: [1]
        authorization: { default: deny, rules: [{ name: a, action: allow, source: { cidrs: [10.0.0.0/8] } }] }
      - ports: [2]
        authorization: { rules: [{ name: b, action: deny, source: { cidrs: [10.0.0.0/8] }, request: { methods: [POST] } }] }
      - ports: [3]
        rateLimit: { requestsPerSecond: 5 }
      - ports: [4]
        routes: [{ timeoutMs: 100 }]
      - ports: [5]
        authorization: { default: audit }
    outbound:
      - destinations: ["10.96.0.1:80"]
        routes: [{ timeoutMs: 100 }]
      - destinations: ["10.96.0.2:80"]
        circuitBreaker: { maxRequests: 1 }
`);
    expect([1, 2, 3, 4, 5].map((port) => p.inbound(port)?.l7)).toEqual([false, true, true, true, false]);
    expect(p.inbound(6)).toBeUndefined();
    expect(p.outbound('10.96.0.1:80', 80)?.l7).toBe(true);
    expect(p.outbound('10.96.0.2:80', 80)?.l7).toBe(false);
  });

  it('a catch-all section with an L7 rule governs every port', () => {
    const p = compile(`
  - name: p
    inbound:
      - authorization: { rules: [{ name: no-admin, action: deny, request: { paths: [{ prefix: /admin/ }] } }] }
`);
    expect(p.inbound(3306)?.l7).toBe(true);
  });
});

describe('compilePolicy: routes, rate limits and outbound sections', () => {
  it('inbound: routes of port sections come before catch-all ones; the first match wins', () => {
    const p = compile(`
  - name: all
    inbound:
      - rateLimit: { requestsPerSecond: 1 }
        routes: [{ match: { paths: [{ prefix: /slow }] }, timeoutMs: 1 }, { timeoutMs: 2 }]
  - name: port
    inbound:
      - ports: [8080]
        rateLimit: { requestsPerSecond: 8 }
        routes: [{ match: { paths: [{ prefix: /slow }], methods: [GET] }, timeoutMs: 3 }]
`);
    const i = p.inbound(8080);
    expect(i?.route(get('/slow/x'))?.timeoutMs).toBe(3);
    expect(i?.route(get('/slow/x', 'POST'))?.timeoutMs).toBe(1);
    expect(i?.route(get('/fast'))?.timeoutMs).toBe(2);
    expect(i?.rateLimit?.requestsPerSecond).toBe(8);
    expect(p.inbound(9090)?.route(get('/slow'))?.timeoutMs).toBe(1);
    expect(p.inbound(9090)?.rateLimit?.requestsPerSecond).toBe(1);
  });

  it('a section without routes routes nothing', () => {
    const p = compile(`
  - name: a
    inbound: [{ authorization: { default: deny } }]
`);
    expect(p.inbound(80)?.route(get())).toBeUndefined();
  });

  it('outbound: named destination, then its port, then catch-all; first breaker and outlier settings win', () => {
    const p = compile(`
  - name: a
    outbound:
      - routes: [{ timeoutMs: 1 }]
        circuitBreaker: { maxRequests: 1 }
      - ports: [80]
        routes: [{ match: { methods: [POST] }, timeoutMs: 2 }]
        outlierDetection: { consecutive5xx: 2 }
      - destinations: ["10.96.0.10:80", "[fd00::1]:80"]
        routes: [{ match: { paths: [{ prefix: /api/ }] }, timeoutMs: 3 }]
        circuitBreaker: { maxRequests: 3 }
`);
    const svc = p.outbound('10.96.0.10:80', 80);
    expect(svc?.key).toBe('a/outbound[2]+a/outbound[1]+a/outbound[0]');
    expect(svc?.circuitBreaker?.maxRequests).toBe(3);
    expect(svc?.outlierDetection?.consecutive5xx).toBe(2);
    expect(svc?.route(get('/api/x', 'POST'))?.timeoutMs).toBe(3);
    expect(svc?.route(get('/x', 'POST'))?.timeoutMs).toBe(2);
    expect(svc?.route(get('/x'))?.timeoutMs).toBe(1);
    expect(p.outbound('[fd00::1]:80', 80)?.circuitBreaker?.maxRequests).toBe(3);
    const port80 = p.outbound('10.96.0.99:80', 80);
    expect(port80?.key).toBe('a/outbound[1]+a/outbound[0]');
    expect(port80?.circuitBreaker?.maxRequests).toBe(1);
    const other = p.outbound('10.96.0.99:443', 443);
    expect(other?.key).toBe('a/outbound[0]');
    expect(other?.outlierDetection).toBeUndefined();
  });

  it('outbound without a catch-all section: uncovered destinations get nothing', () => {
    const p = compile(`
  - name: a
    outbound: [{ destinations: ["10.96.0.10:80"], circuitBreaker: { maxConnections: 5 } }]
`);
    expect(p.outbound('10.96.0.10:80', 80)?.circuitBreaker?.maxConnections).toBe(5);
    expect(p.outbound('10.96.0.11:80', 80)).toBeUndefined();
    expect(p.inbound(80)).toBeUndefined();
  });
});
