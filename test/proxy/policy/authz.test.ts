/**
 * The authorization layer in a real engine on loopback: real sockets, a real backend, the policy
 * held by a real PolicyHolder (as the engine gets it in production). Plaintext callers only here
 * (no identity); identities over the mTLS tunnel are covered by test/e2e/policy.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { Engine } from '../../../proxy/src/engine.js';
import { createLogger } from '../../../proxy/src/log.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { RequestContext } from '../../../proxy/src/http/layer.js';
import { NodeResponse } from '../../../proxy/src/http/server.js';
import { authorizeConnection, authzLayer } from '../../../proxy/src/policy/authz.js';
import { compilePolicy } from '../../../proxy/src/policy/compile.js';
import { parsePolicyDocument } from '../../../proxy/src/policy/document.js';
import { PolicyHolder } from '../../../proxy/src/policy/holder.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { rawExchange, sample, scrape, startBackend } from '../harness.js';
import type { Backend } from '../harness.js';

let backend: Backend;
let engine: Engine;
let holder: PolicyHolder;
const logs: Record<string, unknown>[] = [];

/** One policy `app` on the backend's port, default deny, with these rules (YAML flow, one a line). */
function policyText(port: number, rules: readonly string[]): string {
  return `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: app
    inbound:
      - ports: [${port}]
        authorization:
          default: deny
          rules:
${rules.map((r) => `            - ${r}`).join('\n')}
`;
}

/** The first policy: loopback may read /public/** over HTTP, minus the secrets. */
const HTTP_ONLY = [
  '{ name: no-secrets, action: deny, request: { paths: [{ prefix: /public/secret }] } }',
  '{ name: watch, action: audit, request: { paths: [{ exact: /public/audited }] } }',
  '{ name: web-api, action: allow, source: { namespaces: [web] }, request: { paths: [{ prefix: /api/ }] } }',
  '{ name: lan, action: allow, source: { cidrs: [127.0.0.0/8] }, request: { paths: [{ pattern: /public/** }] } }',
];
/** The update: any TCP from loopback, and no deny rule that a connection from it would trip (no
 *  rule with request conditions either: those make the port refuse what is not HTTP). */
const ANY_TCP = [
  '{ name: no-secrets, action: deny, source: { cidrs: [10.0.0.0/8] } }',
  '{ name: lan, action: allow, source: { cidrs: [127.0.0.0/8] } }',
];

function port(name: 'inbound' | 'metrics'): number {
  const a = engine.addresses()[name];
  if (a === undefined) throw new Error(`no ${name} listener`);
  return a.port;
}

beforeAll(async () => {
  backend = await startBackend();
  const config = parseConfig({
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.logLevel]: 'info',
    [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger(config.logLevel, sink);
  const metrics = new ProxyMetrics();
  holder = new PolicyHolder({
    self: { namespace: 'shop', workload: 'orders' },
    metrics: PolicyMetrics.of(metrics.registry),
    log,
    source: 'test',
  });
  holder.load(policyText(backend.port, HTTP_ONLY), 'test');
  engine = new Engine({ config, log, metrics, policy: holder });
  await engine.start();
});

afterAll(async () => {
  agent.destroy();
  await engine?.close();
  await backend?.close();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(path: string, method = 'GET', body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: port('inbound'), path, method, agent }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  return sample(await scrape(port('metrics')), name, labels) ?? 0;
}

const denied403 = { direction: 'inbound', status_code: '403' };

describe('authzLayer in a real engine (plaintext callers)', () => {
  it('an allowed request reaches the app', async () => {
    const before = backend.received.length;
    const r = await request('/public/page?x=1');
    expect(r.status).toBe(200);
    expect(r.body).toBe('hello world\n');
    expect(backend.received.length).toBe(before + 1);
    expect(backend.received.at(-1)?.url).toBe('/public/page?x=1');
  });

  it('a denied request gets 403 RMR_POLICY_DENIED naming the rule, never reaches the app, and is counted and logged', async () => {
    const before = backend.received.length;
    const denials = await metric('remora_policy_denials_total', {
      direction: 'inbound',
      reason: 'app/no-secrets',
    });
    const answers = await metric('remora_requests_total', denied403);
    const r = await request('/public/secret/keys');
    expect(r.status).toBe(403);
    expect(r.headers['x-remora-error']).toBe('RMR_POLICY_DENIED');
    expect(r.headers.connection).toBe('keep-alive');
    expect(r.body).toBe('refused by policy: app/no-secrets\n');
    expect(backend.received.length).toBe(before);
    expect(
      await metric('remora_policy_denials_total', { direction: 'inbound', reason: 'app/no-secrets' }),
    ).toBe(denials + 1);
    expect(await metric('remora_requests_total', denied403)).toBe(answers + 1);
    const line = logs.findLast((l) => l.event === 'policy_denied');
    expect(line).toMatchObject({
      level: 'warn',
      direction: 'inbound',
      reason: 'app/no-secrets',
      method: 'GET',
      path: '/public/secret/keys',
      identity: null,
      port: backend.port,
    });
  });

  it('a dot-segment path does not slip past a deny rule', async () => {
    const before = backend.received.length;
    const r = await rawExchange(
      port('inbound'),
      'GET /public/x/../secret/keys HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
    );
    expect(r).toMatch(/^HTTP\/1\.1 403 /);
    expect(r).toContain('refused by policy: app/no-secrets');
    expect(backend.received.length).toBe(before);
  });

  it('the default decides when no rule matches', async () => {
    const r = await request('/private');
    expect(r.status).toBe(403);
    expect(r.body).toBe('refused by policy: app/default\n');
  });

  it('an identity rule that would allow the request says mTLS is required', async () => {
    const r = await request('/api/orders');
    expect(r.status).toBe(403);
    expect(r.body).toBe(
      'refused by policy: app/default (requires mTLS: the allowing rule names a source identity)\n',
    );
    expect(logs.findLast((l) => l.event === 'policy_denied')).toMatchObject({ needsMtls: true });
  });

  it('an audit rule lets the request through, counted and logged', async () => {
    const before = backend.received.length;
    const audits = await metric('remora_policy_audits_total', { direction: 'inbound', reason: 'app/watch' });
    const r = await request('/public/audited');
    expect(r.status).toBe(200);
    expect(backend.received.length).toBe(before + 1);
    expect(await metric('remora_policy_audits_total', { direction: 'inbound', reason: 'app/watch' })).toBe(
      audits + 1,
    );
    expect(logs.findLast((l) => l.event === 'policy_audit')).toMatchObject({
      level: 'warn',
      reason: 'app/watch',
    });
  });

  it('a denied request with a body: 403, the body is discarded, the connection serves the next request', async () => {
    const before = backend.received.length;
    const body = 'x'.repeat(100_000);
    const out = await rawExchange(
      port('inbound'),
      `POST /private HTTP/1.1\r\nhost: a\r\ncontent-length: ${body.length}\r\n\r\n${body}` +
        'GET /public/next HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
      5000,
    );
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    expect(statuses).toEqual(['403', '200']);
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/public/next']);
  });

  it('opaque TCP: a deny rule matches on its source alone (fail safe), and the connection is closed', async () => {
    const accepted = backend.acceptedSockets();
    const reason = { direction: 'inbound', reason: 'app/no-secrets' };
    const denials = await metric('remora_policy_denials_total', reason);
    const got = await rawExchange(port('inbound'), Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe]), 3000);
    expect(got).toBe('');
    expect(backend.acceptedSockets()).toBe(accepted);
    expect(await metric('remora_policy_denials_total', reason)).toBe(denials + 1);
    expect(logs.findLast((l) => l.event === 'policy_denied')).toMatchObject({
      level: 'warn',
      protocol: 'opaque',
      reason: 'app/no-secrets',
    });
  });

  it('after a live update allowing the source, the same opaque connection is relayed', async () => {
    expect(holder.update(policyText(backend.port, ANY_TCP), 'test')).toBe(true);
    const accepted = backend.acceptedSockets();
    // The backend speaks HTTP: it answers the junk with 400, which proves the bytes got through.
    const got = await rawExchange(port('inbound'), 'NOT-HTTP\x00\x01\r\n\r\n', 3000);
    expect(backend.acceptedSockets()).toBe(accepted + 1);
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
    // over HTTP the updated policy decides too: loopback may now read what no-secrets kept
    expect((await request('/public/secret')).status).toBe(200);
    expect((await request('/anything')).status).toBe(200);
  });
});

describe('authorizeConnection (the opaque gate) without a policy', () => {
  it('admits everything when no policy is in force or no section covers the port', () => {
    const m = PolicyMetrics.of(new Registry());
    const log = createLogger('silent');
    expect(
      authorizeConnection({ current: undefined }, 80, { identity: undefined, address: '10.0.0.1' }, m, log),
    ).toBe(true);
    const doc = parsePolicyDocument(
      'apiVersion: remora.dev/v1\nkind: PolicySet\npolicies: [{ name: p, inbound: [{ ports: [81], authorization: { default: deny } }] }]',
    );
    const current = compilePolicy(doc, { namespace: undefined, workload: undefined }, 'v');
    expect(authorizeConnection({ current }, 80, { identity: undefined, address: '10.0.0.1' }, m, log)).toBe(
      true,
    );
    expect(authorizeConnection({ current }, 81, { identity: undefined, address: '10.0.0.1' }, m, log)).toBe(
      false,
    );
    expect(m.denials.child('inbound', 'p/default').value).toBe(1);
  });
});

describe('authzLayer on a context without listener deps', () => {
  it('answers 403 by itself and counts it in the requests series it was given', async () => {
    const metrics = new ProxyMetrics();
    const doc = parsePolicyDocument(
      'apiVersion: remora.dev/v1\nkind: PolicySet\npolicies: [{ name: p, inbound: [{ authorization: { default: deny, rules: [{ name: get, action: allow, request: { methods: [GET] } }] } }] }]',
    );
    const current = compilePolicy(doc, { namespace: undefined, workload: undefined }, 'v');
    const handler = authzLayer({
      policy: { current },
      metrics: PolicyMetrics.of(metrics.registry),
      log: createLogger('error'),
      requests: metrics.inbound,
    })((ctx) => ctx.response.end('passed\n'));
    const server = http.createServer((req, res) => {
      const ctx = new RequestContext(
        'inbound',
        new NodeResponse(res, req.socket),
        null,
        req.method ?? '',
        req.url ?? '/',
        req.rawHeaders,
        req.httpVersion,
        performance.now(),
        {
          peerAddress: '127.0.0.1',
          peerPort: 1,
          peerIdentity: undefined,
          destination: { host: '127.0.0.1', port: 80 },
          destinationKey: '127.0.0.1:80',
        },
        [],
        false,
      );
      handler(ctx);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const p = (server.address() as AddressInfo).port;
      const get = await fetch(`http://127.0.0.1:${p}/x`);
      expect(await get.text()).toBe('passed\n');
      const del = await fetch(`http://127.0.0.1:${p}/x`, { method: 'DELETE' });
      expect(del.status).toBe(403);
      expect(del.headers.get('x-remora-error')).toBe('RMR_POLICY_DENIED');
      expect(await del.text()).toBe('refused by policy: p/default\n');
      expect(metrics.inbound.requests(403).value).toBe(1);
      expect(PolicyMetrics.of(metrics.registry).denials.child('inbound', 'p/default').value).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
