/**
 * Real servers for the engine's integration tests: a backend that records what it received and
 * counts its open sockets, an engine on ephemeral loopback ports, and raw-socket helpers.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { parseConfig } from '../../proxy/src/config/config.js';
import { ENV } from '../../proxy/src/contract.js';
import { Engine } from '../../proxy/src/engine.js';
import type { EngineOptions } from '../../proxy/src/engine.js';
import type { PoolsOptions } from '../../proxy/src/http/pools.js';
import type { HandedListeners } from '../../proxy/src/listeners.js';
import { createLogger } from '../../proxy/src/log.js';

/** Every way an app's framework may read as the same `x-remora-peer-identity` (DESIGN §3). */
export const PEER_IDENTITY_SPELLINGS = [
  'x-remora-peer-identity',
  'X-Remora-Peer-Identity',
  'X-REMORA-PEER-IDENTITY',
  'x_remora_peer_identity',
  'X_REMORA_PEER_IDENTITY',
  'X-Remora_Peer-Identity',
  'x-remora_peer_identity',
] as const;
/** A header name that is one of them. */
export const ANY_PEER_IDENTITY_SPELLING = /^x[-_]remora[-_]peer[-_]identity$/i;

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
  complete: boolean;
  aborted: boolean;
}

export interface Backend {
  readonly port: number;
  readonly received: Received[];
  /** sockets currently open on the backend */
  openSockets(): number;
  /** sockets ever accepted by the backend */
  acceptedSockets(): number;
  close(): Promise<void>;
  server: http.Server;
}

/**
 * Routes: `/echo` streams the body back; `/drip` answers with 3 chunks 50 ms apart; `/reset`
 * destroys the connection; `/wait` answers after 300 ms; anything else: "hello world\n".
 * Upgrade requests get 101 and an echo of the raw bytes.
 */
export async function startBackend(): Promise<Backend> {
  const received: Received[] = [];
  let open = 0;
  let accepted = 0;
  const server = http.createServer((req, res) => {
    const r: Received = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyBytes: 0,
      complete: false,
      aborted: false,
    };
    received.push(r);
    req.on('data', (c: Buffer) => (r.bodyBytes += c.length));
    req.on('end', () => (r.complete = true));
    req.on('aborted', () => (r.aborted = true));
    req.on('error', () => (r.aborted = true));
    const url = req.url ?? '/';
    if (url.startsWith('/echo')) {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        connection: 'x-hop',
        'x-hop': 'secret',
        'keep-alive': 'timeout=9',
      });
      req.pipe(res);
    } else if (url.startsWith('/reset')) {
      req.socket.destroy();
    } else if (url.startsWith('/drip')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const t = setInterval(() => {
        res.write(`chunk${i}\n`);
        if (++i === 3) {
          clearInterval(t);
          res.end();
        }
      }, 50);
      res.on('close', () => clearInterval(t));
    } else if (url.startsWith('/wait')) {
      req.resume();
      setTimeout(() => res.end('waited\n'), 300);
    } else {
      req.resume();
      req.on('end', () => res.end('hello world\n'));
    }
  });
  server.on('connection', (s: net.Socket) => {
    open++;
    accepted++;
    s.on('close', () => open--);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyBytes: 0,
      complete: true,
      aborted: false,
    });
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-backend: yes\r\n\r\n',
    );
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    openSockets: () => open,
    acceptedSockets: () => accepted,
    server,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * Parity runs (docs/proxy.md, "Fast upstream client"): `REMORA_UPSTREAM_CLIENT=fast npx vitest
 * run test/proxy/http` puts every harness engine, and every Pools a suite makes with
 * `testPoolsOptions()`, on that client. Unset (the default), nothing changes. The same for the
 * server stage: `REMORA_HTTP_SERVER=node` runs the harness engines on the node:http stage.
 */
export function upstreamClientEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of [ENV.upstreamClient, ENV.httpServer]) {
    const v = process.env[name];
    if (v !== undefined && v !== '') out[name] = v;
  }
  return out;
}

export function testPoolsOptions(): Partial<PoolsOptions> {
  return { client: parseConfig(upstreamClientEnv()).upstreamClient };
}

export interface TestEngine {
  readonly engine: Engine;
  readonly logs: Record<string, unknown>[];
  port(name: 'inbound' | 'outbound' | 'admin' | 'health' | 'metrics'): number;
}

export async function startEngine(
  env: Record<string, string>,
  listeners?: HandedListeners,
  /** extra engine options: HTTP layers, a metrics object the test made first */
  extra?: Pick<EngineOptions, 'layers' | 'metrics'>,
): Promise<TestEngine> {
  const config = parseConfig({
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.logLevel]: 'debug',
    ...upstreamClientEnv(),
    ...env,
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const engine = new Engine({ config, log: createLogger(config.logLevel, sink), listeners, ...extra });
  await engine.start();
  return {
    engine,
    logs,
    port: (name) => {
      const a = engine.addresses()[name];
      if (a === undefined) throw new Error(`no ${name} listener`);
      return a.port;
    },
  };
}

/** Sends raw bytes, returns everything the server sent until it closed (or `ms` passed). */
export function rawExchange(port: number, data: string | Buffer, ms = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(data));
    const t = setTimeout(() => {
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    s.on('error', (e) => {
      clearTimeout(t);
      if ((e as NodeJS.ErrnoException).code === 'ECONNRESET')
        resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
  });
}

/** Waits until `cond` holds (polling), failing with `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

/** The value of one series in a /metrics text, or undefined. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls: Record<string, string> = {};
    for (const p of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      ls[p[1] as string] = p[2] as string;
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) return Number(m[4]);
  }
  return undefined;
}
