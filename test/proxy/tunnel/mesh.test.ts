/**
 * Two engines and a real identity CA on loopback: A's outbound reaches B's app through the
 * mTLS tunnel (HTTP on the L7 path and opaque TCP), the app learns the caller's identity, a
 * certificate naming another identity than discovery says is refused, a certificate from
 * another CA is refused, strict mode refuses plaintext, rotation under traffic loses nothing,
 * and a proxy whose CA is down is not ready until the CA comes up.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV, PEER_IDENTITY_HEADER, TUNNEL_ALPN } from '../../../proxy/src/contract.js';
import { Engine } from '../../../proxy/src/engine.js';
import { createLogger } from '../../../proxy/src/log.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { createMesh } from '../../../proxy/src/tunnel/setup.js';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { issue } from '../../../injector/src/pki/ca.js';
import {
  ANY_PEER_IDENTITY_SPELLING as ANY_SPELLING,
  PEER_IDENTITY_SPELLINGS,
  rawExchange,
  sample,
  scrape,
  until,
} from '../harness.js';

const TD = 'mesh.test';
const ID_A = `spiffe://${TD}/ns/shop/sa/client`;
const ID_B = `spiffe://${TD}/ns/shop/sa/web`;
const TOKENS = new Map([
  ['token-a-0123456789abcdef', { namespace: 'shop', serviceAccount: 'client' }],
  ['token-b-0123456789abcdef', { namespace: 'shop', serviceAccount: 'web' }],
]);
const SERVICE = '127.0.0.200:80';
const root = newRoot(TD);
let dir: string;
let ca: CaServer;
let app: http.Server;
let appPort: number;
let echo: net.Server;
let echoPort: number;
const seen: { identity: string | undefined; marker: string | undefined }[] = [];
const engines: Engine[] = [];

const quiet = pino({ level: 'silent' });

async function startCa(port = 0, ttlSeconds = 3600): Promise<CaServer> {
  return startCaServer({
    host: '127.0.0.1',
    port,
    ca: root,
    trustDomain: TD,
    reviewer: staticTokenReviewer(TOKENS),
    ttlSeconds,
    logger: quiet,
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
    // Every proxy here renews from 127.0.0.1, every ~2 s in the rotation case; in a cluster each
    // pod has its own address (the budget's own tests: test/injector/ca/ratelimit.test.ts).
    csrRateLimits: {
      perClient: { perSecond: 100, burst: 100 },
      global: { perSecond: 100, burst: 100 },
      maxClients: 10,
    },
  });
}

interface Proxy {
  engine: Engine;
  logs: Record<string, unknown>[];
  port(name: 'inbound' | 'outbound' | 'tunnel' | 'health' | 'metrics'): number;
}

async function startProxy(
  name: string,
  token: string,
  caPort: number,
  extra: Record<string, string> = {},
  waitReady = true,
): Promise<Proxy> {
  const tokenFile = join(dir, `${name}.token`);
  writeFileSync(tokenFile, token);
  const config = parseConfig({
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.tunnelPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.logLevel]: 'info',
    [ENV.caAddress]: `127.0.0.1:${caPort}`,
    [ENV.caBundleFile]: join(dir, 'bundle.pem'),
    [ENV.tokenFile]: tokenFile,
    [ENV.trustDomain]: TD,
    ...extra,
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger(config.logLevel, sink);
  const metrics = new ProxyMetrics();
  const mesh = createMesh(config, log, metrics.registry);
  mesh?.start();
  const engine = new Engine({ config, log, metrics, mesh });
  await engine.start();
  engines.push(engine);
  if (waitReady) await until(() => engine.ready, `${name} ready`, 10_000);
  return {
    engine,
    logs,
    port: (n) => {
      const a = engine.addresses()[n];
      if (!a) throw new Error(`no ${n}`);
      return a.port;
    },
  };
}

function writeDiscovery(
  file: string,
  tunnelPort: number,
  identity: string,
  targetPort = appPort,
  service = SERVICE,
): void {
  writeFileSync(
    file,
    JSON.stringify({
      services: {
        [service]: { endpoints: [{ ip: '127.0.0.1', port: targetPort, meshed: true, identity, tunnelPort }] },
      },
    }),
  );
}

function get(port: number, marker: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: `/m?${marker}`,
        headers: { 'x-marker': marker, [PEER_IDENTITY_HEADER]: 'spiffe://forged' },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-mesh-'));
  writeFileSync(join(dir, 'bundle.pem'), root.certPem);
  ca = await startCa();
  app = http.createServer((req, res) => {
    seen.push({
      identity: req.headers[PEER_IDENTITY_HEADER] as string | undefined,
      marker: req.headers['x-marker'] as string | undefined,
    });
    res.end('from B\n');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const e of engines) await e.close();
  await ca.close();
  await new Promise<void>((r) => app.close(() => r()));
  await new Promise<void>((r) => echo.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

describe('mesh tunnel on loopback', () => {
  it('HTTP from A reaches B through mTLS; B hands the verified caller identity to the app, never a forged one', async () => {
    const b = await startProxy('b', 'token-b-0123456789abcdef', ca.port);
    const disc = join(dir, 'disc-a.json');
    writeDiscovery(disc, b.port('tunnel'), ID_B);
    const a = await startProxy('a', 'token-a-0123456789abcdef', ca.port, {
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: SERVICE,
    });
    for (let i = 0; i < 5; i++) {
      const r = await get(a.port('outbound'), `marker-${i}`);
      expect(r).toEqual({ status: 200, body: 'from B\n' });
    }

    expect(seen.slice(-5).map((s) => s.identity)).toEqual(Array(5).fill(ID_A));
    expect(seen.at(-1)?.marker).toBe('marker-4');
    const metrics = await scrape(a.port('metrics'));
    expect(sample(metrics, 'remora_cert_expiry_seconds')).toBeGreaterThan(Date.now() / 1000);
  });

  it('opaque TCP from A reaches B through the tunnel', async () => {
    const b = await startProxy('b2', 'token-b-0123456789abcdef', ca.port);
    const disc = join(dir, 'disc-a2.json');
    writeDiscovery(disc, b.port('tunnel'), ID_B, echoPort, '127.0.0.201:9000');
    const a = await startProxy('a2', 'token-a-0123456789abcdef', ca.port, {
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: '127.0.0.201:9000',
      [ENV.detectTimeoutMs]: '50',
    });
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(a.port('outbound'), '127.0.0.1', () => s.write('\x00\x01opaque-bytes'));
      let buf = '';
      s.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        if (buf.includes('opaque-bytes')) {
          s.destroy();
          resolve(buf);
        }
      });
      s.on('error', reject);
    });
    expect(got).toBe('\x00\x01opaque-bytes');
  });

  it('refuses a peer whose certificate names another identity than discovery says (502, metric, security event)', async () => {
    const b = await startProxy('b3', 'token-b-0123456789abcdef', ca.port);
    const disc = join(dir, 'disc-a3.json');
    writeDiscovery(disc, b.port('tunnel'), `spiffe://${TD}/ns/shop/sa/payments`);
    const a = await startProxy('a3', 'token-a-0123456789abcdef', ca.port, {
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: SERVICE,
    });
    const before = seen.length;
    const r = await get(a.port('outbound'), 'never');
    expect(r.status).toBe(502);
    expect(seen.length).toBe(before);
    const m = await scrape(a.port('metrics'));
    expect(
      sample(m, 'remora_tls_handshake_failures_total', {
        direction: 'outbound',
        reason: 'identity_mismatch',
      }),
    ).toBeGreaterThanOrEqual(1);
    await until(
      () =>
        a.logs.some(
          (l) => l.event === 'tls_handshake_failed' && l.reason === 'identity_mismatch' && l.level === 'warn',
        ),
      'security event',
    );
  });

  it('refuses a client certificate from another CA and a client without a certificate', async () => {
    const b = await startProxy('b4', 'token-b-0123456789abcdef', ca.port);
    const other = newRoot('evil.test');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaf = issue(other, {
      subject: {},
      validityDays: 1,
      uris: [ID_A],
      extKeyUsage: ['clientAuth', 'serverAuth'],
      publicKey,
    });
    const attempt = (opts: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: b.port('tunnel'),
          ALPNProtocols: [TUNNEL_ALPN],
          ca: root.certPem,
          checkServerIdentity: () => undefined,
          ...opts,
        });
        s.on('secureConnect', () =>
          s.write(`CONNECT 127.0.0.1:${appPort} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n`),
        );
        let buf = '';
        s.on('data', (c: Buffer) => (buf += c.toString()));
        s.on('error', () => resolve(`error:${buf}`));
        s.on('close', () => resolve(`closed:${buf}`));
      });
    const before = seen.length;
    const r1 = await attempt({
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      cert: leaf.certPem,
    });
    const r2 = await attempt({});
    expect(r1).not.toContain('from B');
    expect(r2).not.toContain('from B');
    expect(seen.length).toBe(before);
    await until(
      () => b.logs.filter((l) => l.event === 'tls_handshake_failed').length >= 2,
      'two refusals logged',
    );
    const m = await scrape(b.port('metrics'));
    const failures =
      (sample(m, 'remora_tls_handshake_failures_total', { direction: 'inbound', reason: 'untrusted' }) ?? 0) +
      (sample(m, 'remora_tls_handshake_failures_total', { direction: 'inbound', reason: 'no_client_cert' }) ??
        0);
    expect(failures).toBe(2);
  });

  it('strict mode refuses plaintext on the inbound listener; permissive accepts it', async () => {
    const strict = await startProxy('b5', 'token-b-0123456789abcdef', ca.port, {
      [ENV.mtlsMode]: 'strict',
      [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
    });
    const permissive = await startProxy('b6', 'token-b-0123456789abcdef', ca.port, {
      [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
    });
    await expect(get(strict.port('inbound'), 'plain')).rejects.toThrow();
    expect(await get(permissive.port('inbound'), 'plain')).toMatchObject({ status: 200 });
    // the forged identity header from a plaintext caller never reaches the app
    expect(seen.at(-1)?.identity).toBeUndefined();
    const m = await scrape(strict.port('metrics'));
    expect(sample(m, 'remora_policy_denials_total', { reason: 'plaintext_in_strict_mode' })).toBe(1);
  });

  it('CA down at start: not ready (health 503) and retrying; ready once the CA is up', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const p = await startProxy('late', 'token-a-0123456789abcdef', port, {}, false);
    const health = await fetch(`http://127.0.0.1:${p.port('health')}/healthz/ready`);
    expect(health.status).toBe(503);
    expect(await health.text()).toContain('no workload certificate');
    await until(
      () => p.logs.filter((l) => l.event === 'certificate_fetch_failed').length >= 2,
      'retries',
      10_000,
    );
    const late = await startCa(port);
    try {
      await until(() => p.engine.ready, 'ready after the CA came up', 20_000);
      expect((await fetch(`http://127.0.0.1:${p.port('health')}/healthz/ready`)).status).toBe(200);
    } finally {
      await late.close();
    }
  });

  it('certificates rotated every ~2 s under steady traffic lose no request', async () => {
    const fast = await startCa(0, 3);
    try {
      const b = await startProxy('b7', 'token-b-0123456789abcdef', fast.port);
      const disc = join(dir, 'disc-a7.json');
      writeDiscovery(disc, b.port('tunnel'), ID_B);
      const a = await startProxy('a7', 'token-a-0123456789abcdef', fast.port, {
        [ENV.discoveryFile]: disc,
        [ENV.outboundTarget]: SERVICE,
      });
      const end = Date.now() + 7000;
      const statuses: number[] = [];
      while (Date.now() < end) statuses.push((await get(a.port('outbound'), 'rot')).status);
      expect(statuses.length).toBeGreaterThan(50);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      const loadedA = a.logs.filter((l) => l.event === 'certificate_loaded').length;
      const loadedB = b.logs.filter((l) => l.event === 'certificate_loaded').length;
      expect(loadedA).toBeGreaterThanOrEqual(3);
      expect(loadedB).toBeGreaterThanOrEqual(3);
    } finally {
      await fast.close();
    }
  }, 30_000);
});

/**
 * A TCP tap between A and B's tunnel port, standing in for the wire: discovery names it as B's
 * tunnel port, so every byte A sends to B crosses it and is recorded.
 */
async function startTap(
  targetPort: number,
): Promise<{ port: number; bytes: () => Buffer; connections: () => number; close(): Promise<void> }> {
  const chunks: Buffer[] = [];
  let connections = 0;
  const server = net.createServer((down) => {
    connections += 1;
    const up = net.connect(targetPort, '127.0.0.1');
    down.on('data', (c: Buffer) => chunks.push(c));
    up.on('data', (c: Buffer) => chunks.push(c));
    down.pipe(up).pipe(down);
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    bytes: () => Buffer.concat(chunks),
    connections: () => connections,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
      }),
  };
}

describe('upgrades over the mesh', () => {
  /**
   * B's app: records every request's header names, identity and marker; a raw 101 server for
   * upgrades (then an echo), `ok` for the rest.
   */
  let wsApp: http.Server;
  let wsPort: number;
  const upgrades: { names: string[]; identity: unknown; marker: unknown }[] = [];
  const record = (req: http.IncomingMessage): void => {
    upgrades.push({
      names: req.rawHeaders.filter((_, i) => i % 2 === 0),
      identity: req.headers[PEER_IDENTITY_HEADER],
      marker: req.headers['x-marker'],
    });
  };

  beforeAll(async () => {
    wsApp = http.createServer((req, res) => {
      record(req);
      res.end('ok\n');
    });
    wsApp.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, early: Buffer) => {
      record(req);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
      if (early.length > 0) socket.write(early);
      socket.pipe(socket);
    });
    await new Promise<void>((r) => wsApp.listen(0, '127.0.0.1', r));
    wsPort = (wsApp.address() as AddressInfo).port;
  });
  afterAll(async () => {
    wsApp.closeAllConnections();
    await new Promise<void>((r) => wsApp.close(() => r()));
  });

  const wsHead = (marker: string, forged: string): string =>
    `GET /ws?${marker} HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
    `${forged}: spiffe://forged/ns/x/sa/admin\r\nx-marker: ${marker}\r\n\r\n`;

  it("an app's WebSocket to a meshed Service crosses the mTLS tunnel, not plaintext to the ClusterIP: B's app sees A's identity, the wire never the marker", async () => {
    const b = await startProxy('bw', 'token-b-0123456789abcdef', ca.port);
    const tap = await startTap(b.port('tunnel'));
    try {
      const disc = join(dir, 'disc-aw.json');
      // The Service's ClusterIP has no listener at all: only the endpoint choice can reach B.
      writeDiscovery(disc, tap.port, ID_B, wsPort, '127.0.0.202:80');
      const a = await startProxy('aw', 'token-a-0123456789abcdef', ca.port, {
        [ENV.discoveryFile]: disc,
        [ENV.outboundTarget]: '127.0.0.202:80',
      });
      const marker = `ws-marker-${Date.now()}`;
      const frame = `frame-${marker}`;
      const before = upgrades.length;
      const out = await rawExchange(a.port('outbound'), wsHead(marker, PEER_IDENTITY_HEADER) + frame, 1000);
      expect(out).toMatch(/^HTTP\/1\.1 101 /);
      expect(out.endsWith(frame)).toBe(true);
      const got = upgrades.slice(before);
      expect(got.map((u) => [u.marker, u.identity])).toEqual([[marker, ID_A]]);
      expect(got[0]?.names.filter((n) => ANY_SPELLING.test(n))).toHaveLength(1);
      // It went through the tap (B's tunnel), encrypted: neither the head nor the frame in clear.
      expect(tap.connections()).toBeGreaterThanOrEqual(1);
      expect(tap.bytes().length).toBeGreaterThan(frame.length);
      expect(tap.bytes().includes(Buffer.from(marker))).toBe(false);
      const m = await scrape(a.port('metrics'));
      expect(sample(m, 'remora_requests_total', { direction: 'outbound', status_code: '101' })).toBe(1);
    } finally {
      await tap.close();
    }
  });

  it('an outbound upgrade to a meshed endpoint whose certificate names another identity is refused (502), never sent', async () => {
    const b = await startProxy('bw2', 'token-b-0123456789abcdef', ca.port);
    const disc = join(dir, 'disc-aw2.json');
    writeDiscovery(disc, b.port('tunnel'), `spiffe://${TD}/ns/shop/sa/payments`, wsPort, '127.0.0.203:80');
    const a = await startProxy('aw2', 'token-a-0123456789abcdef', ca.port, {
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: '127.0.0.203:80',
    });
    const before = upgrades.length;
    const out = await rawExchange(a.port('outbound'), wsHead('never', 'x-other') + 'frame');
    expect(out).toMatch(/^HTTP\/1\.1 502 /);
    expect(upgrades.length).toBe(before);
  });

  describe('inbound through the tunnel, one case per spelling', () => {
    let a: Proxy;
    beforeAll(async () => {
      const b = await startProxy('bs', 'token-b-0123456789abcdef', ca.port);
      const disc = join(dir, 'disc-as.json');
      writeDiscovery(disc, b.port('tunnel'), ID_B, wsPort, '127.0.0.204:80');
      a = await startProxy('as', 'token-a-0123456789abcdef', ca.port, {
        [ENV.discoveryFile]: disc,
        [ENV.outboundTarget]: '127.0.0.204:80',
      });
    });

    for (const spelling of PEER_IDENTITY_SPELLINGS) {
      it(`a client-supplied ${spelling} never replaces the caller's verified identity (plain request)`, async () => {
        const before = upgrades.length;
        const out = await rawExchange(
          a.port('outbound'),
          `GET /spelling HTTP/1.1\r\nHost: svc\r\n${spelling}: spiffe://forged/ns/x/sa/admin\r\n` +
            `x-marker: ${spelling}\r\nConnection: close\r\n\r\n`,
        );
        expect(out).toMatch(/^HTTP\/1\.1 200 /);
        const got = upgrades.slice(before);
        expect(got.map((u) => [u.marker, u.identity])).toEqual([[spelling, ID_A]]);
        expect(got[0]?.names.filter((n) => ANY_SPELLING.test(n))).toEqual([PEER_IDENTITY_HEADER]);
      });

      it(`a client-supplied ${spelling} never replaces the caller's verified identity (Upgrade request)`, async () => {
        const before = upgrades.length;
        const out = await rawExchange(a.port('outbound'), wsHead(spelling, spelling) + 'frame', 1000);
        expect(out).toMatch(/^HTTP\/1\.1 101 /);
        const got = upgrades.slice(before);
        expect(got.map((u) => [u.marker, u.identity])).toEqual([[spelling, ID_A]]);
        expect(got[0]?.names.filter((n) => ANY_SPELLING.test(n))).toEqual([PEER_IDENTITY_HEADER]);
      });
    }
  });
});
