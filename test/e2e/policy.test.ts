// Policy end to end in network namespaces (issue 7 §3): authorization (L7 and L4), audit,
// retries, the local rate limit, outlier ejection and a live policy update, with the built
// binaries. The control plane (remora-injector: identity CA, discovery, policy stream) runs in
// its own pod; pods A (client), B (web) and D (backup: a second endpoint and another identity)
// run remora-init and remora-proxy as UID/GID 1337 with their apps as UID 1000; C has no sidecar
// (a plaintext caller). Service ClusterIPs are DNATed in the bridge namespace as kube-proxy does;
// meshed callers pick endpoints from discovery. Apps and clients take commands over unix
// sockets, so the test never sends a byte through a proxy except the traffic under test.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ENV, INJECTOR_ENV, METRICS, PORTS } from '../../proxy/src/contract.js';
import type { PolicyDocument } from '../../proxy/src/policy/types.js';
import { ERROR_HEADER } from '../../proxy/src/rescue.js';
import { newRoot } from '../../injector/src/ca/root.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, eventually, readMetrics, sumMetric } from './harness/index.js';
import type { Identity, Pod, Proc } from './harness/index.js';
import { PROXY_IDENTITY, runInit, startProxy } from './harness/remora.js';
import { REPO_ROOT } from './harness/harness.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv', 'ss'],
});

const APP: Identity = { uid: 1000, gid: 1000 };
const APP_SCRIPT = fileURLToPath(new URL('./policy-app.mjs', import.meta.url));
const CLIENT_SCRIPT = fileURLToPath(new URL('./policy-client.mjs', import.meta.url));
const INJECTOR_BIN = `${REPO_ROOT}injector/dist/bin/remora-injector.js`;
const TD = 'cluster.local';
const NS = 'shop';
const ID = {
  a: `spiffe://${TD}/ns/${NS}/sa/client`,
  b: `spiffe://${TD}/ns/${NS}/sa/web`,
  d: `spiffe://${TD}/ns/${NS}/sa/backup`,
};
const TOKENS: Record<string, string> = {
  'token-of-pod-a-0123456789': `${NS}/client`,
  'token-of-pod-b-0123456789': `${NS}/web`,
  'token-of-pod-d-0123456789': `${NS}/backup`,
};
const GATEWAY = '10.213.0.1';
const CA_PORT = 15012;
/** B's app ports: each carries one policy section. */
const PORT = { authz: 8080, limited: 8082, audit: 8083, pool: 8090, pool2: 8091, tcp: 9000 };
/** Service ClusterIPs (outside the pods' subnet, routed through the bridge namespace). */
const SVC = {
  web: '10.96.0.10',
  tcp: '10.96.0.11',
  limited: '10.96.0.12',
  audit: '10.96.0.13',
  pool: '10.96.0.20',
};
const RATE = { limit: 50, burst: 50, send: 200, seconds: 5 };
const EJECT = { consecutive5xx: 3, baseEjectionMs: 4000 };

/**
 * The one document: B and D read it from REMORA_POLICY_FILE, A gets it from the injector, which
 * serves the same file on its stream; selectors pick each workload's part.
 */
function policyDocument(
  extraWebRules: { name: string; action: 'deny'; path: string }[] = [],
): PolicyDocument {
  return {
    apiVersion: 'remora.dev/v1',
    kind: 'PolicySet',
    policies: [
      {
        name: 'web',
        selector: { namespace: NS, workload: 'web' },
        inbound: [
          {
            ports: [PORT.authz],
            authorization: {
              default: 'deny',
              rules: [
                { name: 'no-admin', action: 'deny', request: { paths: [{ prefix: '/admin' }] } },
                ...extraWebRules.map((r) => ({
                  name: r.name,
                  action: r.action,
                  request: { paths: [{ prefix: r.path }] },
                })),
                { name: 'client-calls', action: 'allow', source: { identities: [ID.a] } },
              ],
            },
            routes: [
              {
                match: { paths: [{ prefix: '/in/' }] },
                retries: { attempts: 2, backoffMs: 10, on: ['reset', '5xx'] },
              },
            ],
          },
          { ports: [PORT.audit], authorization: { default: 'audit' } },
          {
            ports: [PORT.limited],
            rateLimit: { requestsPerSecond: RATE.limit, burst: RATE.burst, per: 'identity' },
          },
          {
            ports: [PORT.tcp],
            authorization: {
              rules: [{ name: 'no-tcp-from-client', action: 'deny', source: { identities: [ID.a] } }],
            },
          },
        ],
      },
      {
        name: 'client',
        selector: { namespace: NS, workload: 'client' },
        outbound: [
          {
            destinations: [`${SVC.web}:80`],
            routes: [
              {
                match: { paths: [{ prefix: '/out/' }] },
                retries: { attempts: 2, backoffMs: 10, on: ['5xx', 'reset'] },
              },
            ],
          },
          {
            destinations: [`${SVC.pool}:80`],
            outlierDetection: { ...EJECT, maxEjectedPercent: 50 },
          },
        ],
      },
    ],
  };
}

interface HttpAnswer {
  status?: number;
  headers?: Record<string, string | undefined>;
  body?: string;
  error?: string;
}

interface AppLogEntry {
  kind: 'http' | 'tcp';
  port: number;
  url?: string;
  data?: string;
  identity?: string | null;
  t: number;
}

/** One command over a helper's unix control socket. */
function control<T>(socketPath: string, path: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method: body === undefined ? 'GET' : 'POST' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(text) as T);
        } catch (err) {
          reject(new Error(`${socketPath} ${path}: ${text}`, { cause: err }));
        }
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Runs a setup command inside a namespace; throws with its output when it fails. */
function inNs(ns: string, cmd: string, args: readonly string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How many of these arrivals (ms, sorted) an exact token bucket accepts. */
function tokenBucket(arrivals: readonly number[], rate: number, burst: number): number {
  let tokens = burst;
  let last = arrivals[0] ?? 0;
  let accepted = 0;
  for (const t of arrivals) {
    tokens = Math.min(burst, tokens + ((t - last) * rate) / 1000);
    last = t;
    if (tokens >= 1) {
      tokens -= 1;
      accepted++;
    }
  }
  return accepted;
}

describe.skipIf(skip !== undefined)(`policy between meshed pods in namespaces ${skip ?? ''}`, () => {
  let h: Harness;
  let ctrl: Pod;
  let a: Pod;
  let b: Pod;
  let c: Pod;
  let d: Pod;
  let proxyA: Proc;
  let proxyB: Proc;
  let dir: string;
  let policyFile: string;
  /** unix control sockets of the apps (B, D) and the clients (A, C, D) */
  const sock = { appB: '', appD: '', clientA: '', clientC: '', clientD: '' };

  function meshEnv(
    token: string,
    workload: string,
    extra: Record<string, string> = {},
  ): Record<string, string> {
    const tokenFile = join(dir, `${token}.token`);
    writeFileSync(tokenFile, token);
    return {
      [ENV.caAddress]: `${ctrl.ip}:${CA_PORT}`,
      [ENV.caBundleFile]: join(dir, 'bundle.pem'),
      [ENV.tokenFile]: tokenFile,
      [ENV.trustDomain]: TD,
      [ENV.discoveryFile]: join(dir, 'discovery.json'),
      [ENV.podNamespace]: NS,
      [ENV.workload]: workload,
      [ENV.policyFile]: policyFile,
      [ENV.logLevel]: 'info',
      [ENV.accessLog]: 'off',
      ...extra,
    };
  }

  async function startHelper(
    pod: Pod,
    script: string,
    args: readonly string[],
    label: string,
  ): Promise<string> {
    const socketPath = join(h.tempDir(APP), `${label}.sock`);
    const p = h.spawn(pod, process.execPath, [script, socketPath, ...args], {
      as: APP,
      label,
    });
    await p.waitForLine(/^listening/);
    return socketPath;
  }

  const get = (client: string, url: string): Promise<HttpAnswer> =>
    control<HttpAnswer>(client, '/', { op: 'http', url });
  const appLog = (app: string): Promise<AppLogEntry[]> => control<AppLogEntry[]>(app, '/log');

  const metric = async (pod: Pod, name: string, labels: Record<string, string> = {}): Promise<number> =>
    sumMetric(await readMetrics(h, pod, PORTS.metrics), name, labels);
  /** The supervisor publishes the engine's counters with its heartbeat: wait for the value. */
  const metricReaches = (
    pod: Pod,
    name: string,
    labels: Record<string, string>,
    min: number,
  ): Promise<number> =>
    eventually(
      `${name} ${JSON.stringify(labels)} >= ${min} in ${pod.name}`,
      () => metric(pod, name, labels),
      (v) => v >= min,
    );
  /** Inbound access log lines of a proxy for one path, parsed. */
  const accessLog = (p: Proc, path: string): Record<string, unknown>[] =>
    p
      .output()
      .split('\n')
      .filter((l) => l.includes(`"path":"${path}"`) && l.includes('"direction":"inbound"'))
      .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>);
  /** Log lines of a proxy that carry `event`, parsed. */
  const events = (p: Proc, event: string): Record<string, unknown>[] =>
    p
      .output()
      .split('\n')
      .filter((l) => l.includes(`"event":"${event}"`))
      .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>);
  /** The engine's log lines arrive in batches (up to 50 ms late): wait for `done`. */
  const logged = (
    p: Proc,
    event: string,
    done: (e: Record<string, unknown>[]) => boolean,
  ): Promise<Record<string, unknown>[]> =>
    eventually(`${event} logged`, () => Promise.resolve(events(p, event)), done);

  beforeAll(async () => {
    h = Harness.create();
    ctrl = h.addPod('ctrl');
    a = h.addPod('a');
    b = h.addPod('b');
    c = h.addPod('c');
    d = h.addPod('d');
    dir = h.tempDir(PROXY_IDENTITY);
    policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, stringify(policyDocument()));

    // kube-proxy's part: the bridge namespace routes and DNATs the ClusterIPs (for callers
    // without a sidecar); masquerade so replies come back through the same conntrack entry.
    inNs(h.bridgeNs, 'ip', ['addr', 'add', `${GATEWAY}/24`, 'dev', h.bridge]);
    inNs(h.bridgeNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    for (const [svc, port, target] of [
      [SVC.web, 80, PORT.authz],
      [SVC.tcp, PORT.tcp, PORT.tcp],
    ] as const) {
      inNs(h.bridgeNs, 'iptables', [
        ...['-t', 'nat', '-A', 'PREROUTING', '-d', svc, '-p', 'tcp', '--dport', String(port)],
        ...['-j', 'DNAT', '--to-destination', `${b.ip}:${target}`],
      ]);
    }
    inNs(h.bridgeNs, 'iptables', [
      ...['-t', 'nat', '-A', 'POSTROUTING', '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'MASQUERADE'],
    ]);
    for (const p of [ctrl, a, b, c, d]) inNs(p.ns, 'ip', ['route', 'add', '10.96.0.0/16', 'via', GATEWAY]);

    // The control plane: identity CA with a mounted root and static tokens, serving discovery.
    const root = newRoot(TD);
    const caDir = h.tempDir();
    writeFileSync(join(caDir, 'ca.crt'), root.certPem);
    writeFileSync(join(caDir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(caDir, 'tokens.json'), JSON.stringify(TOKENS));
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    const ep = (pod: Pod, port: number, identity: string): Record<string, unknown> => ({
      ip: pod.ip,
      port,
      meshed: true,
      identity,
    });
    writeFileSync(
      join(dir, 'discovery.json'),
      JSON.stringify({
        services: {
          [`${SVC.web}:80`]: { endpoints: [ep(b, PORT.authz, ID.b)] },
          [`${SVC.tcp}:${PORT.tcp}`]: { endpoints: [ep(b, PORT.tcp, ID.b)] },
          [`${SVC.limited}:80`]: { endpoints: [ep(b, PORT.limited, ID.b)] },
          [`${SVC.audit}:80`]: { endpoints: [ep(b, PORT.audit, ID.b)] },
          [`${SVC.pool}:80`]: {
            endpoints: [ep(b, PORT.pool, ID.b), ep(b, PORT.pool2, ID.b), ep(d, PORT.pool, ID.d)],
          },
        },
      }),
    );
    const ca = h.spawn(ctrl, process.execPath, [INJECTOR_BIN, '--no-kubernetes'], {
      label: 'remora-injector',
      env: {
        [INJECTOR_ENV.caDir]: caDir,
        [INJECTOR_ENV.staticTokens]: join(caDir, 'tokens.json'),
        [INJECTOR_ENV.caPort]: String(CA_PORT),
        [INJECTOR_ENV.port]: String(CA_PORT + 1000),
        [INJECTOR_ENV.discoveryFile]: join(dir, 'discovery.json'),
        [INJECTOR_ENV.policyFile]: policyFile,
        [INJECTOR_ENV.logLevel]: 'info',
      },
    });
    await ca.waitForLine(/"event":"ca_started"/, 15_000);

    // Apps first (remora-init's capture needs nothing listening), then the sidecars in parallel.
    [sock.appB, sock.appD] = await Promise.all([
      startHelper(
        b,
        APP_SCRIPT,
        ['b', [PORT.authz, PORT.limited, PORT.audit, PORT.pool, PORT.pool2].join(','), String(PORT.tcp)],
        'app-b',
      ),
      startHelper(d, APP_SCRIPT, ['d', String(PORT.pool), ''], 'app-d'),
    ]);
    for (const p of [a, b, d]) await runInit(h, p);
    const proxies = await Promise.all([
      // A takes discovery and its policy from the injector's stream (no files), B and D from files.
      startProxy(
        h,
        a,
        meshEnv('token-of-pod-a-0123456789', 'client', {
          [ENV.discoveryFile]: '',
          [ENV.policyFile]: '',
          [ENV.discoveryAddress]: `${ctrl.ip}:${CA_PORT}`,
        }),
      ),
      // B's access log times every request's arrival (the rate limit case reads it).
      startProxy(h, b, meshEnv('token-of-pod-b-0123456789', 'web', { [ENV.accessLog]: 'on' })),
      startProxy(h, d, meshEnv('token-of-pod-d-0123456789', 'backup')),
    ]);
    [proxyA, proxyB] = proxies as [Proc, Proc, Proc];
    [sock.clientA, sock.clientC, sock.clientD] = await Promise.all([
      startHelper(a, CLIENT_SCRIPT, [], 'client-a'),
      startHelper(c, CLIENT_SCRIPT, [], 'client-c'),
      startHelper(d, CLIENT_SCRIPT, [], 'client-d'),
    ]);
  }, 120_000);
  afterAll(() => h?.teardown());

  it('a request a deny rule matches gets 403 RMR_POLICY_DENIED; B counts it and logs a policy_denied security event', async () => {
    const reason = 'web/no-admin';
    const before = await metric(b, METRICS.policyDenials, { direction: 'inbound', reason });
    const marker = `/admin/${randomBytes(6).toString('hex')}`;
    const r = await get(sock.clientA, `http://${SVC.web}${marker}`);
    expect(r.status).toBe(403);
    expect(r.headers?.[ERROR_HEADER]).toBe('RMR_POLICY_DENIED');
    expect(r.body).toContain(reason);
    await metricReaches(b, METRICS.policyDenials, { direction: 'inbound', reason }, before + 1);
    const logged = await eventually(
      'policy_denied logged by B',
      () => Promise.resolve(events(proxyB, 'policy_denied').filter((e) => e.reason === reason)),
      (l) => l.length > 0,
    );
    expect(logged[0]).toMatchObject({ level: 'warn', reason, identity: ID.a, path: marker });
    // B's app never saw it.
    expect((await appLog(sock.appB)).some((e) => e.url === marker)).toBe(false);
  });

  it('an identity rule lets A (its SPIFFE identity over mTLS) through; a plaintext caller (requires mTLS) and another identity get 403', async () => {
    const ok = await get(sock.clientA, `http://${SVC.web}/api/orders`);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body ?? '{}')).toMatchObject({ server: `b:${PORT.authz}`, identity: ID.a });

    // C has no sidecar: plaintext through the ClusterIP (DNAT) and to B's pod IP directly.
    for (const url of [`http://${SVC.web}/api/orders`, `http://${b.ip}:${PORT.authz}/api/orders`]) {
      const plain = await get(sock.clientC, url);
      expect(plain.status).toBe(403);
      expect(plain.headers?.[ERROR_HEADER]).toBe('RMR_POLICY_DENIED');
      expect(plain.body).toMatch(/requires mTLS/i);
    }
    // D is meshed but another workload: B sees its identity and the default denies it.
    const other = await get(sock.clientD, `http://${SVC.web}/api/orders`);
    expect(other.status).toBe(403);
    expect(other.headers?.[ERROR_HEADER]).toBe('RMR_POLICY_DENIED');
    expect(other.body).toContain('web/default');
    const denied = (e: Record<string, unknown>[]) => e.filter((x) => x.identity === ID.d);
    expect(denied(await logged(proxyB, 'policy_denied', (e) => denied(e).length > 0))).toHaveLength(1);
    await metricReaches(b, METRICS.policyDenials, { direction: 'inbound', reason: 'web/default' }, 3);
  });

  it('an L4 deny closes A’s opaque TCP connection and B’s app never gets the bytes (a plaintext caller’s are echoed)', async () => {
    const reason = 'web/no-tcp-from-client';
    const before = await metric(b, METRICS.policyDenials, { direction: 'inbound', reason });
    const denied = `tcp-denied-${randomBytes(6).toString('hex')}`;
    const allowed = `tcp-allowed-${randomBytes(6).toString('hex')}`;
    const r = await control<{ data: string; closed: string; error?: string }>(sock.clientA, '/', {
      op: 'tcp',
      host: SVC.tcp,
      port: PORT.tcp,
      payload: denied,
    });
    expect(r.data).toBe('');
    expect(r.closed).toBe('peer');
    // Control: the same port echoes a plaintext caller (the rule names an identity: no match).
    const ctl = await control<{ data: string; closed: string }>(sock.clientC, '/', {
      op: 'tcp',
      host: SVC.tcp,
      port: PORT.tcp,
      payload: allowed,
    });
    expect(ctl).toMatchObject({ data: allowed, closed: 'echoed' });
    await metricReaches(b, METRICS.policyDenials, { direction: 'inbound', reason }, before + 1);
    const tcpLog = (await appLog(sock.appB)).filter((e) => e.kind === 'tcp');
    // The app saw one connection, the plaintext caller's: the denied one never reached it.
    expect(tcpLog.map((e) => e.data)).toEqual([allowed]);
    expect(
      (await logged(proxyB, 'policy_denied', (e) => e.some((x) => x.reason === reason))).length,
    ).toBeGreaterThan(0);
  });

  it('default audit lets the request through, counts it and logs a policy_audit event', async () => {
    const before = await metric(b, METRICS.policyAudits, { direction: 'inbound' });
    const path = `/audited/${randomBytes(6).toString('hex')}`;
    const r = await get(sock.clientA, `http://${SVC.audit}${path}`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body ?? '{}')).toMatchObject({ server: `b:${PORT.audit}`, url: path });
    await metricReaches(b, METRICS.policyAudits, { direction: 'inbound' }, before + 1);
    const audit = await eventually(
      'policy_audit logged by B',
      () => Promise.resolve(events(proxyB, 'policy_audit').filter((e) => e.path === path)),
      (l) => l.length > 0,
    );
    expect(audit[0]).toMatchObject({ level: 'warn', reason: 'web/default', identity: ID.a });
  });

  it('a retry rescues a first attempt that fails: 503 retried by A’s outbound route, a reset by B’s inbound route; the client sees 200', async () => {
    const key = randomBytes(6).toString('hex');
    const outBefore = await metric(a, METRICS.retries, { direction: 'outbound' });
    const flaky = await get(sock.clientA, `http://${SVC.web}/out/flaky/${key}`);
    expect(flaky.status).toBe(200);
    await metricReaches(a, METRICS.retries, { direction: 'outbound', reason: '5xx' }, outBefore + 1);

    const inBefore = await metric(b, METRICS.retries, { direction: 'inbound' });
    const reset = await get(sock.clientA, `http://${SVC.web}/in/reset-once/${key}`);
    expect(reset.status).toBe(200);
    await metricReaches(b, METRICS.retries, { direction: 'inbound', reason: 'reset' }, inBefore + 1);
    // The app saw each failing request twice: the failure, then the retry.
    const seen = (await appLog(sock.appB)).filter((e) => e.url?.endsWith(key)).map((e) => e.url);
    expect(seen).toEqual([
      `/out/flaky/${key}`,
      `/out/flaky/${key}`,
      `/in/reset-once/${key}`,
      `/in/reset-once/${key}`,
    ]);
  });

  it(`the local rate limit (${RATE.limit}/s, burst ${RATE.burst}) holds within 10 % under ${RATE.send} req/s for ${RATE.seconds} s`, async () => {
    const before = await metric(b, METRICS.rateLimited, { direction: 'inbound' });
    const opaqueIn = { direction: 'inbound', protocol: 'opaque' };
    const opaqueBefore = await metric(b, METRICS.tcpOpened, opaqueIn);
    const path = `/rl-${randomBytes(6).toString('hex')}`;
    const r = await control<{
      sent: number;
      statuses: Record<string, number>;
      codes: Record<string, number>;
      retryAfter: string[];
      errors: Record<string, number>;
      sendSpanMs: number;
    }>(sock.clientA, '/', {
      op: 'load',
      url: `http://${SVC.limited}${path}`,
      rate: RATE.send,
      seconds: RATE.seconds,
    });
    const accepted = r.statuses['200'] ?? 0;
    const limited = r.statuses['429'] ?? 0;
    expect(r.errors).toEqual({});
    expect(accepted + limited).toBe(r.sent);
    expect(r.codes).toEqual({ RMR_RATE_LIMITED: limited });
    expect(r.retryAfter.length).toBeGreaterThan(0);
    for (const v of r.retryAfter) expect(Number(v)).toBeGreaterThanOrEqual(1);
    await metricReaches(b, METRICS.rateLimited, { direction: 'inbound' }, before + limited);

    expect((await appLog(sock.appB)).filter((e) => e.url === path)).toHaveLength(accepted);
    // Every request went through B's HTTP layers and its access log: one taken for opaque TCP
    // (protocol detection timed out) would reach the app past the rate limit, unlogged.
    const logged = await eventually(
      'B logged every request',
      () => Promise.resolve(accessLog(proxyB, path)),
      (l) => l.length >= r.sent,
      5000,
    ).catch(() => accessLog(proxyB, path));
    const opaque = (await metric(b, METRICS.tcpOpened, opaqueIn)) - opaqueBefore;
    expect(
      logged.length,
      `requests through B's HTTP layers (B took ${opaque} inbound connections for opaque TCP)`,
    ).toBe(r.sent);
    // When each request reached B's limiter: B's access log (answer time minus duration).
    const arrivals = logged
      .map((l) => Date.parse(String(l.time)) - Number(l.duration_ms))
      .sort((x, y) => x - y);
    const spanMs = (arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0);
    // The bound: rate × seconds + burst over the time requests arrived...
    const bound = RATE.limit * (spanMs / 1000) + RATE.burst;
    // ...which is what an exact token bucket gives when they arrive steadily; on a loaded
    // machine they may come in clumps, and the exact bucket for the same arrivals is lower.
    const exact = tokenBucket(arrivals, RATE.limit, RATE.burst);
    console.log(
      `rate limit: sent ${r.sent} in ${Math.round(r.sendSpanMs)} ms, arrived at B over ${Math.round(spanMs)} ms; ` +
        `${accepted} × 200, ${limited} × 429; rate × seconds + burst ${Math.round(bound)}, exact bucket ${exact}`,
    );
    expect(accepted).toBeLessThanOrEqual(1.1 * bound);
    expect(Math.abs(accepted - exact)).toBeLessThanOrEqual(0.1 * exact);
  }, 60_000);

  it(`an endpoint ejected after ${EJECT.consecutive5xx} consecutive 500s gets no request during its ${EJECT.baseEjectionMs} ms ejection, then is tried again and, healthy, gets traffic`, async () => {
    const url = `http://${SVC.pool}/pool`;
    const server = (r: HttpAnswer): string => (JSON.parse(r.body ?? '{}') as { server: string }).server;
    const ejectionsBefore = await metric(a, METRICS.outlierEjections, { reason: 'consecutive_5xx' });
    await control(sock.appD, `/fail?port=${PORT.pool}`, {});
    // Until D has answered 500 three times: each pick is random, so this takes a few requests.
    let failures = 0;
    let lastFailureSentAt = 0;
    for (let i = 0; i < 200 && failures < EJECT.consecutive5xx; i++) {
      const sentAt = Date.now();
      const r = await get(sock.clientA, url);
      if (r.status === 500) {
        failures++;
        lastFailureSentAt = sentAt;
      } else expect(r.status).toBe(200);
    }
    expect(failures).toBe(EJECT.consecutive5xx);
    // A's sidecar ejects on the third 500's head, before passing it on: the ejection runs from
    // between the third request's send and now, for at least baseEjectionMs.
    const ejectedBy = Date.now();
    const windowEnd = lastFailureSentAt + EJECT.baseEjectionMs;
    // D is healthy again at once; still nothing may reach it until the ejection ends.
    await control(sock.appD, `/heal?port=${PORT.pool}`, {});
    const during: string[] = [];
    for (;;) {
      const r = await get(sock.clientA, url);
      expect(r.status).toBe(200);
      // Answered before the window's end: chosen while D was out.
      if (Date.now() >= windowEnd) break;
      during.push(server(r));
    }
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((s) => !s.startsWith('b:'))).toEqual([]);
    // D's own view: no request arrived during the ejection.
    const dLog = (await appLog(sock.appD)).filter((e) => e.kind === 'http');
    expect(dLog.filter((e) => e.t > ejectedBy && e.t < windowEnd)).toEqual([]);
    await metricReaches(a, METRICS.outlierEjections, { reason: 'consecutive_5xx' }, ejectionsBefore + 1);
    expect((await logged(proxyA, 'outlier_ejected', (e) => e.length > 0)).map((e) => e.endpoint)).toEqual([
      `${d.ip}:${PORT.pool}`,
    ]);
    // After the ejection D is tried again and, healthy now, answers.
    await eventually(
      'D answers again after its ejection',
      async () => server(await get(sock.clientA, url)),
      (s) => s === `d:${PORT.pool}`,
      EJECT.baseEjectionMs * 3,
    );
    expect((await logged(proxyA, 'outlier_returned', (e) => e.length > 0)).map((e) => e.endpoint)).toEqual([
      `${d.ip}:${PORT.pool}`,
    ]);
  }, 60_000);

  it('a policy edit applied to running proxies (B from its file, A over the injector’s stream) changes the decision on an open keep-alive connection, which stays open', async () => {
    const url = `http://${SVC.web}/later/x`;
    const id = 'update';
    const first = await control<{ statuses: number[] }>(sock.clientA, '/', {
      op: 'ka-start',
      id,
      url,
      intervalMs: 100,
    });
    expect(first.statuses).toEqual([200]);
    const acceptedBefore = await metric(b, METRICS.policyUpdates, { result: 'accepted' });
    const streamedBefore = await metric(a, METRICS.policyUpdates, { result: 'accepted' });
    writeFileSync(
      policyFile,
      stringify(policyDocument([{ name: 'no-later', action: 'deny', path: '/later' }])),
    );
    await metricReaches(b, METRICS.policyUpdates, { result: 'accepted' }, acceptedBefore + 1);
    const seen = await eventually(
      'a 403 on the same connection',
      () => control<{ statuses: number[] }>(sock.clientA, '/', { op: 'ka-peek', id }),
      (s) => s.statuses.includes(403),
      15_000,
    );
    await sleep(300);
    const r = await control<{
      statuses: number[];
      codes: (string | null)[];
      sockets: number;
      closes: number;
      errors: string[];
    }>(sock.clientA, '/', { op: 'ka-stop', id });
    // 200s, then only 403s once the update was in force; one socket all along, never closed.
    const flip = r.statuses.indexOf(403);
    expect(flip).toBeGreaterThan(0);
    expect(r.statuses.slice(0, flip).every((s) => s === 200)).toBe(true);
    expect(r.statuses.slice(flip).every((s) => s === 403)).toBe(true);
    expect(r.codes[flip]).toBe('RMR_POLICY_DENIED');
    expect(r.errors).toEqual([]);
    expect(r.sockets).toBe(1);
    expect(r.closes).toBe(0);
    expect(seen.statuses.length).toBeGreaterThan(1);
    // The injector read the same edit and streamed it to A, which reads no file.
    await metricReaches(a, METRICS.policyUpdates, { result: 'accepted' }, streamedBefore + 1);
  }, 40_000);

  it('an invalid policy edit is rejected with its reason; the last good policy stays in force', async () => {
    const rejectedBefore = await metric(b, METRICS.policyUpdates, { result: 'rejected' });
    // The previous case's document with a typo in one CIDR, as JSON (the other accepted form).
    const good = JSON.stringify(policyDocument([{ name: 'no-later', action: 'deny', path: '/later' }]));
    const bad = good.replace(`"identities":["${ID.a}"]`, `"identities":["${ID.a}"],"cidrs":["10.0.0.0/33"]`);
    expect(bad).not.toBe(good);
    const rejectedLinesBefore = events(proxyB, 'policy_rejected').length;
    writeFileSync(policyFile, bad);
    await metricReaches(b, METRICS.policyUpdates, { result: 'rejected' }, rejectedBefore + 1);
    const rejected = await logged(proxyB, 'policy_rejected', (e) => e.length > rejectedLinesBefore);
    expect(JSON.stringify(rejected.at(-1)?.errors)).toContain('10.0.0.0/33');
    // Still the document of the previous case: /later denied, A's other calls allowed.
    expect((await get(sock.clientA, `http://${SVC.web}/later/y`)).status).toBe(403);
    expect((await get(sock.clientA, `http://${SVC.web}/api/orders`)).status).toBe(200);
    expect((await get(sock.clientC, `http://${SVC.web}/api/orders`)).status).toBe(403);
  });
});
