/**
 * The mesh tunnel over IPv6 on loopback (::1), through real sidecars (compiled supervisor +
 * engine, real identity CA): the supervisor holds `tunnel6` beside `tunnel`, the engine serves it
 * with the same TLS server, and A's outbound dials a meshed endpoint whose address is IPv6
 * (`[::1]:<tunnel6>`), so the request can only have travelled over IPv6 (HTTP on the L7 path and
 * opaque TCP). Also the CONNECT head
 * `[::1]:<port>`, which reaches an app bound to the IPv6 loopback only, and a bad one; and with
 * a pod IP (REMORA_POD_IP, 127.0.0.2 standing in), a peer's CONNECT in any loopback spelling
 * reaches the app at the pod IP only, loopback only for the ports the pod names.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { issue } from '../../../injector/src/pki/ca.js';
import { ENV, PEER_IDENTITY_HEADER, TUNNEL_ALPN } from '../../../proxy/src/contract.js';
import { waitFor } from '../supervisor/helpers.js';
import { get, startSidecar } from '../telemetry/sidecar.js';
import type { Sidecar } from '../telemetry/sidecar.js';

const TD = 'ipv6.test';
const ID_A = `spiffe://${TD}/ns/shop/sa/client`;
const ID_B = `spiffe://${TD}/ns/shop/sa/web`;
const TOKENS = new Map([
  ['token-a-0123456789abcdef', { namespace: 'shop', serviceAccount: 'client' }],
  ['token-b-0123456789abcdef', { namespace: 'shop', serviceAccount: 'web' }],
]);
const SERVICE = '127.0.0.206:80';
const ECHO_SERVICE = '127.0.0.207:7';
const root = newRoot(TD);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function portOf(s: Sidecar, name: string): number {
  const port = (s.ports as unknown as Record<string, number | undefined>)[name];
  if (port === undefined) throw new Error(`no ${name} port in ${JSON.stringify(s.ports)}`);
  return port;
}

/** A client certificate for ID_A straight from the root, for raw CONNECT heads. */
function clientCredentials(): { key: string; cert: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leaf = issue(root, {
    subject: {},
    validityDays: 1,
    uris: [ID_A],
    extKeyUsage: ['clientAuth', 'serverAuth'],
    publicKey,
  });
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: leaf.certPem };
}

/**
 * mTLS to [::1]:port, one CONNECT head and a payload; resolves with everything read until close
 * (or until `answer` arrived).
 */
function rawTunnel(
  port: number,
  connectLine: string,
  payload: string,
  answer = `echo:${payload}`,
): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '::1',
      port,
      ALPNProtocols: [TUNNEL_ALPN],
      ca: root.certPem,
      checkServerIdentity: () => undefined,
      ...clientCredentials(),
    });
    s.on('secureConnect', () => s.write(`${connectLine}\r\n\r\n${payload}`));
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString();
      // The echo came back: done.
      if (buf.includes(answer)) s.end();
    });
    s.on('error', () => resolve(buf));
    s.on('close', () => resolve(buf));
  });
}

describe('mesh tunnel over IPv6 (::1, real CA, supervisor + engine)', () => {
  let dir: string;
  let ca: CaServer;
  let app: http.Server;
  let appPort: number;
  let echo6: net.Server;
  let echo6Port: number;
  let echo4: net.Server;
  let echo4Port: number;
  const seen: (string | undefined)[] = [];
  const sidecars: Sidecar[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'remora-tunnel6-'));
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    ca = await startCaServer({
      host: '127.0.0.1',
      port: 0,
      ca: root,
      trustDomain: TD,
      reviewer: staticTokenReviewer(TOKENS),
      ttlSeconds: 3600,
      logger: pino({ level: 'silent' }),
      namespace: 'remora-system',
      serviceAccount: 'remora-injector',
    });
    app = http.createServer((req, res) => {
      const v = req.headers[PEER_IDENTITY_HEADER];
      seen.push(typeof v === 'string' ? v : undefined);
      res.end('from B');
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    appPort = (app.address() as AddressInfo).port;
    // An app bound to the IPv6 loopback only: 127.0.0.1 cannot reach it.
    echo6 = net.createServer((c) => {
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => c.write(`echo:${d.toString()}`));
    });
    await new Promise<void>((r) => echo6.listen({ host: '::1', port: 0, ipv6Only: true }, r));
    echo6Port = (echo6.address() as AddressInfo).port;
    echo4 = net.createServer((c) => {
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => c.write(`echo4:${d.toString()}`));
    });
    await new Promise<void>((r) => echo4.listen(0, '127.0.0.1', r));
    echo4Port = (echo4.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const s of sidecars) await s.stop();
    app?.closeAllConnections();
    await new Promise((r) => app?.close(r));
    await new Promise((r) => echo6?.close(r));
    await new Promise((r) => echo4?.close(r));
    await ca?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function meshEnv(name: string, token: string): Record<string, string> {
    const tokenFile = join(dir, `${name}.token`);
    writeFileSync(tokenFile, token);
    return {
      [ENV.caAddress]: `127.0.0.1:${ca.port}`,
      [ENV.caBundleFile]: join(dir, 'bundle.pem'),
      [ENV.tokenFile]: tokenFile,
      [ENV.trustDomain]: TD,
    };
  }

  it('A reaches B’s app through B’s tunnel6 at [::1]; B sees the caller on IPv6 and its identity', async () => {
    const b = await startSidecar(meshEnv('b', 'token-b-0123456789abcdef'));
    sidecars.push(b);
    // The supervisor held both families (bind host 127.0.0.1 here, so its twin is ::1).
    const t4 = portOf(b, 'tunnel');
    const t6 = portOf(b, 'tunnel6');
    const disc = join(dir, 'discovery.json');
    writeFileSync(
      disc,
      JSON.stringify({
        services: {
          [SERVICE]: {
            endpoints: [{ ip: '::1', port: appPort, meshed: true, identity: ID_B, tunnelPort: t6 }],
          },
        },
      }),
    );
    const a = await startSidecar({
      ...meshEnv('a', 'token-a-0123456789abcdef'),
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: SERVICE,
    });
    sidecars.push(a);

    // Both need their certificate first (readiness waits for it, but retry anyway).
    let r = { status: 0, body: '' };
    const end = Date.now() + 15_000;
    while (r.status !== 200 && Date.now() < end) {
      r = await get(`http://127.0.0.1:${a.ports.outbound}/x`).catch(() => ({ status: 0, body: '' }));
      if (r.status !== 200) await sleep(200);
    }
    expect(r, JSON.stringify([...a.logs(), ...b.logs()].slice(-20))).toMatchObject({
      status: 200,
      body: 'from B',
    });
    expect(seen.at(-1)).toBe(ID_A);
    // Only [::1]:t6 was named by discovery (the IPv4 tunnel, 127.0.0.1:t4, is another socket):
    // B saw its caller come from ::1.
    expect(t4).toBeGreaterThan(0);
    const inbound = () => b.logs().filter((l) => l.log === 'access' && l.direction === 'inbound');
    await waitFor('B’s access line', () => inbound().length > 0);
    expect(String(inbound().at(-1)?.peer)).toMatch(/^::1:\d+$/);
  });

  it('CONNECT [::1]:<port> reaches an app bound to the IPv6 loopback only; another IPv6 host is refused', async () => {
    const b = sidecars[0];
    if (b === undefined) throw new Error('needs the first case’s sidecar');
    const t6 = portOf(b, 'tunnel6');
    // The proxy's readiness means it has a certificate; the tunnel answers at once.
    expect(await rawTunnel(t6, `CONNECT [::1]:${echo6Port} HTTP/1.1`, 'ping6')).toBe(
      'HTTP/1.1 200 OK\r\n\r\necho:ping6',
    );
    const bad = await rawTunnel(t6, `CONNECT [::2]:${echo6Port} HTTP/1.1`, 'nope');
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    expect(bad).not.toContain('echo:');
    // The log line travels through the sidecar's stdout pipe, which may trail the answer.
    await waitFor('the refusal in the log', () => b.logs().some((l) => l.event === 'tunnel_connect_refused'));
    const refused = b.logs().filter((l) => l.event === 'tunnel_connect_refused');
    expect(String(refused.at(-1)?.reason)).toContain('[::2]');
  });

  it('a peer’s CONNECT 127.0.0.1 / localhost / [::1] reached loopback-only apps: with a pod IP every spelling goes to <pod IP>:<port>', async () => {
    // An app bound to the "pod IP" only (127.0.0.2 stands in for it on loopback).
    const podApp = net.createServer((c) => {
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => c.write(`pod:${d.toString()}|from:${c.remoteAddress}`));
    });
    await new Promise<void>((r) => podApp.listen(0, '127.0.0.2', r));
    const podPort = (podApp.address() as AddressInfo).port;
    const p = await startSidecar({
      ...meshEnv('p', 'token-b-0123456789abcdef'),
      [ENV.podIp]: '127.0.0.2',
      // echo4 (bound to 127.0.0.1 only) is named: it stays reachable on loopback.
      [ENV.localhostInboundPorts]: String(echo4Port),
    });
    sidecars.push(p);
    try {
      const t6 = portOf(p, 'tunnel6');
      for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
        // The loopback-only IPv6 app is not named: no spelling reaches it any more.
        const priv = await rawTunnel(t6, `CONNECT ${host}:${echo6Port} HTTP/1.1`, `priv-${host}`);
        expect(priv, host).not.toContain('echo:');
        // The app on the pod IP is reached whatever loopback the peer named, from 127.0.0.6.
        const pod = await rawTunnel(t6, `CONNECT ${host}:${podPort} HTTP/1.1`, `p-${host}`, `pod:p-${host}`);
        expect(pod, host).toBe(`HTTP/1.1 200 OK\r\n\r\npod:p-${host}|from:127.0.0.6`);
      }
      const named = await rawTunnel(t6, `CONNECT 127.0.0.1:${echo4Port} HTTP/1.1`, 'named', 'echo4:named');
      expect(named).toBe('HTTP/1.1 200 OK\r\n\r\necho4:named');
    } finally {
      await new Promise((r) => podApp.close(r));
    }
  });

  it('a peer that opens the tunnel port and never sends a ClientHello was held for 120 s: now cut at the CONNECT bound (10 s)', async () => {
    const b = sidecars[0];
    if (b === undefined) throw new Error('needs the first case’s sidecar');
    const closed = await new Promise<{ bytes: number; byServer: boolean }>((resolve) => {
      const s = net.connect({ host: '::1', port: portOf(b, 'tunnel6') });
      let bytes = 0;
      const giveUp = setTimeout(() => {
        s.destroy();
        resolve({ bytes, byServer: false });
      }, 30_000);
      s.on('data', (c: Buffer) => (bytes += c.length));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(giveUp);
        resolve({ bytes, byServer: true });
      });
    });
    expect(closed).toEqual({ bytes: 0, byServer: true });
    await waitFor('the refusal in the log', () =>
      b.logs().some((l) => l.event === 'tls_handshake_failed' && String(l.detail).includes('TIMEOUT')),
    );
  }, 40_000);

  it('opaque TCP: one tunnel per connection to an IPv6 endpoint, bytes both ways', async () => {
    const b = sidecars[0];
    if (b === undefined) throw new Error('needs the first case’s sidecar');
    const disc = join(dir, 'discovery-echo.json');
    writeFileSync(
      disc,
      JSON.stringify({
        services: {
          [ECHO_SERVICE]: {
            endpoints: [
              { ip: '::1', port: echo4Port, meshed: true, identity: ID_B, tunnelPort: portOf(b, 'tunnel6') },
            ],
          },
        },
      }),
    );
    const e = await startSidecar({
      ...meshEnv('e', 'token-a-0123456789abcdef'),
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: ECHO_SERVICE,
    });
    sidecars.push(e);
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port: e.ports.outbound });
      let buf = '';
      c.on('connect', () => c.write('\x00opaque-v6'));
      c.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('opaque-v6')) c.end();
      });
      c.on('error', reject);
      c.on('close', () => resolve(buf));
    });
    expect(reply).toBe('echo4:\x00opaque-v6');
    // B logs the relayed connection when it closes.
    const tcp = () =>
      b.logs().filter((l) => l.log === 'access' && l.type === 'tcp' && l.direction === 'inbound');
    await waitFor('B’s access line for the opaque connection', () => tcp().length > 0);
    expect(String(tcp().at(-1)?.peer)).toMatch(/^::1:\d+$/);
  });
});
