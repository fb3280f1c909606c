/**
 * The policy stream end to end on loopback: a real injector CA listener (policy route fed by a
 * real file through the injector's PolicyStore) and a real engine built like main.ts builds it,
 * subscribed through REMORA_DISCOVERY_ADDRESS. An accepted change reaches the running proxy and
 * applies on an open keep-alive connection; an invalid document never leaves the injector; a
 * restarted injector resyncs the proxy; readiness waits for the first snapshot, boundedly.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRoot } from '../../../injector/src/ca/root.js';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { startPolicySource } from '../../../injector/src/policy/source.js';
import { PolicyStore } from '../../../injector/src/policy/store.js';
import { assembleEngine } from '../../../proxy/src/assemble.js';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { Engine } from '../../../proxy/src/engine.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { policyVersion } from '../../../proxy/src/policy/document.js';
import { PolicyHolder } from '../../../proxy/src/policy/holder.js';
import type { PolicyStatus } from '../../../proxy/src/policy/holder.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { PolicyStream } from '../../../proxy/src/policy/stream.js';
import { workloadCert } from '../../helpers/workload-cert.js';
import { startPolicyCa } from '../../injector/policy/helpers.js';
import { startBackend } from '../harness.js';
import type { Backend } from '../harness.js';
import { INVALID, LOOPBACK, capturingLogger, denyPaths, keepAliveClient } from './distribution-helpers.js';

const TD = 'policy.test';
const INJECTOR_ID = `spiffe://${TD}/ns/remora-system/sa/remora-injector`;
const root = newRoot(TD);
const TOKEN = 'token-of-shop-orders-0123456789';
const proxyCert = workloadCert(root, `spiffe://${TD}/ns/shop/sa/orders`);
const quiet = pino({ level: 'silent' });

let dir: string;
let policyFile: string;
let bundleFile: string;
let tokenFile: string;
let backend: Backend;
let store: PolicyStore;
let stopSource: () => void | Promise<void>;
let server: CaServer | undefined;
let port = 0;

async function startInjector(s: PolicyStore): Promise<CaServer> {
  const ca = await startPolicyCa({
    root,
    trustDomain: TD,
    store: s,
    logger: quiet,
    port,
    tokens: new Map([[TOKEN, { namespace: 'shop', serviceAccount: 'orders' }]]),
  });
  port = ca.port;
  return ca;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-policy-stream-'));
  backend = await startBackend();
  policyFile = join(dir, 'policy.yaml');
  bundleFile = join(dir, 'ca.crt');
  writeFileSync(bundleFile, root.certPem);
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
  writeFileSync(policyFile, denyPaths(backend.port, ['/admin']));
  store = new PolicyStore(quiet);
  stopSource = await startPolicySource({
    file: policyFile,
    configMap: { namespace: 'remora-system', name: 'remora-policy' },
    kc: undefined,
    store,
    logger: quiet,
    pollMs: 50,
  });
  server = await startInjector(store);
});
afterAll(async () => {
  await stopSource();
  await server?.close();
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('policy stream (injector → running proxy)', () => {
  it('an accepted change reaches the proxy; an invalid one stays at the injector; a restart resyncs', async () => {
    const config = parseConfig({
      ...LOOPBACK,
      [ENV.discoveryAddress]: `127.0.0.1:${port}`,
      // The injector streams only to proxies that show their workload certificate.
      [ENV.caAddress]: `127.0.0.1:${port}`,
      [ENV.tokenFile]: tokenFile,
      [ENV.caBundleFile]: bundleFile,
      [ENV.trustDomain]: TD,
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.podNamespace]: 'shop',
      [ENV.workload]: 'orders',
    });
    const { log, lines } = capturingLogger();
    const built = await assembleEngine(config, log);
    const { engine } = built;
    await engine.start();
    const admin = engine.addresses().admin?.port as number;
    const policy = async (): Promise<PolicyStatus> =>
      ((await (await fetch(`http://127.0.0.1:${admin}/config`)).json()) as { policy: PolicyStatus }).policy;
    const client = keepAliveClient(engine.addresses().inbound?.port as number);
    try {
      await built.whenReady();
      expect(engine.ready).toBe(true);
      expect(await policy()).toMatchObject({
        version: policyVersion(denyPaths(backend.port, ['/admin'])),
        policies: ['guard'],
        source: `stream 127.0.0.1:${port}`,
        lastError: null,
      });
      const first = await client.get('/orders');
      expect(first.status).toBe(200);
      expect((await client.get('/admin')).status).toBe(403);

      // An accepted change at the injector: the next request on the same connection is denied.
      const next = denyPaths(backend.port, ['/admin', '/orders']);
      writeFileSync(policyFile, next);
      await expect.poll(async () => (await policy()).version, { timeout: 10_000 }).toBe(policyVersion(next));
      const denied = await client.get('/orders');
      expect(denied.status).toBe(403);
      expect(denied.localPort).toBe(first.localPort);

      // Invalid at the injector: refused there, never streamed; the proxy keeps its policy.
      writeFileSync(policyFile, INVALID);
      await expect.poll(() => store.lastErrors.length, { timeout: 10_000 }).toBeGreaterThan(0);
      expect(store.current?.version).toBe(policyVersion(next));
      expect((await policy()).version).toBe(policyVersion(next));
      expect((await policy()).lastError).toBeNull();

      // The injector goes away; a change made while it is down arrives when it is back.
      await server?.close();
      server = undefined;
      await expect
        .poll(() => lines.some((l) => l.event === 'policy_stream_lost'), { timeout: 10_000 })
        .toBe(true);
      const whileDown = denyPaths(backend.port, ['/orders']);
      writeFileSync(policyFile, whileDown);
      await expect.poll(() => store.current?.version, { timeout: 10_000 }).toBe(policyVersion(whileDown));
      // Meanwhile the last good policy stays in force.
      expect((await client.get('/admin')).status).toBe(403);
      server = await startInjector(store);
      await expect
        .poll(async () => (await policy()).version, { timeout: 20_000 })
        .toBe(policyVersion(whileDown));
      expect((await client.get('/admin')).status).toBe(200);
      expect((await client.get('/orders')).status).toBe(403);
    } finally {
      client.close();
      await engine.close();
      await built.shutdown();
    }
  });

  it('an injector serving no policy answers at once: ready, nothing enforced', async () => {
    const empty = new PolicyStore(quiet);
    const saved = port;
    port = 0;
    const other = await startInjector(empty);
    port = saved;
    const { log } = capturingLogger();
    const holder = newHolder(log, `stream 127.0.0.1:${other.port}`);
    const stream = new PolicyStream({
      address: { host: '127.0.0.1', port: other.port },
      caBundle: root.certPem,
      serverIdentity: INJECTOR_ID,
      credentials: proxyCert.credentials,
      self: { namespace: 'shop', workload: 'orders' },
      holder,
      log,
    });
    try {
      await holder.whenReady();
      expect(holder.current).toBeUndefined();
      expect(empty.subscriptions()).toBe(1);
    } finally {
      stream.close();
      await other.close();
    }
  });

  it('an injector without the policy route (404) holds nobody: ready at once, nothing enforced', async () => {
    const bare = await startCaServer({
      host: '127.0.0.1',
      port: 0,
      ca: root,
      trustDomain: TD,
      reviewer: staticTokenReviewer(new Map()),
      ttlSeconds: 3600,
      logger: quiet,
      namespace: 'remora-system',
      serviceAccount: 'remora-injector',
    });
    const { log, lines } = capturingLogger();
    const holder = newHolder(log, `stream 127.0.0.1:${bare.port}`);
    const stream = new PolicyStream({
      address: { host: '127.0.0.1', port: bare.port },
      caBundle: root.certPem,
      serverIdentity: INJECTOR_ID,
      credentials: proxyCert.credentials,
      self: { namespace: 'shop', workload: 'orders' },
      holder,
      log,
      // Far beyond the test's own timeout: only the 404 can make it ready.
      firstSnapshotMs: 600_000,
    });
    try {
      await holder.whenReady();
      expect(holder.current).toBeUndefined();
      expect(lines.some((l) => l.event === 'policy_stream_lost' && String(l.err).includes('404'))).toBe(true);
    } finally {
      stream.close();
      await bare.close();
    }
  });

  it('readiness waits for the first snapshot, but only up to its bound; then serves without policy', async () => {
    const { log, lines } = capturingLogger();
    const holder = newHolder(log, 'stream 127.0.0.1:1');
    // Nothing listens on port 1: the stream keeps failing.
    const stream = new PolicyStream({
      address: { host: '127.0.0.1', port: 1 },
      caBundle: root.certPem,
      serverIdentity: INJECTOR_ID,
      credentials: proxyCert.credentials,
      self: { namespace: 'shop', workload: 'orders' },
      holder,
      log,
      firstSnapshotMs: 300,
      backoff: { baseMs: 20, maxMs: 50 },
    });
    try {
      expect(holder.ready).toBe(false);
      await holder.whenReady();
      expect(lines.some((l) => l.event === 'policy_not_received' && l.level === 'warn')).toBe(true);
      expect(lines.some((l) => l.event === 'policy_stream_lost')).toBe(true);
      expect(holder.current).toBeUndefined();
    } finally {
      stream.close();
    }
  });

  it('the engine is not ready while its policy source has not answered', async () => {
    const config = parseConfig({ ...LOOPBACK, [ENV.inboundTarget]: `127.0.0.1:${backend.port}` });
    const { log } = capturingLogger();
    const holder = newHolder(log, 'stream test');
    const engine = new Engine({ config, log, policy: holder });
    await engine.start();
    const health = engine.addresses().health?.port as number;
    try {
      const before = await fetch(`http://127.0.0.1:${health}/healthz/ready`);
      expect(before.status).toBe(503);
      expect(await before.text()).toContain('no policy from the control plane yet');
      holder.markReady();
      expect((await fetch(`http://127.0.0.1:${health}/healthz/ready`)).status).toBe(200);
    } finally {
      await engine.close();
    }
  });
});

function newHolder(log: ReturnType<typeof capturingLogger>['log'], source: string): PolicyHolder {
  return new PolicyHolder({
    self: { namespace: 'shop', workload: 'orders' },
    metrics: PolicyMetrics.of(new Registry()),
    log,
    source,
  });
}
