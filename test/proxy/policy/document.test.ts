import { describe, expect, it } from 'vitest';
import { PolicyInvalidError } from '../../../proxy/src/errors.js';
import { POLICY_LIMITS, parsePolicyDocument, policyVersion } from '../../../proxy/src/policy/document.js';

const GOOD = `
apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: orders
    selector: { namespace: shop, workload: orders }
    inbound:
      - ports: [8080]
        authorization:
          default: deny
          rules:
            - name: frontend-reads
              action: allow
              source:
                identities: [spiffe://cluster.local/ns/web/sa/frontend]
                namespaces: [web]
                identityPrefixes: [spiffe://cluster.local/ns/web/]
                cidrs: [10.0.0.0/8, "fd00::/8", 192.168.1.7]
              request:
                methods: [GET, HEAD]
                paths: [{ prefix: /api/ }, { pattern: /o/*/items }, { exact: /healthz }, { pattern: /static/** }]
                headers: [{ name: x-env, exact: prod }, { name: Authorization, prefix: "Bearer " }, { name: x-debug, present: true }]
            - name: no-admin
              action: deny
              request: { paths: [{ prefix: /admin }] }
            - name: watch
              action: audit
              source: { cidrs: ["::ffff:10.0.0.1"] }
        rateLimit: { requestsPerSecond: 100, burst: 100, per: identity }
        routes:
          - match: { paths: [{ prefix: /slow }] }
            timeoutMs: 2000
            idleTimeoutMs: 10000
            retries: { attempts: 2, budgetPercent: 20, backoffMs: 25, maxBackoffMs: 250, on: [connect-failure, 5xx, reset], grpcStatus: [UNAVAILABLE, RESOURCE_EXHAUSTED] }
    outbound:
      - destinations: ["10.96.0.10:80", "[FD00:0::1]:8080"]
        ports: [80]
        routes: [{ timeoutMs: 1000 }]
        circuitBreaker: { maxConnections: 100, maxPendingRequests: 100, maxRequests: 100 }
        outlierDetection: { consecutive5xx: 5, consecutiveConnectFailures: 3, baseEjectionMs: 30000, maxEjectedPercent: 50 }
  - name: everyone
    inbound:
      - authorization: { default: audit }
`;

/** The errors a document is refused with (fails the test when it parses). */
function errorsOf(text: string): readonly string[] {
  try {
    parsePolicyDocument(text);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyInvalidError);
    expect((err as PolicyInvalidError).code).toBe('RMR_POLICY_INVALID');
    return (err as PolicyInvalidError).errors;
  }
  throw new Error('the document was accepted');
}

/** A document with one policy whose body (YAML, indented under `- `) is `body`. */
function withPolicy(body: string): string {
  const indented = body
    .trim()
    .split('\n')
    .map((l, i) => (i === 0 ? `  - ${l}` : `    ${l}`))
    .join('\n');
  return `apiVersion: remora.dev/v1\nkind: PolicySet\npolicies:\n${indented}\n`;
}

/** A policy with one inbound section holding one rule (`rule` in YAML flow form). */
function withRule(rule: string): string {
  return withPolicy(`name: p\ninbound:\n  - authorization:\n      rules:\n        - ${rule}`);
}

const RULE = 'policies[0].inbound[0].authorization.rules[0]';

describe('parsePolicyDocument: good documents', () => {
  it('parses every field of the model, frozen, with destinations in canonical form', () => {
    const doc = parsePolicyDocument(GOOD);
    expect(doc.apiVersion).toBe('remora.dev/v1');
    expect(doc.policies.map((p) => p.name)).toEqual(['orders', 'everyone']);
    const orders = doc.policies[0];
    expect(orders?.selector).toEqual({ namespace: 'shop', workload: 'orders' });
    const rules = orders?.inbound?.[0]?.authorization?.rules ?? [];
    expect(rules.map((r) => `${r.name}:${r.action}`)).toEqual([
      'frontend-reads:allow',
      'no-admin:deny',
      'watch:audit',
    ]);
    expect(rules[0]?.source?.cidrs).toEqual(['10.0.0.0/8', 'fd00::/8', '192.168.1.7']);
    expect(rules[0]?.request?.headers).toEqual([
      { name: 'x-env', exact: 'prod' },
      { name: 'Authorization', prefix: 'Bearer ' },
      { name: 'x-debug', present: true },
    ]);
    expect(orders?.inbound?.[0]?.routes?.[0]?.retries?.on).toEqual(['connect-failure', '5xx', 'reset']);
    expect(orders?.inbound?.[0]?.routes?.[0]?.retries?.grpcStatus).toEqual([
      'UNAVAILABLE',
      'RESOURCE_EXHAUSTED',
    ]);
    expect(orders?.outbound?.[0]?.destinations).toEqual(['10.96.0.10:80', '[fd00::1]:8080']);
    expect(orders?.outbound?.[0]?.outlierDetection?.maxEjectedPercent).toBe(50);
    // Only what was written: no defaults filled in, no undefined keys.
    expect(Object.keys(doc.policies[1] ?? {})).toEqual(['name', 'inbound']);
    expect(Object.isFrozen(doc)).toBe(true);
    expect(Object.isFrozen(rules[0]?.source?.cidrs)).toBe(true);
    expect(() => (doc.policies as unknown as unknown[]).push({})).toThrow();
  });

  it('reads the same document written as JSON', () => {
    const json = JSON.stringify({
      apiVersion: 'remora.dev/v1',
      kind: 'PolicySet',
      policies: [
        {
          name: 'a',
          inbound: [
            { ports: [80], authorization: { default: 'deny', rules: [{ name: 'r', action: 'allow' }] } },
          ],
        },
      ],
    });
    expect(parsePolicyDocument(json).policies[0]?.inbound?.[0]?.authorization?.rules?.[0]?.name).toBe('r');
  });

  it('accepts an empty policy list and a few anchors', () => {
    expect(
      parsePolicyDocument('apiVersion: remora.dev/v1\nkind: PolicySet\npolicies: []\n').policies,
    ).toEqual([]);
    const anchored = withPolicy(
      'name: p\ninbound:\n  - ports: &ports [80, 81]\n    authorization: { default: deny }\n  - ports: *ports',
    );
    expect(parsePolicyDocument(anchored).policies[0]?.inbound?.[1]?.ports).toEqual([80, 81]);
  });

  it('keeps ignoreCase: true on a path condition, and drops ignoreCase: false', () => {
    const doc = parsePolicyDocument(
      withPolicy(
        'name: p\ninbound:\n  - authorization:\n      rules:\n        - { name: r, action: deny, request: { paths: [{ prefix: /Admin/, ignoreCase: true }, { exact: /x, ignoreCase: false }] } }',
      ),
    );
    expect(doc.policies[0]?.inbound?.[0]?.authorization?.rules?.[0]?.request?.paths).toEqual([
      { prefix: '/Admin/', ignoreCase: true },
      { exact: '/x' },
    ]);
  });

  it('policyVersion is the sha256 hex prefix (12), stable, and changes with the text', () => {
    expect(policyVersion(GOOD)).toMatch(/^[0-9a-f]{12}$/);
    expect(policyVersion(GOOD)).toBe(policyVersion(GOOD));
    expect(policyVersion(`${GOOD} `)).not.toBe(policyVersion(GOOD));
    // sha256("") starts with e3b0c44298fc
    expect(policyVersion('')).toBe('e3b0c44298fc');
  });
});

describe('parsePolicyDocument: bad documents, each with its path and reason', () => {
  it.each([
    [
      'unknown rule field',
      `{ name: r, action: allow, sources: {} }`,
      `${RULE}.sources: unknown field (expected one of: name, action, source, request)`,
    ],
    [
      'unknown source field (a typo must not widen a rule)',
      `{ name: r, action: allow, source: { namespace: [web] } }`,
      `${RULE}.source.namespace: unknown field (expected one of: identities, namespaces, identityPrefixes, cidrs)`,
    ],
    [
      'bad action',
      `{ name: r, action: permit }`,
      `${RULE}.action: "permit" is not one of: allow, deny, audit`,
    ],
    ['missing action', `{ name: r }`, `${RULE}.action: is required`],
    [
      'CIDR prefix too long',
      `{ name: r, action: deny, source: { cidrs: ["10.0.0.0/33"] } }`,
      `${RULE}.source.cidrs[0]: "10.0.0.0/33" is not a CIDR: has a prefix length above 32`,
    ],
    [
      'IPv6 CIDR prefix too long',
      `{ name: r, action: deny, source: { cidrs: ["fd00::/200"] } }`,
      `${RULE}.source.cidrs[0]: "fd00::/200" is not a CIDR: has a prefix length above 128`,
    ],
    [
      'CIDR that is a name',
      `{ name: r, action: deny, source: { cidrs: [example.com] } }`,
      `${RULE}.source.cidrs[0]: "example.com" is not a CIDR: is not an IP address or CIDR`,
    ],
    [
      'CIDR that is a number',
      `{ name: r, action: deny, source: { cidrs: [10] } }`,
      `${RULE}.source.cidrs[0]: must be a string, got a number (10)`,
    ],
    [
      'pattern with a partial star',
      `{ name: r, action: deny, request: { paths: [{ pattern: /a*/b }] } }`,
      `${RULE}.request.paths[0].pattern: "/a*/b" is not a valid pattern: "*" must be a whole segment ("/a/*/b"), not part of one`,
    ],
    [
      'pattern with ** inside',
      `{ name: r, action: deny, request: { paths: [{ pattern: /**/b }] } }`,
      `${RULE}.request.paths[0].pattern: "/**/b" is not a valid pattern: "**" may only be the last segment`,
    ],
    [
      'path not starting with /',
      `{ name: r, action: deny, request: { paths: [{ prefix: api/ }] } }`,
      `${RULE}.request.paths[0].prefix: "api/" must start with "/"`,
    ],
    [
      'path with a query',
      `{ name: r, action: deny, request: { paths: [{ exact: "/a?b=1" }] } }`,
      `${RULE}.request.paths[0].exact: "/a?b=1" has "?" or "#": paths match the part before the query`,
    ],
    [
      'path with two kinds',
      `{ name: r, action: deny, request: { paths: [{ exact: /a, prefix: /b }] } }`,
      `${RULE}.request.paths[0]: has exact and prefix; exactly one of exact, prefix, pattern is allowed`,
    ],
    [
      'path with no kind',
      `{ name: r, action: deny, request: { paths: [{}] } }`,
      `${RULE}.request.paths[0]: needs one of: exact, prefix, pattern`,
    ],
    [
      'ignoreCase not a boolean',
      `{ name: r, action: deny, request: { paths: [{ prefix: /a, ignoreCase: "yes" }] } }`,
      `${RULE}.request.paths[0].ignoreCase: must be true or false, got a string ("yes")`,
    ],
    [
      'regex-looking pattern',
      `{ name: r, action: deny, request: { paths: [{ regex: "^/a.*" }] } }`,
      `${RULE}.request.paths[0].regex: unknown field (expected one of: exact, prefix, pattern, ignoreCase)`,
      `${RULE}.request.paths[0]: needs one of: exact, prefix, pattern`,
    ],
    [
      'identity without spiffe://',
      `{ name: r, action: allow, source: { identities: [cluster.local/ns/a/sa/b] } }`,
      `${RULE}.source.identities[0]: "cluster.local/ns/a/sa/b" is not a SPIFFE identity (must start with "spiffe://")`,
    ],
    [
      'identity with no path',
      `{ name: r, action: allow, source: { identities: ["spiffe://cluster.local"] } }`,
      `${RULE}.source.identities[0]: "spiffe://cluster.local" is not a SPIFFE identity (no path after the trust domain)`,
    ],
    [
      'identity with a dot segment',
      `{ name: r, action: allow, source: { identities: ["spiffe://td/ns/../sa/x"] } }`,
      `${RULE}.source.identities[0]: "spiffe://td/ns/../sa/x" is not a SPIFFE identity (bad path segment: empty, "." or "..", or a character outside A-Z a-z 0-9 . - _)`,
    ],
    [
      'identity with an upper-case trust domain',
      `{ name: r, action: allow, source: { identities: ["spiffe://TD/ns/a/sa/b"] } }`,
      `${RULE}.source.identities[0]: "spiffe://TD/ns/a/sa/b" is not a SPIFFE identity (bad trust domain "TD")`,
    ],
    [
      'identity prefix without a final /',
      `{ name: r, action: allow, source: { identityPrefixes: ["spiffe://td/ns/shop"] } }`,
      `${RULE}.source.identityPrefixes[0]: "spiffe://td/ns/shop" is not a SPIFFE identity prefix (must end with "/", so that ".../ns/shop/" cannot match ".../ns/shopping")`,
    ],
    [
      'namespace not a DNS label',
      `{ name: r, action: allow, source: { namespaces: [Web_1] } }`,
      `${RULE}.source.namespaces[0]: "Web_1" is not a DNS label (a-z, 0-9, "-", at most 63, alphanumeric ends)`,
    ],
    [
      'lower-case method',
      `{ name: r, action: allow, request: { methods: [get] } }`,
      `${RULE}.request.methods[0]: "get" must be upper case (GET)`,
    ],
    [
      'method with a space',
      `{ name: r, action: allow, request: { methods: ["GET POST"] } }`,
      `${RULE}.request.methods[0]: "GET POST" is not an HTTP method (RFC 9110 token)`,
    ],
    [
      'header name with a colon',
      `{ name: r, action: allow, request: { headers: [{ name: "x:y", exact: a }] } }`,
      `${RULE}.request.headers[0].name: "x:y" is not a header name (RFC 9110 token characters)`,
    ],
    [
      'header value with a newline',
      `{ name: r, action: allow, request: { headers: [{ name: x, exact: "a\\nb" }] } }`,
      `${RULE}.request.headers[0].exact: "a\\nb" has a control character`,
    ],
    [
      'a rule on the peer identity header (the caller could forge it; any spelling)',
      `{ name: r, action: allow, request: { headers: [{ name: X_Remora-Peer_Identity, exact: "spiffe://td/ns/a/sa/b" }] } }`,
      `${RULE}.request.headers[0].name: X_Remora-Peer_Identity is the proxy's own (removed from every request, never the caller's to set): match the caller with source.identities`,
    ],
    [
      'header present: false',
      `{ name: r, action: allow, request: { headers: [{ name: x, present: false }] } }`,
      `${RULE}.request.headers[0].present: must be true (got false); to refuse a header, use a deny rule`,
    ],
    [
      'rule name not a DNS label',
      `{ name: Read_All, action: allow }`,
      `${RULE}.name: "Read_All" is not a DNS label (a-z, 0-9, "-", at most 63, alphanumeric ends)`,
    ],
  ])('%s', (_name, rule, ...expected) => {
    expect(errorsOf(withRule(rule))).toEqual(expected);
  });

  it.each([
    [
      'port 0',
      'name: p\ninbound: [{ ports: [0] }]',
      'policies[0].inbound[0].ports[0]: 0 is out of range 1..65535',
    ],
    [
      'port 65536',
      'name: p\ninbound: [{ ports: [65536] }]',
      'policies[0].inbound[0].ports[0]: 65536 is out of range 1..65535',
    ],
    [
      'port as a string',
      'name: p\ninbound: [{ ports: ["80"] }]',
      'policies[0].inbound[0].ports[0]: must be an integer, got a string ("80")',
    ],
    [
      'ports not a list',
      'name: p\ninbound: [{ ports: 80 }]',
      'policies[0].inbound[0].ports: must be a list, got a number',
    ],
    [
      'attempts 6',
      'name: p\ninbound: [{ routes: [{ retries: { attempts: 6 } }] }]',
      'policies[0].inbound[0].routes[0].retries.attempts: 6 is out of range 0..5',
    ],
    [
      'budget 101 %',
      'name: p\ninbound: [{ routes: [{ retries: { budgetPercent: 101 } }] }]',
      'policies[0].inbound[0].routes[0].retries.budgetPercent: 101 is out of range 0..100',
    ],
    [
      'retry on an unknown failure',
      'name: p\ninbound: [{ routes: [{ retries: { on: [timeout] } }] }]',
      'policies[0].inbound[0].routes[0].retries.on[0]: "timeout" is not one of: connect-failure, 5xx, reset',
    ],
    [
      'retry on a gRPC status in lower case',
      'name: p\ninbound: [{ routes: [{ retries: { grpcStatus: [unavailable] } }] }]',
      'policies[0].inbound[0].routes[0].retries.grpcStatus[0]: "unavailable" is not a gRPC status name: write UNAVAILABLE',
    ],
    [
      'retry on an unknown gRPC status',
      'name: p\ninbound: [{ routes: [{ retries: { grpcStatus: [UNAVAILABLE, BUSY] } }] }]',
      'policies[0].inbound[0].routes[0].retries.grpcStatus[1]: "BUSY" is not a gRPC status name (one of: CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED)',
    ],
    [
      'retry on OK',
      'name: p\ninbound: [{ routes: [{ retries: { grpcStatus: [OK] } }] }]',
      'policies[0].inbound[0].routes[0].retries.grpcStatus[0]: "OK" is success: only failures are retried',
    ],
    [
      'a gRPC status as a number',
      'name: p\ninbound: [{ routes: [{ retries: { grpcStatus: [14] } }] }]',
      'policies[0].inbound[0].routes[0].retries.grpcStatus[0]: must be a string, got a number (14)',
    ],
    [
      'backoff above its cap',
      'name: p\ninbound: [{ routes: [{ retries: { backoffMs: 500, maxBackoffMs: 100 } }] }]',
      'policies[0].inbound[0].routes[0].retries.maxBackoffMs: 100 is below backoffMs (500)',
    ],
    [
      'timeout 0',
      'name: p\ninbound: [{ routes: [{ timeoutMs: 0 }] }]',
      'policies[0].inbound[0].routes[0].timeoutMs: 0 is out of range 1..86400000',
    ],
    [
      'timeout above a day',
      'name: p\ninbound: [{ routes: [{ idleTimeoutMs: 86400001 }] }]',
      'policies[0].inbound[0].routes[0].idleTimeoutMs: 86400001 is out of range 1..86400000',
    ],
    [
      'fractional timeout',
      'name: p\ninbound: [{ routes: [{ timeoutMs: 1.5 }] }]',
      'policies[0].inbound[0].routes[0].timeoutMs: must be an integer, got a number (1.5)',
    ],
    [
      'rate 0',
      'name: p\ninbound: [{ rateLimit: { requestsPerSecond: 0 } }]',
      'policies[0].inbound[0].rateLimit.requestsPerSecond: 0 must be above 0 and at most 1000000',
    ],
    [
      'rate .inf',
      'name: p\ninbound: [{ rateLimit: { requestsPerSecond: .inf } }]',
      'policies[0].inbound[0].rateLimit.requestsPerSecond: must be a finite number, got a number (Infinity)',
    ],
    [
      'rate limit without a rate',
      'name: p\ninbound: [{ rateLimit: { burst: 5 } }]',
      'policies[0].inbound[0].rateLimit.requestsPerSecond: is required',
    ],
    [
      'rate limit per pod',
      'name: p\ninbound: [{ rateLimit: { requestsPerSecond: 1, per: pod } }]',
      'policies[0].inbound[0].rateLimit.per: "pod" is not one of: identity, global',
    ],
    [
      'ejected share 150 %',
      'name: p\noutbound: [{ outlierDetection: { maxEjectedPercent: 150 } }]',
      'policies[0].outbound[0].outlierDetection.maxEjectedPercent: 150 is out of range 0..100',
    ],
    [
      'breaker limit 0',
      'name: p\noutbound: [{ circuitBreaker: { maxRequests: 0 } }]',
      'policies[0].outbound[0].circuitBreaker.maxRequests: 0 is out of range 1..1000000',
    ],
    [
      'destination without a port',
      'name: p\noutbound: [{ destinations: ["10.0.0.1"] }]',
      'policies[0].outbound[0].destinations[0]: "10.0.0.1" is not a destination (expected "ip:port" or "[ipv6]:port")',
    ],
    [
      'IPv6 destination without brackets',
      'name: p\noutbound: [{ destinations: ["fd00::1:80"] }]',
      'policies[0].outbound[0].destinations[0]: "fd00::1:80" is not a destination (an IPv6 address must be in brackets: "[fd00::1]:80")',
    ],
    [
      'destination by name',
      'name: p\noutbound: [{ destinations: ["orders:80"] }]',
      'policies[0].outbound[0].destinations[0]: "orders:80" is not a destination (host must be an IP address)',
    ],
    [
      'selector with a label',
      'name: p\nselector: { app: x }',
      'policies[0].selector.app: unknown field (expected one of: namespace, workload)',
    ],
    [
      'bad selector workload',
      'name: p\nselector: { workload: "Orders!" }',
      'policies[0].selector.workload: "Orders!" is not a DNS subdomain name (a-z, 0-9, "-", ".")',
    ],
    ['policy without a name', 'inbound: []', 'policies[0].name: is required'],
    [
      '__proto__ is just an unknown field',
      'name: p\n__proto__: { inbound: [] }',
      'policies[0].__proto__: unknown field (expected one of: name, selector, inbound, outbound)',
    ],
    [
      'duplicate rule names across sections',
      'name: p\ninbound:\n  - authorization: { rules: [{ name: r, action: allow }] }\n  - authorization: { rules: [{ name: r, action: deny }] }',
      'policies[0].inbound[1].authorization.rules[0].name: "r" is already used at policies[0].inbound[0].authorization.rules[0].name; rule names are unique per policy',
    ],
  ])('%s', (_name, body, expected) => {
    expect(errorsOf(withPolicy(body))).toEqual([expected]);
  });

  it('refuses duplicate policy names', () => {
    const text =
      'apiVersion: remora.dev/v1\nkind: PolicySet\npolicies: [{ name: a }, { name: b }, { name: a }]';
    expect(errorsOf(text)).toEqual([
      'policies[2].name: "a" is already used by policies[0]; policy names are unique',
    ]);
  });

  it('collects every error of a document, not only the first', () => {
    const errors = errorsOf(
      withPolicy(
        'name: p\nbogus: 1\ninbound:\n  - ports: [0, 80, 70000]\n    authorization: { default: maybe, rules: [{ name: r, action: allow, source: { cidrs: ["1.2.3.4/40"] } }] }',
      ),
    );
    // In the order of the schema's fields (proxy/src/schema.ts checks a mapping's fields as they
    // are declared): `default` before `rules` since the port to the schema; the hand-written
    // parser checked `rules` first. The same five errors.
    expect(errors).toEqual([
      'policies[0].bogus: unknown field (expected one of: name, selector, inbound, outbound)',
      'policies[0].inbound[0].ports[0]: 0 is out of range 1..65535',
      'policies[0].inbound[0].ports[2]: 70000 is out of range 1..65535',
      'policies[0].inbound[0].authorization.default: "maybe" is not one of: allow, deny, audit',
      'policies[0].inbound[0].authorization.rules[0].source.cidrs[0]: "1.2.3.4/40" is not a CIDR: has a prefix length above 32',
    ]);
    // and the message names them all
    try {
      parsePolicyDocument(withPolicy('name: p\nbogus: 1\ninbound: [{ ports: [0] }]'));
    } catch (err) {
      expect((err as Error).message).toBe(
        'invalid policy document:\n' +
          '  - policies[0].bogus: unknown field (expected one of: name, selector, inbound, outbound)\n' +
          '  - policies[0].inbound[0].ports[0]: 0 is out of range 1..65535',
      );
    }
  });

  it('reports at most 100 errors and says how many more there were', () => {
    const ports = Array.from({ length: 150 }, () => 0).join(', ');
    const errors = errorsOf(withPolicy(`name: p\ninbound: [{ ports: [${ports}] }]`));
    expect(errors).toHaveLength(POLICY_LIMITS.maxErrors + 1);
    expect(errors.at(-1)).toBe('... and 50 more errors');
  });

  it.each([
    [
      'wrong apiVersion',
      'apiVersion: remora.dev/v2\nkind: PolicySet\npolicies: []',
      ['apiVersion: "remora.dev/v2" is not supported (expected "remora.dev/v1")'],
    ],
    [
      'wrong kind',
      'apiVersion: remora.dev/v1\nkind: ConfigMap\npolicies: []',
      ['kind: "ConfigMap" is not supported (expected "PolicySet")'],
    ],
    [
      'nothing required',
      'foo: 1',
      [
        'document.foo: unknown field (expected one of: apiVersion, kind, policies)',
        'document.apiVersion: is required',
        'document.kind: is required',
        'document.policies: is required',
      ],
    ],
    ['a list at the top', '- a\n- b', ['document: must be a mapping, got a list']],
    ['plain text', 'hello, this is not a policy', ['document: must be a mapping, got a string']],
    ['empty', '  \n', ['document: is empty']],
  ])('%s', (_name, text, expected) => {
    expect(errorsOf(text)).toEqual(expected);
  });

  it('not YAML at all: the parser error with its line and column', () => {
    const [e] = errorsOf('apiVersion: remora.dev/v1\nkind: [PolicySet\npolicies: {');
    expect(e).toMatch(/^document: not valid YAML or JSON: line \d+, column \d+: /);
    const [j] = errorsOf('{"apiVersion": "remora.dev/v1", "kind": "PolicySet"');
    expect(j).toMatch(/^document: not valid YAML or JSON: /);
    const [b] = errorsOf('\u0000\u0001\u0002{[');
    expect(b).toMatch(/^document: /);
  });

  it('refuses duplicate keys (the second would silently win otherwise)', () => {
    const [e] = errorsOf('apiVersion: remora.dev/v1\nkind: PolicySet\nkind: PolicySet\npolicies: []');
    expect(e).toBe('document: not valid YAML or JSON: line 3, column 1: Map keys must be unique');
  });

  it('refuses an alias bomb (billion laughs) before expanding it', () => {
    const bomb = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
      'g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
    ].join('\n');
    const [e] = errorsOf(bomb);
    expect(e).toBe(
      'document: refused: Excessive alias count indicates a resource exhaustion attack (at most 100 alias expansions)',
    );
  });

  it('refuses absurd nesting before parsing it (flow brackets, block dashes, indentation)', () => {
    expect(errorsOf(`policies: ${'['.repeat(300_000)}`)).toEqual(['document: nested deeper than 64 levels']);
    expect(errorsOf(`${'{a: '.repeat(65)}1${'}'.repeat(65)}`)).toEqual([
      'document: nested deeper than 64 levels',
    ]);
    expect(errorsOf(`${'- '.repeat(200)}x`)).toEqual([
      'document: indented or nested deeper than 256 columns',
    ]);
    // brackets in quotes and comments do not count; a real document is nowhere near the bounds
    const quoted = withRule(
      `{ name: r, action: allow, request: { headers: [{ name: x, exact: "${'['.repeat(100)}" }] } } # ${'{'.repeat(100)}`,
    );
    expect(errorsOf(quoted.replace('name: r,', 'name: R,'))).toEqual([
      `${RULE}.name: "R" is not a DNS label (a-z, 0-9, "-", at most 63, alphanumeric ends)`,
    ]);
    expect(parsePolicyDocument(quoted).policies).toHaveLength(1);
  });

  it('refuses a document above 1 MiB without parsing it', () => {
    const padding = `# ${'x'.repeat(1024 * 1024)}\n`;
    const text = `${padding}apiVersion: remora.dev/v1\nkind: PolicySet\npolicies: []`;
    const errors = errorsOf(text);
    const bytes = Buffer.byteLength(text);
    expect(bytes).toBeGreaterThan(1024 * 1024);
    expect(errors).toEqual([`document: ${bytes} bytes; at most 1048576 are allowed`]);
  });

  it('caps counts: policies, rules, list entries', () => {
    const policies = Array.from({ length: POLICY_LIMITS.maxPolicies + 1 }, (_, i) => `{ name: p${i} }`).join(
      ', ',
    );
    expect(errorsOf(`apiVersion: remora.dev/v1\nkind: PolicySet\npolicies: [${policies}]`)).toEqual([
      'policies: has 257 entries; at most 256 are allowed',
    ]);
    const rules = Array.from(
      { length: POLICY_LIMITS.maxRules + 1 },
      (_, i) => `{ name: r${i}, action: allow }`,
    ).join(', ');
    expect(errorsOf(withPolicy(`name: p\ninbound: [{ authorization: { rules: [${rules}] } }]`))).toEqual([
      'policies[0].inbound[0].authorization.rules: has 1025 entries; at most 1024 are allowed',
    ]);
    const cidrs = Array.from({ length: POLICY_LIMITS.maxEntries + 1 }, () => '"10.0.0.0/8"').join(', ');
    expect(errorsOf(withRule(`{ name: r, action: deny, source: { cidrs: [${cidrs}] } }`))).toEqual([
      `${RULE}.source.cidrs: has 1025 entries; at most 1024 are allowed`,
    ]);
    const sections = Array.from({ length: POLICY_LIMITS.maxSections + 1 }, () => '{}').join(', ');
    expect(errorsOf(withPolicy(`name: p\ninbound: [${sections}]`))).toEqual([
      'policies[0].inbound: has 65 entries; at most 64 are allowed',
    ]);
  });
});
