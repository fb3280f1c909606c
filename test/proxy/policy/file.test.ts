/**
 * REMORA_POLICY_FILE end to end on loopback: real engines (built like main.ts builds them), a
 * real backend, real files. An edit reaches the running engine and applies to the next request
 * on an already open keep-alive connection, which stays open; an invalid edit keeps the last
 * good policy and /config says why; a ConfigMap-style symlink swap is seen; an L4 deny closes
 * an opaque TCP connection; a bad file at start exits 2 listing every problem.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleEngine } from '../../../proxy/src/assemble.js';
import type { Assembled } from '../../../proxy/src/assemble.js';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { policyVersion } from '../../../proxy/src/policy/document.js';
import { followPolicyFile } from '../../../proxy/src/policy/file.js';
import { PolicyHolder } from '../../../proxy/src/policy/holder.js';
import type { PolicyStatus } from '../../../proxy/src/policy/holder.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { rawExchange, sample, scrape, startBackend } from '../harness.js';
import type { Backend } from '../harness.js';
import {
  INVALID,
  LOOPBACK,
  capturingLogger,
  denyAll,
  denyPaths,
  keepAliveClient,
  runNode,
} from './distribution-helpers.js';

let dir: string;
let backend: Backend;
let echo: net.Server;
let echoPort: number;
let echoAccepted = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-policy-file-'));
  backend = await startBackend();
  echo = net.createServer((s) => {
    echoAccepted += 1;
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
});
afterAll(async () => {
  await backend.close();
  echo.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Proxy {
  built: Assembled;
  logs: Record<string, unknown>[];
  port(name: 'inbound' | 'outbound' | 'admin' | 'metrics'): number;
  policy(): Promise<PolicyStatus>;
  stop(): Promise<void>;
}

async function startProxy(env: Record<string, string>): Promise<Proxy> {
  const config = parseConfig({
    ...LOOPBACK,
    ...env,
  });
  const { log, lines } = capturingLogger();
  const built = await assembleEngine(config, log);
  await built.engine.start();
  const port = (name: 'inbound' | 'outbound' | 'admin' | 'metrics'): number => {
    const a = built.engine.addresses()[name];
    if (a === undefined) throw new Error(`no ${name} listener`);
    return a.port;
  };
  return {
    built,
    logs: lines,
    port,
    policy: async () => {
      const res = await fetch(`http://127.0.0.1:${port('admin')}/config`);
      return ((await res.json()) as { policy: PolicyStatus }).policy;
    },
    stop: async () => {
      await built.engine.close();
      await built.shutdown();
    },
  };
}

describe('policy from a file, applied to a running engine', () => {
  it('an edit denies the next request on the SAME keep-alive connection, which stays open', async () => {
    const file = join(dir, 'edit.yaml');
    writeFileSync(file, denyPaths(backend.port, ['/admin']));
    const p = await startProxy({
      [ENV.policyFile]: file,
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
    });
    const client = keepAliveClient(p.port('inbound'));
    try {
      const first = await client.get('/orders');
      expect(first.status).toBe(200);
      expect((await client.get('/admin')).status).toBe(403);

      const next = denyPaths(backend.port, ['/admin', '/orders']);
      writeFileSync(file, next);
      await expect
        .poll(async () => (await p.policy()).version, { timeout: 10_000 })
        .toBe(policyVersion(next));

      const denied = await client.get('/orders');
      expect(denied.status).toBe(403);
      expect(denied.body).toContain('guard/no-1');
      expect(denied.localPort).toBe(first.localPort);
      expect(denied.reused).toBe(true);
      const after = await client.get('/status');
      expect(after.status).toBe(200);
      expect(after.localPort).toBe(first.localPort);

      const metrics = await scrape(p.port('metrics'));
      expect(
        sample(metrics, 'remora_policy_denials_total', { direction: 'inbound', reason: 'guard/no-1' }),
      ).toBe(1);
      expect(sample(metrics, 'remora_policy_updates_total', { result: 'accepted' })).toBe(2);
      expect(p.logs.some((l) => l.event === 'policy_updated' && l.version === policyVersion(next))).toBe(
        true,
      );
    } finally {
      client.close();
      await p.stop();
    }
  });

  it('an invalid edit keeps the last good policy in force, and /config shows the error', async () => {
    const file = join(dir, 'invalid.yaml');
    const good = denyPaths(backend.port, ['/admin']);
    writeFileSync(file, good);
    const p = await startProxy({
      [ENV.policyFile]: file,
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
    });
    const client = keepAliveClient(p.port('inbound'));
    try {
      writeFileSync(file, INVALID);
      await expect.poll(async () => (await p.policy()).lastError !== null, { timeout: 10_000 }).toBe(true);
      const status = await p.policy();
      expect(status.version).toBe(policyVersion(good));
      expect(status.source).toBe(`file ${file}`);
      expect(status.lastError?.errors.join('\n')).toContain('10.0.0.0/33');
      expect(status.lastError?.errors.join('\n')).toContain('rateLimits');
      // Still enforced, still serving.
      expect((await client.get('/admin')).status).toBe(403);
      expect((await client.get('/orders')).status).toBe(200);
      const metrics = await scrape(p.port('metrics'));
      expect(sample(metrics, 'remora_policy_updates_total', { result: 'rejected' })).toBe(1);
      const warn = p.logs.find((l) => l.event === 'policy_rejected');
      expect(warn?.level).toBe('warn');
    } finally {
      client.close();
      await p.stop();
    }
  });

  it('an HTTP Upgrade (WebSocket) is authorized too: denied gets 403 and a close, allowed gets 101', async () => {
    const file = join(dir, 'upgrade.yaml');
    writeFileSync(file, denyPaths(backend.port, ['/ws-denied']));
    const p = await startProxy({
      [ENV.policyFile]: file,
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
    });
    const upgrade = (path: string): string =>
      `GET ${path} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
    try {
      const before = backend.received.length;
      const denied = await rawExchange(p.port('inbound'), upgrade('/ws-denied'));
      expect(denied).toMatch(/^HTTP\/1\.1 403 /);
      expect(denied).toContain('x-remora-error: RMR_POLICY_DENIED');
      expect(backend.received.length).toBe(before);
      const allowed = await rawExchange(p.port('inbound'), upgrade('/ws-ok'), 500);
      expect(allowed).toMatch(/^HTTP\/1\.1 101 /);
      const metrics = await scrape(p.port('metrics'));
      expect(
        sample(metrics, 'remora_policy_denials_total', { direction: 'inbound', reason: 'guard/no-0' }),
      ).toBe(1);
    } finally {
      await p.stop();
    }
  });

  it('an L4 deny closes an opaque TCP connection before a byte reaches the app', async () => {
    const file = join(dir, 'tcp.yaml');
    writeFileSync(file, denyAll(echoPort + 1)); // another port: this one is open
    const p = await startProxy({
      [ENV.policyFile]: file,
      [ENV.inboundTarget]: `127.0.0.1:${echoPort}`,
      [ENV.detectTimeoutMs]: '200',
    });
    const talk = (): Promise<{ echoed: string; closed: boolean }> =>
      new Promise((resolve, reject) => {
        const s = net.connect(p.port('inbound'), '127.0.0.1', () => s.write('\x00\x01opaque-bytes\n'));
        let echoed = '';
        s.setEncoding('latin1');
        s.on('data', (c: string) => {
          echoed += c;
          if (echoed.includes('opaque-bytes\n')) {
            s.destroy();
            resolve({ echoed, closed: false });
          }
        });
        s.on('close', () => resolve({ echoed, closed: true }));
        s.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      });
    try {
      expect(await talk()).toEqual({ echoed: '\x00\x01opaque-bytes\n', closed: false });
      const locked = denyAll(echoPort);
      writeFileSync(file, locked);
      await expect
        .poll(async () => (await p.policy()).version, { timeout: 10_000 })
        .toBe(policyVersion(locked));
      const before = echoAccepted;
      expect(await talk()).toEqual({ echoed: '', closed: true });
      expect(echoAccepted).toBe(before);
      const metrics = await scrape(p.port('metrics'));
      expect(
        sample(metrics, 'remora_policy_denials_total', { direction: 'inbound', reason: 'lockdown/default' }),
      ).toBe(1);
      const event = p.logs.find((l) => l.event === 'policy_denied');
      expect(event).toMatchObject({ level: 'warn', protocol: 'opaque', port: echoPort });
    } finally {
      await p.stop();
    }
  });
  it('an open opaque connection that an update now denies is closed; one still allowed stays', async () => {
    const file = join(dir, 'tcp-open.yaml');
    writeFileSync(file, denyAll(echoPort + 1));
    const p = await startProxy({
      [ENV.policyFile]: file,
      [ENV.inboundTarget]: `127.0.0.1:${echoPort}`,
      [ENV.detectTimeoutMs]: '200',
    });
    // One long-lived opaque connection, echoed through the proxy.
    const s = net.connect(p.port('inbound'), '127.0.0.1', () => s.write('\x00\x01first\n'));
    s.setEncoding('latin1');
    let echoed = '';
    s.on('data', (c: string) => (echoed += c));
    s.on('error', () => undefined);
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    try {
      await expect.poll(() => echoed, { timeout: 10_000 }).toContain('first\n');
      // An update that still allows it (another port locked) leaves it open.
      const other = denyAll(echoPort + 2);
      writeFileSync(file, other);
      await expect
        .poll(async () => (await p.policy()).version, { timeout: 10_000 })
        .toBe(policyVersion(other));
      s.write('second\n');
      await expect.poll(() => echoed, { timeout: 10_000 }).toContain('second\n');
      // An update that denies its port closes it.
      const locked = denyAll(echoPort);
      writeFileSync(file, locked);
      await closed;
      expect(s.destroyed).toBe(true);
      const metrics = await scrape(p.port('metrics'));
      expect(
        sample(metrics, 'remora_policy_denials_total', { direction: 'inbound', reason: 'lockdown/default' }),
      ).toBe(1);
    } finally {
      s.destroy();
      await p.stop();
    }
  });
});

describe('every policy layer is wired into an engine built like main.ts', () => {
  it('inbound: a route timeout answers 504, then the rate limit 429; outbound: a route timeout 504', async () => {
    const file = join(dir, 'layers.yaml');
    writeFileSync(
      file,
      `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: traffic
    inbound:
      - ports: [${backend.port}]
        rateLimit: { requestsPerSecond: 0.1, burst: 1 }
        routes:
          - match: { paths: [{ prefix: /wait }] }
            timeoutMs: 50
    outbound:
      - ports: [${backend.port}]
        routes:
          - match: { paths: [{ prefix: /wait }] }
            timeoutMs: 50
`,
    );
    const p = await startProxy({
      [ENV.policyFile]: file,
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.outboundTarget]: `127.0.0.1:${backend.port}`,
    });
    const inbound = keepAliveClient(p.port('inbound'));
    const outbound = keepAliveClient(p.port('outbound'));
    try {
      const slow = await inbound.get('/wait');
      expect(slow.status).toBe(504);
      expect(slow.headers['x-remora-error']).toBe('RMR_REQUEST_TIMEOUT');
      const limited = await inbound.get('/orders');
      expect(limited.status).toBe(429);
      expect(limited.headers['x-remora-error']).toBe('RMR_RATE_LIMITED');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      const out = await outbound.get('/wait');
      expect(out.status).toBe(504);
      expect(out.headers['x-remora-error']).toBe('RMR_REQUEST_TIMEOUT');
      expect((await outbound.get('/orders')).status).toBe(200);
    } finally {
      inbound.close();
      outbound.close();
      await p.stop();
    }
  });
});

describe('the circuit breaker reads the same policy', () => {
  it('outbound maxRequests 1: a second request while the first is upstream gets 503', async () => {
    const held: http.ServerResponse[] = [];
    const hold = http.createServer((_req, res) => held.push(res));
    await new Promise<void>((r) => hold.listen(0, '127.0.0.1', r));
    const holdPort = (hold.address() as AddressInfo).port;
    const file = join(dir, 'breaker.yaml');
    writeFileSync(
      file,
      `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: breaker
    outbound:
      - ports: [${holdPort}]
        circuitBreaker: { maxRequests: 1 }
`,
    );
    const p = await startProxy({ [ENV.policyFile]: file, [ENV.outboundTarget]: `127.0.0.1:${holdPort}` });
    const a = keepAliveClient(p.port('outbound'));
    const b = keepAliveClient(p.port('outbound'));
    try {
      const first = a.get('/one');
      await expect.poll(() => held.length, { timeout: 5000 }).toBe(1);
      const refused = await b.get('/two');
      expect(refused.status).toBe(503);
      expect(refused.headers['x-remora-error']).toBe('RMR_CIRCUIT_OPEN');
      held[0]?.end('done');
      expect((await first).status).toBe(200);
    } finally {
      a.close();
      b.close();
      await p.stop();
      hold.closeAllConnections();
      hold.close();
    }
  });
});

describe('the supervised proxy (bin/remora-proxy)', () => {
  it("shows the serving engine's policy on the supervisor's /config, and follows an edit", async () => {
    const file = join(dir, 'supervised.yaml');
    const v1 = denyPaths(backend.port, ['/admin']);
    writeFileSync(file, v1);
    const bin = fileURLToPath(new URL('../../../proxy/dist/bin/remora-proxy.js', import.meta.url));
    const child = spawn(process.execPath, [bin], {
      env: {
        PATH: process.env.PATH ?? '',
        ...LOOPBACK,
        [ENV.policyFile]: file,
        [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
        [ENV.adminTokenFile]: join(dir, 'admin-token'),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      await expect.poll(() => out.includes('"supervisor_listening"'), { timeout: 15_000 }).toBe(true);
      const line = out.split('\n').find((l) => l.includes('"supervisor_listening"')) as string;
      const { ports } = JSON.parse(line) as { ports: { admin: number } };
      const policy = async (): Promise<PolicyStatus | null> =>
        (
          (await (await fetch(`http://127.0.0.1:${ports.admin}/config`)).json()) as {
            policy: PolicyStatus | null;
          }
        ).policy;
      await expect.poll(async () => (await policy())?.version, { timeout: 15_000 }).toBe(policyVersion(v1));
      writeFileSync(file, INVALID);
      await expect
        .poll(async () => (await policy())?.lastError?.errors.join('\n') ?? '', { timeout: 15_000 })
        .toContain('10.0.0.0/33');
      expect((await policy())?.version).toBe(policyVersion(v1));
      const v2 = denyAll(backend.port);
      writeFileSync(file, v2);
      await expect.poll(async () => (await policy())?.version, { timeout: 15_000 }).toBe(policyVersion(v2));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('followPolicyFile', () => {
  it('sees a Kubernetes ConfigMap volume update (the ..data symlink swapped to a new directory)', async () => {
    const vol = join(dir, 'configmap');
    mkdirSync(join(vol, '..2026_v1'), { recursive: true });
    const v1 = denyPaths(8080, ['/a']);
    writeFileSync(join(vol, '..2026_v1', 'policy.yaml'), v1);
    symlinkSync('..2026_v1', join(vol, '..data'));
    symlinkSync(join('..data', 'policy.yaml'), join(vol, 'policy.yaml'));
    const { log } = capturingLogger();
    const holder = new PolicyHolder({
      self: { namespace: undefined, workload: undefined },
      metrics: PolicyMetrics.of(new Registry()),
      log,
      source: 'test',
    });
    const stop = followPolicyFile(join(vol, 'policy.yaml'), holder, log, 50);
    try {
      expect(holder.current?.version).toBe(policyVersion(v1));
      // What the kubelet does: write the new directory, point a temporary link at it, rename
      // the link over ..data (atomic), remove the old directory.
      const v2 = denyPaths(8080, ['/a', '/b']);
      mkdirSync(join(vol, '..2026_v2'));
      writeFileSync(join(vol, '..2026_v2', 'policy.yaml'), v2);
      symlinkSync('..2026_v2', join(vol, '..data_tmp'));
      renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
      rmSync(join(vol, '..2026_v1'), { recursive: true });
      await expect.poll(() => holder.current?.version, { timeout: 10_000 }).toBe(policyVersion(v2));
    } finally {
      stop();
    }
  });

  it('a file that disappears keeps the last good policy and says so', async () => {
    const file = join(dir, 'gone.yaml');
    const text = denyPaths(8080, ['/a']);
    writeFileSync(file, text);
    const { log, lines } = capturingLogger();
    const holder = new PolicyHolder({
      self: { namespace: undefined, workload: undefined },
      metrics: PolicyMetrics.of(new Registry()),
      log,
      source: 'test',
    });
    const stop = followPolicyFile(file, holder, log, 50);
    try {
      rmSync(file);
      await expect
        .poll(() => lines.some((l) => l.event === 'policy_file_missing'), { timeout: 10_000 })
        .toBe(true);
      expect(holder.current?.version).toBe(policyVersion(text));
    } finally {
      stop();
    }
  });
});

// The engine alone (proxy/src/main.ts), as the built binary runs it.
const mainModule = fileURLToPath(new URL('../../../proxy/dist/main.js', import.meta.url));
const script = `import(${JSON.stringify(mainModule)}).then((m) => m.main()).then((code) => process.exit(code));`;

function runMain(env: Record<string, string>): ReturnType<typeof runNode> {
  return runNode(['--input-type=module', '-e', script], env);
}

describe('a bad policy file at start', () => {
  it('exits 2 before listening, listing every problem of the document', async () => {
    const file = join(dir, 'bad-start.yaml');
    writeFileSync(file, INVALID);
    const r = await runMain({
      ...LOOPBACK,
      [ENV.policyFile]: file,
    });
    expect(r.code).toBe(2);
    const line = r.stderr.split('\n').find((l) => l.includes('"config_invalid"')) as string;
    const { errors } = JSON.parse(line) as { errors: string[] };
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.every((e) => e.startsWith(`${ENV.policyFile}: ${file}: `))).toBe(true);
    expect(errors.join('\n')).toContain('10.0.0.0/33');
    expect(errors.join('\n')).toContain('rateLimits');
    expect(r.stdout).not.toContain('"event":"listening"');
  });

  it('the supervised binary (bin/remora-proxy) refuses it too, before binding, instead of failing engine after engine', async () => {
    const file = join(dir, 'bad-supervised.yaml');
    writeFileSync(file, INVALID);
    const bin = fileURLToPath(new URL('../../../proxy/dist/bin/remora-proxy.js', import.meta.url));
    const r = await runNode([bin], { ...LOOPBACK, [ENV.policyFile]: file });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${ENV.policyFile}: ${file}: `);
    expect(r.stderr).toContain('10.0.0.0/33');
    expect(r.stderr).toContain('rateLimits');
    expect(r.stdout).not.toContain('engine_starting');
  });

  it('a missing file is a config error too (exit 2, the path and the reason named)', async () => {
    const r = await runMain({
      ...LOOPBACK,
      [ENV.policyFile]: join(dir, 'nope.yaml'),
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${ENV.policyFile}: ${join(dir, 'nope.yaml')}: cannot read: ENOENT`);
  });
});
