/**
 * HTTP/1.1 between proxies over the shared HTTP/2 connection (issue 12 item 5,
 * REMORA_MESH_HTTP1_OVER_H2=on, tunnel/origproto.ts): two real sidecars with certificates from a
 * real identity CA; HTTP/1.1 clients call A's outbound listener, A carries their requests as
 * streams of ONE HTTP/2 session inside the mTLS tunnel (`x-remora-orig-proto`), B turns each back
 * into HTTP/1.1 for its app. The app is a real node:http server that also speaks h2c (to see what
 * reaches it when a client sends HTTP/2) and WebSocket-style upgrades.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { startMeshPair } from '../../helpers/mesh-pair.js';
import type { MeshPair } from '../../helpers/mesh-pair.js';
import { sample } from '../harness.js';
import { waitFor } from '../supervisor/helpers.js';
import { get } from '../telemetry/sidecar.js';

const SERVICE = '127.0.0.213:8080';

interface Seen {
  readonly version: string;
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** The app behind B: HTTP/1.1 (node:http) and h2c (node:http2) on one port, by first bytes. */
interface DualApp {
  readonly port: number;
  readonly seen: Seen[];
  close(): Promise<void>;
}

function answer(url: string, method: string, body: Buffer, res: http.ServerResponse): void {
  const path = url.split('?')[0] as string;
  const status = /^\/status\/(\d{3})$/.exec(path);
  if (status) {
    const code = Number(status[1]);
    res.writeHead(code, code === 304 ? { etag: '"v1"' } : {}).end();
  } else if (path === '/chunked') {
    // No Content-Length: HTTP/1.1 chunked from the app.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('one,');
    setTimeout(() => {
      res.write('two,');
      res.end('three');
    }, 20);
  } else if (path === '/trailers') {
    res.writeHead(200, { trailer: 'x-checksum' });
    res.write('with trailers');
    res.addTrailers({ 'x-checksum': 'abc123' });
    res.end();
  } else if (path === '/head') {
    res.writeHead(200, { 'content-length': '5', 'content-type': 'text/plain' });
    res.end(method === 'HEAD' ? undefined : 'hello');
  } else if (path === '/close') {
    res.writeHead(200, { connection: 'close', 'content-type': 'text/plain' }).end('closing');
  } else {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-app': 'h1' }).end(body);
  }
}

async function startDualApp(): Promise<DualApp> {
  const seen: Seen[] = [];
  const h1 = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({
        version: req.httpVersion,
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
      });
      answer(req.url ?? '', req.method ?? '', body, res);
    });
  });
  h1.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    seen.push({
      version: req.httpVersion,
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: head,
    });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
  });
  const h2 = http2.createServer((req, res) => {
    seen.push({
      version: req.httpVersion,
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: Buffer.alloc(0),
    });
    req.resume();
    res.writeHead(200, { 'x-app': 'h2' }).end('h2');
  });
  const sockets = new Set<Socket>();
  const front = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.once('data', (first: Buffer) => {
      s.pause();
      s.unshift(first);
      // The HTTP/2 session reads the unshifted preface itself; node:http needs the socket flowing.
      if (first.subarray(0, 3).toString() === 'PRI') h2.emit('connection', s);
      else {
        h1.emit('connection', s);
        s.resume();
      }
    });
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  return {
    port: (front.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        front.close(() => r());
      }),
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
  socket: Socket;
}

function call(
  port: number,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: Buffer[]; agent?: http.Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? 'GET',
        headers: o.headers,
        agent: o.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            trailers: res.trailers,
            body: Buffer.concat(chunks),
            socket: res.socket as Socket,
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    for (const c of o.body ?? []) req.write(c);
    req.end();
  });
}

let app: DualApp;
let mesh: MeshPair;
let dir: string;
/**
 * B's counts of tunnel connections from A once the warm-up is over. While the certificates
 * arrive, A may open a tunnel and drop it before its first byte (its check of B's identity
 * failed); B counts such a silent connection as HTTP/1 (tcp/detect.ts). So the tests count the
 * connections their own requests open, from here.
 */
const opened = { http1: 0, http2: 0 };

/** The app's most recent request to `url`. */
function last(url: string): Seen {
  const s = app.seen.filter((x) => x.url === url).at(-1);
  if (s === undefined)
    throw new Error(`the app saw no ${url}; it saw ${app.seen.map((x) => x.url).join(' ')}`);
  return s;
}

async function metrics(s: 'a' | 'b'): Promise<string> {
  return (await get(`http://127.0.0.1:${mesh[s].ports.metrics}/metrics`)).body;
}

/** B's series for callers with A's identity (the supervisor merges the engine's snapshots: polled). */
async function fromA(
  name: string,
  labels: Record<string, string>,
  want: (v: number) => boolean,
): Promise<number> {
  let v = 0;
  await waitFor(`${name} ${JSON.stringify(labels)}`, async () => {
    v = sample(await metrics('b'), name, { direction: 'inbound', source_identity: mesh.idA, ...labels }) ?? 0;
    return want(v);
  });
  return v;
}

beforeAll(async () => {
  app = await startDualApp();
  dir = mkdtempSync(join(tmpdir(), 'remora-orig-proto-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: reviews
    inbound:
      - ports: [${app.port}]
        authorization:
          rules:
            - name: no-admin
              action: deny
              request: { paths: [{ prefix: /admin/ }] }
`,
  );
  mesh = await startMeshPair({
    trustDomain: 'orig.test',
    service: SERVICE,
    appPort: app.port,
    envA: { [ENV.meshHttp1OverH2]: 'on' },
    // B's plaintext inbound listener reaches the same app (the bad-input test on 15006).
    envB: { [ENV.policyFile]: policy, [ENV.inboundTarget]: `127.0.0.1:${app.port}` },
  });
  // Both sidecars need their certificate first: retry until a request goes through.
  const end = Date.now() + 15_000;
  for (;;) {
    const r = await call(mesh.a.ports.outbound, '/warmup').catch(() => undefined);
    if (r?.status === 200 || Date.now() > end) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  // The supervisor merges the engine's counts on its heartbeat (about a second): read until two
  // reads 1.5 s apart agree.
  const read = async (): Promise<string> => {
    const m = await metrics('b');
    for (const protocol of ['http1', 'http2'] as const)
      opened[protocol] =
        sample(m, 'remora_tcp_connections_opened_total', {
          direction: 'inbound',
          source_identity: mesh.idA,
          protocol,
        }) ?? 0;
    return `${opened.http1}/${opened.http2}`;
  };
  const settleBy = Date.now() + 15_000;
  let before = await read();
  for (;;) {
    await new Promise((res) => setTimeout(res, 1_500));
    const now = await read();
    if (now === before || Date.now() > settleBy) break;
    before = now;
  }
}, 60_000);

afterAll(async () => {
  await mesh?.close();
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('HTTP/1.1 over the shared HTTP/2 connection between proxies (x-remora-orig-proto)', () => {
  it('bodies both ways, chunked both ways, the peer identity and HTTP/1.1 at the app', async () => {
    const port = mesh.a.ports.outbound;
    const big = Buffer.alloc(1024 * 1024, 7);
    const r = await call(port, '/echo?x=1', {
      method: 'POST',
      headers: { 'content-length': String(big.length), 'x-mine': 'kept' },
      body: [big],
    });
    expect(r.status).toBe(200);
    expect(r.body.equals(big)).toBe(true);
    expect(r.headers['x-app']).toBe('h1');
    const seen = last('/echo?x=1');
    expect(seen.version).toBe('1.1');
    expect(seen.body.equals(big)).toBe(true);
    expect(seen.headers['x-mine']).toBe('kept');
    expect(seen.headers['x-remora-peer-identity']).toBe(mesh.idA);
    expect(seen.headers['x-remora-orig-proto']).toBeUndefined();

    // A chunked request body (no Content-Length) arrives whole; a chunked answer comes back chunked.
    const up = await call(port, '/echo-chunked', {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: [Buffer.from('a,'), Buffer.from('b,'), Buffer.from('c')],
    });
    expect(up.body.toString()).toBe('a,b,c');
    expect(last('/echo-chunked').body.toString()).toBe('a,b,c');
    const down = await call(port, '/chunked');
    expect(down.body.toString()).toBe('one,two,three');
    expect(down.headers['transfer-encoding']).toBe('chunked');
    expect(down.headers['content-length']).toBeUndefined();
  }, 30_000);

  it('HEAD, 204 and 304 carry no body; HEAD keeps the Content-Length', async () => {
    const port = mesh.a.ports.outbound;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const head = await call(port, '/head', { method: 'HEAD', agent });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe('5');
      expect(head.body.length).toBe(0);
      expect(last('/head').method).toBe('HEAD');
      const none = await call(port, '/status/204', { agent });
      expect(none.status).toBe(204);
      expect(none.body.length).toBe(0);
      const same = await call(port, '/status/304', { agent, headers: { 'if-none-match': '"v1"' } });
      expect(same.status).toBe(304);
      expect(same.headers.etag).toBe('"v1"');
      expect(same.body.length).toBe(0);
      // The connection survived all three (no body was expected where none came).
      const after = await call(port, '/head', { agent });
      expect(after.body.toString()).toBe('hello');
      expect(after.socket).toBe(head.socket);
    } finally {
      agent.destroy();
    }
  }, 30_000);

  it('keep-alive is the client’s: one connection for many requests, Connection: close honoured, the app’s close stays on its side', async () => {
    const port = mesh.a.ports.outbound;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const r1 = await call(port, '/k1', { agent });
      // The app closes its connection to B after this answer: hop-by-hop, the client's stays.
      const r2 = await call(port, '/close', { agent });
      expect(r2.body.toString()).toBe('closing');
      expect(r2.headers.connection).not.toBe('close');
      const r3 = await call(port, '/k3', { agent });
      expect(r3.status).toBe(200);
      expect(r3.socket).toBe(r1.socket);
      // The client's own Connection: close ends its connection after the answer.
      const r4 = await call(port, '/k4', { agent, headers: { connection: 'close' } });
      expect(r4.headers.connection).toBe('close');
      expect(last('/k4').headers.connection).not.toBe('close');
    } finally {
      agent.destroy();
    }
  }, 30_000);

  it('response trailers of a chunked answer reach the client', async () => {
    const r = await call(mesh.a.ports.outbound, '/trailers');
    expect(r.body.toString()).toBe('with trailers');
    expect(r.trailers['x-checksum']).toBe('abc123');
  }, 30_000);

  it('many client connections share ONE HTTP/2 connection between the proxies; both sides count HTTP/1', async () => {
    const port = mesh.a.ports.outbound;
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => call(port, `/many/${i}`)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    // Counted as HTTP/1 on the far side as on the near side (the warm-up and the tests before too).
    expect(
      await fromA('remora_requests_total', { protocol: 'http1', status_code: '200' }, (v) => v >= 30),
    ).toBeGreaterThanOrEqual(30);
    expect(await fromA('remora_requests_total', { protocol: 'http2', status_code: '200' }, () => true)).toBe(
      0,
    );
    // One HTTP/2 connection (the tunnel) carried all of them, and every request of the tests
    // before (bodies, chunked, HEAD/204/304, keep-alive, trailers): no HTTP/1.1 tunnel was opened.
    // (opened: the connections there were after the warm-up, whose HTTP/2 one is this one)
    expect(opened.http2).toBeGreaterThanOrEqual(1);
    expect(await fromA('remora_tcp_connections_opened_total', { protocol: 'http2' }, () => true)).toBe(
      opened.http2,
    );
    expect(await fromA('remora_tcp_connections_opened_total', { protocol: 'http1' }, () => true)).toBe(
      opened.http1,
    );
    const ma = await metrics('a');
    expect(
      sample(ma, 'remora_requests_total', {
        direction: 'outbound',
        protocol: 'http1',
        status_code: '200',
        destination_workload: 'reviews',
      }),
    ).toBeGreaterThanOrEqual(30);
  }, 30_000);

  it('an Upgrade (WebSocket) stays on an HTTP/1.1 tunnel of its own and works end to end', async () => {
    const sock = net.connect(mesh.a.ports.outbound, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(
      'GET /ws HTTP/1.1\r\nhost: reviews\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n',
    );
    let got = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no 101: ${got}`)), 10_000);
      sock.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes('\r\n\r\n') && !got.includes('echo:')) sock.write('ping');
        if (got.includes('echo:ping')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    sock.destroy();
    expect(got.startsWith('HTTP/1.1 101')).toBe(true);
    expect(last('/ws').headers.upgrade).toBe('websocket');
    expect(last('/ws').headers['x-remora-peer-identity']).toBe(mesh.idA);
    const one = opened.http1 + 1;
    expect(await fromA('remora_tcp_connections_opened_total', { protocol: 'http1' }, (v) => v === one)).toBe(
      one,
    );
  }, 30_000);

  it('HTTP/1.0 stays on an HTTP/1.1 tunnel (a pooled one, not the HTTP/2 connection)', async () => {
    const sock = net.connect(mesh.a.ports.outbound, '127.0.0.1');
    let got = '';
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.on('data', (d: Buffer) => (got += d.toString()));
      sock.once('close', () => resolve());
      sock.write('GET /v10 HTTP/1.0\r\nhost: reviews\r\n\r\n');
    });
    expect(got.startsWith('HTTP/1.')).toBe(true);
    expect(got).toContain(' 200 ');
    // The WebSocket's tunnel and this one.
    const two = opened.http1 + 2;
    expect(await fromA('remora_tcp_connections_opened_total', { protocol: 'http1' }, (v) => v === two)).toBe(
      two,
    );
  }, 30_000);

  it('the far side’s policy still applies: a denied path is 403 from B', async () => {
    const r = await call(mesh.a.ports.outbound, '/admin/x');
    expect(r.status).toBe(403);
    expect(r.headers['x-remora-error']).toBe('RMR_POLICY_DENIED');
    expect(app.seen.some((s) => s.url === '/admin/x')).toBe(false);
  }, 30_000);

  it('bad input: an app sending x-remora-orig-proto itself, in any spelling, on either listener, gets nothing from it', async () => {
    // Outbound, HTTP/1.1: A drops the app's own (and adds its own marker, which B consumes).
    const r1 = await call(mesh.a.ports.outbound, '/forged-1', {
      headers: { 'x-remora-orig-proto': 'HTTP/1.0', X_Remora_Orig_Proto: 'HTTP/1.0' },
    });
    expect(r1.status).toBe(200);
    expect(last('/forged-1').version).toBe('1.1');
    expect(Object.keys(last('/forged-1').headers).filter((h) => /orig.proto/i.test(h))).toEqual([]);

    // Outbound, h2c: A drops it; the stream reaches B without it and the app over HTTP/2.
    const viaA = await h2call(mesh.a.ports.outbound, '/forged-2');
    expect(viaA).toEqual({ status: 200, body: 'h2' });
    expect(last('/forged-2').version).toBe('2.0');
    expect(last('/forged-2').headers['x-remora-orig-proto']).toBeUndefined();

    // B's plaintext inbound listener (no tunnel, no proven peer): never a downgrade.
    const viaB = await h2call(mesh.b.ports.inbound, '/forged-3');
    expect(viaB).toEqual({ status: 200, body: 'h2' });
    expect(last('/forged-3').version).toBe('2.0');
    expect(last('/forged-3').headers['x-remora-orig-proto']).toBeUndefined();

    // And over HTTP/1.1 on B's inbound: dropped.
    const r4 = await call(mesh.b.ports.inbound, '/forged-4', {
      headers: { 'x-remora-orig-proto': 'HTTP/1.1' },
    });
    expect(r4.status).toBe(200);
    expect(last('/forged-4').headers['x-remora-orig-proto']).toBeUndefined();
  }, 30_000);

  it('errors: the far app down → the near client gets 503 RMR_UPSTREAM_CONNECT from B', async () => {
    await app.close();
    const r = await call(mesh.a.ports.outbound, '/down');
    expect(r.status).toBe(503);
    expect(r.headers['x-remora-error']).toBe('RMR_UPSTREAM_CONNECT');
  }, 30_000);
});

/** One h2c GET carrying a forged `x-remora-orig-proto` (in two spellings). */
function h2call(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({
      ':path': path,
      'x-remora-orig-proto': 'HTTP/1.1',
      x_remora_orig_proto: 'HTTP/1.1',
    });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', reject);
    req.end();
  });
}
