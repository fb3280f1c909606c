/**
 * gRPC through a real engine (docs/grpc.md): grpc-js client → inbound listener (h2c prior
 * knowledge, detected) → the HTTP/2 stage and the inbound layers (authorization, routes with
 * timeouts, under a real PolicyHolder) → the HTTP/2 upstream client → a grpc-js server.
 */
import http2 from 'node:http2';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { Engine } from '../../../proxy/src/engine.js';
import { createLogger } from '../../../proxy/src/log.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { PolicyHolder } from '../../../proxy/src/policy/holder.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { sample, scrape, until } from '../harness.js';
import { closedPort } from '../policy/upstreams.js';
import {
  chat,
  collect,
  echoesIntact,
  grpc,
  grpcClient,
  spray,
  startGrpcServer,
  statusProblems,
  unary,
} from '../../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../../helpers/grpc.js';

let peer: GrpcPeer;
let engine: Engine;
let client: Echo;
const logs: Record<string, unknown>[] = [];

function policyText(port: number): string {
  return `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: app
    inbound:
      - ports: [${port}]
        authorization:
          default: deny
          rules:
            - { name: no-forbidden, action: deny, request: { headers: [{ name: x-forbidden, present: true }] } }
            - { name: lan, action: allow, source: { cidrs: [127.0.0.0/8] } }
        routes:
          - match: { paths: [{ prefix: /remora.test.Echo/Unary }], headers: [{ name: x-route, exact: slow }] }
            timeoutMs: 150
`;
}

async function startProxy(
  target: string,
  policy?: string,
): Promise<{ engine: Engine; port: (n: 'inbound' | 'metrics') => number }> {
  const config = parseConfig({
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.logLevel]: 'info',
    [ENV.inboundTarget]: target,
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
  let holder: PolicyHolder | undefined;
  if (policy !== undefined) {
    holder = new PolicyHolder({
      self: { namespace: 'shop', workload: 'orders' },
      metrics: PolicyMetrics.of(metrics.registry),
      log,
      source: 'test',
    });
    holder.load(policy, 'test');
  }
  const e = new Engine({ config, log, metrics, ...(holder ? { policy: holder } : {}) });
  await e.start();
  return {
    engine: e,
    port: (n) => {
      const a = e.addresses()[n];
      if (a === undefined) throw new Error(`no ${n} listener`);
      return a.port;
    },
  };
}

let port: (n: 'inbound' | 'metrics') => number;

beforeAll(async () => {
  peer = await startGrpcServer('upstream-a');
  const px = await startProxy(`127.0.0.1:${peer.port}`, policyText(peer.port));
  engine = px.engine;
  port = px.port;
  client = grpcClient(port('inbound'));
});

afterAll(async () => {
  client?.close();
  await engine?.close();
  await peer?.close();
});

function meta(md: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) m.set(k, v);
  return m;
}

describe('gRPC through the proxy (h2c prior knowledge, inbound)', () => {
  it('unary: the message, metadata both ways, trailers', async () => {
    const r = await unary(client, 'hello', { 'x-echo-colour': 'blue' });
    expect(r.err).toBeNull();
    expect(r.res?.toString()).toBe('hello');
    expect(r.headers['x-echo-colour']).toBe('blue');
    expect(r.headers['x-server-id']).toBe('upstream-a');
    expect(r.trailers['x-trailer-colour']).toBe('blue');
    expect(peer.calls.at(-1)?.metadata['x-echo-colour']).toBe('blue');
  });

  it('client streaming: every message arrives', async () => {
    expect(await collect(client, 50, 1000)).toEqual({ count: 50, bytes: 50_000 });
  });

  it('server streaming: every message arrives, in order, then OK', async () => {
    const r = await spray(client, 200, 2048);
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.received).toBe(200);
    expect(r.inOrder).toBe(true);
  });

  it('bidi: each message comes back as it goes', async () => {
    expect(await chat(client, 5)).toEqual(['ping0', 'ping1', 'ping2', 'ping3', 'ping4']);
  });

  it('a 3 MiB message each way', async () => {
    expect(await echoesIntact(client, 3 * 1024 * 1024)).toBe(true);
  });

  it('every status code 1..16 is carried with its message and trailers', async () => {
    expect(await statusProblems(client)).toEqual([]);
  });

  it('deadlines: a call past its deadline ends DEADLINE_EXCEEDED and the server sees the cancel', async () => {
    const before = peer.calls.length;
    const r = await unary(client, 'x', { 'x-delay-ms': '2000' }, { deadline: Date.now() + 150 });
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await until(() => peer.calls[before]?.cancelled === true, 'the upstream call to be cancelled');
  });

  it('grpc-timeout is honoured by the proxy itself: DEADLINE_EXCEEDED with RMR_GRPC_DEADLINE', async () => {
    // A raw HTTP/2 client with no deadline of its own: only the proxy can end it.
    const session = http2.connect(`http://127.0.0.1:${port('inbound')}`);
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), Buffer.from('x')]);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/remora.test.Echo/Unary',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': '150m',
      'x-delay-ms': '3000',
    });
    stream.end(frame);
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on('response', resolve));
    session.close();
    expect(headers[':status']).toBe(200);
    expect(headers['grpc-status']).toBe('4');
    // The proxy also sends the call's remaining time upstream (the next test), so on a loaded
    // machine the grpc-js server's own deadline can fire first: then its DEADLINE_EXCEEDED is
    // what the client gets, relayed (status 4, where the server would answer 0 after its 3 s);
    // when the proxy's timer wins, the answer is its own.
    if (headers['x-remora-error'] !== undefined) expect(headers['x-remora-error']).toBe('RMR_GRPC_DEADLINE');
  });

  it('grpc-timeout is propagated: the server gets the call’s deadline', async () => {
    const before = peer.calls.length;
    const deadline = Date.now() + 10_000;
    expect((await unary(client, 'x', {}, { deadline })).err).toBeNull();
    const got = peer.calls[before]?.deadline as number;
    expect(Number.isFinite(got)).toBe(true);
    // gRPC deadlines travel as relative timeouts: the server's is its receipt time plus what
    // the proxy said was left, so it is bounded by the 10 s counted from after the call.
    expect(got).toBeLessThanOrEqual(Date.now() + 10_000);
    expect(got).toBeGreaterThan(deadline - 10_000);
    // Without a deadline of its own a call has none upstream either (no route timeout applies).
    expect((await unary(client, 'y')).err).toBeNull();
    expect(peer.calls.at(-1)?.deadline).toBe(Infinity);
  });

  it('a route timeout becomes the upstream deadline of a call that has none', async () => {
    const before = peer.calls.length;
    const sent = Date.now();
    expect((await unary(client, 'x', { 'x-route': 'slow' })).err).toBeNull();
    const got = peer.calls[before]?.deadline as number;
    expect(Number.isFinite(got)).toBe(true);
    // the route's timeoutMs is 150: the server's deadline is no later than that after sending
    expect(got).toBeLessThanOrEqual(Date.now() + 150);
    expect(got).toBeGreaterThan(sent);
  });

  it('a route timeout answers DEADLINE_EXCEEDED (4) in gRPC terms', async () => {
    const r = await unary(client, 'x', { 'x-delay-ms': '3000', 'x-route': 'slow' });
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(r.err?.metadata.get('x-remora-error')[0]).toBe('RMR_REQUEST_TIMEOUT');
  });

  it('a policy denial is PERMISSION_DENIED (7), HTTP 200 trailers-only, and never reaches the server', async () => {
    const before = peer.calls.length;
    const r = await unary(client, 'x', { 'x-forbidden': 'yes' });
    expect(r.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.err?.details).toContain('refused by policy: app/no-forbidden');
    expect(r.err?.metadata.get('x-remora-error')[0]).toBe('RMR_POLICY_DENIED');
    expect(peer.calls.length).toBe(before);
  });

  it('cancellation: the client cancels, the upstream call is cancelled', async () => {
    const before = peer.calls.length;
    const m = meta({ 'x-delay-ms': '5000' });
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const call = client.unary(Buffer.from('x'), m, {}, (e) => resolve(e as grpc.ServiceError));
      void until(() => peer.calls.length > before, 'the call upstream').then(() => call.cancel());
    });
    expect(err.code).toBe(grpc.status.CANCELLED);
    await until(() => peer.calls[before]?.cancelled === true, 'the upstream call to be cancelled');
  });

  it('counts calls as protocol="grpc" with grpc_status, and HTTP/2 connections', async () => {
    const text = await scrape(port('metrics'));
    const ok = sample(text, 'remora_requests_total', {
      direction: 'inbound',
      protocol: 'grpc',
      grpc_status: '0',
      status_code: '200',
    });
    expect(ok).toBeGreaterThanOrEqual(5);
    // 7: the one the server chose and the policy denial
    expect(sample(text, 'remora_requests_total', { protocol: 'grpc', grpc_status: '7' })).toBe(2);
    expect(sample(text, 'remora_requests_total', { protocol: 'grpc', grpc_status: '13' })).toBe(1);
    expect(
      sample(text, 'remora_tcp_connections_opened_total', { direction: 'inbound', protocol: 'http2' }),
    ).toBeGreaterThanOrEqual(1);
  });
});

describe('gRPC to an unreachable upstream', () => {
  it('answers UNAVAILABLE (14) with RMR_UPSTREAM_CONNECT, HTTP 200 trailers-only', async () => {
    const px = await startProxy(`127.0.0.1:${await closedPort()}`);
    const c = grpcClient(px.port('inbound'));
    try {
      const r = await unary(c, 'x');
      expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(r.err?.metadata.get('x-remora-error')[0]).toBe('RMR_UPSTREAM_CONNECT');
    } finally {
      c.close();
      await px.engine.close();
    }
  });
});
