/**
 * Shared pieces of the traffic-layer tests (timeouts, retries, rate limit): a backend on loopback
 * that misbehaves on purpose, an engine whose inbound stack carries the policy layers in the
 * order the engine wires them (rate limit → route → timeout → forwarder), a bare listener
 * (HTTP stage + layers + forwarder) for what an engine cannot show, and a one-shot client.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ENV } from '../../../proxy/src/contract.js';
import { forwarder } from '../../../proxy/src/http/forward.js';
import { compose } from '../../../proxy/src/http/layer.js';
import type { Layer } from '../../../proxy/src/http/layer.js';
import { Pools } from '../../../proxy/src/http/pools.js';
import { createHttpStage } from '../../../proxy/src/http/server.js';
import { createLogger } from '../../../proxy/src/log.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { compilePolicy } from '../../../proxy/src/policy/compile.js';
import { parsePolicyDocument } from '../../../proxy/src/policy/document.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { rateLimitLayer } from '../../../proxy/src/policy/ratelimit.js';
import { routeLayer } from '../../../proxy/src/policy/route.js';
import { timeoutLayer } from '../../../proxy/src/policy/timeout.js';
import type { CompiledPolicy, InboundPolicy } from '../../../proxy/src/policy/types.js';
import { kConn } from '../../../proxy/src/tcp/connection.js';
import type { SocketWithConn } from '../../../proxy/src/tcp/connection.js';
import { kTunnel } from '../../../proxy/src/tunnel/server.js';
import type { TunnelInfo } from '../../../proxy/src/tunnel/server.js';
import { startEngine, testPoolsOptions } from '../harness.js';
import type { TestEngine } from '../harness.js';

export interface MisbehavingBackend {
  readonly port: number;
  /** requests received per path (query included) */
  hits(path: string): number;
  /** request body bytes received per path, over all its requests */
  bodyBytes(path: string): number;
  /**
   * Sockets that carried a request and that the proxy has not closed yet. (Sockets without a
   * request do not count: undici dials a spare connection after an aborted request.)
   */
  openSockets(): number;
  close(): Promise<void>;
}

/**
 * Paths: `/stall` accepts and never answers; `/head-stall` sends the head and one chunk, then
 * nothing; `/slow-drip` sends 8 chunks 100 ms apart; `/503-once*` answers 503 to its first
 * request, then 200; `/reset-once*` destroys the connection on its first request, then 200;
 * `/always-503*` answers 503 (every path does with `always503`); anything else 200 "ok" after
 * reading the body.
 */
export async function startMisbehavingBackend(o: { always503?: boolean } = {}): Promise<MisbehavingBackend> {
  const hits = new Map<string, number>();
  const bytes = new Map<string, number>();
  let open = 0;
  const used = new WeakSet<net.Socket>();
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (!used.has(req.socket)) {
      used.add(req.socket);
      open++;
      // Gone as soon as the proxy closes its side (FIN or reset): a stalled handler here would
      // otherwise keep the socket half open after the proxy has long let go.
      let gone = false;
      const left = () => {
        if (!gone) open--;
        gone = true;
      };
      req.socket.on('end', left);
      req.socket.on('close', left);
    }
    const n = (hits.get(url) ?? 0) + 1;
    hits.set(url, n);
    if (url.startsWith('/stall')) return;
    if (url.startsWith('/head-stall')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n');
      return;
    }
    if (url.startsWith('/slow-drip')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const t = setInterval(() => {
        res.write(`drip${i}\n`);
        if (++i === 8) {
          clearInterval(t);
          res.end();
        }
      }, 100);
      res.on('close', () => clearInterval(t));
      return;
    }
    if (url.startsWith('/reset-once') && n === 1) {
      req.socket.destroy();
      return;
    }
    const fail =
      o.always503 === true || url.startsWith('/always-503') || (url.startsWith('/503-once') && n === 1);
    req.on('data', (c: Buffer) => bytes.set(url, (bytes.get(url) ?? 0) + c.length));
    req.on('end', () => {
      res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(fail ? 'unavailable\n' : 'ok\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    hits: (path) => hits.get(path) ?? 0,
    bodyBytes: (path) => bytes.get(path) ?? 0,
    openSockets: () => open,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A policy source built with the real parser and compiler from one inbound section. */
export function inboundPolicy(section: InboundPolicy): { current: CompiledPolicy | undefined } {
  const text = JSON.stringify({
    apiVersion: 'remora.dev/v1',
    kind: 'PolicySet',
    policies: [{ name: 'traffic', inbound: [section] }],
  });
  return {
    current: compilePolicy(parsePolicyDocument(text), { namespace: undefined, workload: undefined }, 't'),
  };
}

export interface TrafficEngine extends TestEngine {
  readonly policyMetrics: PolicyMetrics;
  /** what the policy layers logged (warn and up) */
  readonly layerLogs: Record<string, unknown>[];
}

/**
 * An engine proxying inbound to `backendPort` with the traffic layers over `policy`.
 * `now`: the clock of the rate limit and the retry budget (real time by default).
 */
export async function startTrafficEngine(
  backendPort: number,
  policy: { current: CompiledPolicy | undefined },
  o: { now?: () => number; minRetriesPerSecond?: number; maxBuckets?: number } = {},
): Promise<TrafficEngine> {
  const metrics = new ProxyMetrics();
  const policyMetrics = PolicyMetrics.of(metrics.registry);
  const layerLogs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') layerLogs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger('warn', sink);
  const base = { policy, direction: 'inbound' as const, metrics: policyMetrics, log, now: o.now };
  const layers: Layer[] = [
    rateLimitLayer({ ...base, maxBuckets: o.maxBuckets }),
    routeLayer({ ...base, minRetriesPerSecond: o.minRetriesPerSecond }),
    timeoutLayer(base),
  ];
  const px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${backendPort}` }, undefined, {
    metrics,
    layers: { inbound: layers },
  });
  return { ...px, policyMetrics, layerLogs };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** the connection was cut before the response completed */
  cut: boolean;
}

/** One request on a fresh connection; `body` is written in two pieces (a streamed body). */
export function send(
  port: number,
  path: string,
  o: { method?: string; body?: string; localAddress?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? 'GET',
        agent: false,
        localAddress: o.localAddress,
      },
      (res) => {
        let body = '';
        const a = (cut: boolean): Answer => ({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          cut,
        });
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(a(false)));
        res.on('error', () => resolve(a(true)));
        res.on('aborted', () => resolve(a(true)));
      },
    );
    req.on('error', reject);
    if (o.body === undefined) {
      req.end();
    } else {
      const half = Math.floor(o.body.length / 2);
      req.write(o.body.slice(0, half));
      setTimeout(() => req.end(o.body?.slice(half)), 20);
    }
  });
}

export interface StageListener {
  readonly port: number;
  readonly metrics: ProxyMetrics;
  /** every upstream origin the dispatcher source handed out, in order */
  readonly handedOut: string[];
  close(): Promise<void>;
}

/**
 * The inbound HTTP stage with `layers` and the forwarder on a loopback listener, without an
 * engine. Requests go to destination `svc.test:80`; `upstreamFor` names the real origin
 * (`127.0.0.1:port`) of each dispatch, as the mesh's endpoint choice would. `identityOf` gives
 * an accepted connection a verified peer identity the way the mesh tunnel server records it
 * after mTLS (no TLS here: the identity is what the tests are about).
 */
export async function startStageListener(o: {
  layers: (metrics: ProxyMetrics) => Layer[];
  upstreamFor: () => string;
  identityOf?: (s: Socket) => string | undefined;
}): Promise<StageListener> {
  const metrics = new ProxyMetrics();
  const pools = new Pools(testPoolsOptions());
  const handedOut: string[] = [];
  const source = {
    get: (): Pick<Dispatcher, 'dispatch'> => {
      const origin = o.upstreamFor();
      handedOut.push(origin);
      return pools.get(origin);
    },
  };
  const log = createLogger('silent');
  const stage = createHttpStage({
    direction: 'inbound',
    handler: compose(
      o.layers(metrics),
      forwarder({ pools: source, metrics: metrics.inbound, log, draining: () => false }),
    ),
    metrics: metrics.inbound,
    log,
    maxHeaderBytes: 16_384,
    maxHeaders: 100,
    draining: () => false,
  });
  const listener = net.createServer((s: Socket) => {
    const identity = o.identityOf?.(s);
    (s as SocketWithConn)[kConn] = {
      direction: 'inbound',
      destination: { host: 'svc.test', port: 80 },
      destinationKey: 'svc.test:80',
      peerAddress: s.remoteAddress ?? '',
      peerPort: s.remotePort ?? 0,
      // As the engine's stack resolves it at accept (from the tunnel's verified client cert).
      peerIdentity: identity,
      protocol: 'http1',
    };
    if (identity !== undefined) {
      (s as Socket & { [kTunnel]?: TunnelInfo })[kTunnel] = {
        target: { host: '127.0.0.1', port: 80 },
        peerIdentity: identity,
      };
    }
    stage.serve(s);
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  return {
    port: (listener.address() as AddressInfo).port,
    metrics,
    handedOut,
    close: async () => {
      stage.close();
      await new Promise((r) => listener.close(r));
      await pools.close();
    },
  };
}
