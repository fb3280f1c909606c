/**
 * Per-call load balancing of gRPC (issue 12 item 4): ONE grpc-js client connection to the
 * outbound listener, whose destination is a service that static discovery maps to three
 * grpc-js servers. The calls of that one connection spread over all three (power of two
 * choices per request), where an opaque relay would pin them all to one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample, scrape } from '../harness.js';
import { TestPolicy, startMeshProxy } from '../policy/upstreams.js';
import type { MeshProxy } from '../policy/upstreams.js';
import { grpcClient, startGrpcServer, unary } from '../../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../../helpers/grpc.js';

/** a ClusterIP-like address that only discovery knows */
const SERVICE = '127.0.0.211:50051';
let peers: GrpcPeer[];
let px: MeshProxy;
let client: Echo;

beforeAll(async () => {
  peers = await Promise.all(['pod-a', 'pod-b', 'pod-c'].map((id) => startGrpcServer(id)));
  px = await startMeshProxy(
    SERVICE,
    peers.map((p) => p.port),
    new TestPolicy(),
  );
  client = grpcClient(px.outboundPort);
});

afterAll(async () => {
  client?.close();
  await px?.close();
  await Promise.all(peers.map((p) => p.close()));
});

describe('gRPC per-call load balancing', () => {
  it('spreads the calls of one client connection over the three endpoints', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const r = await unary(client, `call ${i}`);
      expect(r.err).toBeNull();
      const id = r.headers['x-server-id'] as string;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    // 60 calls, three endpoints: each took some (the chance one is never chosen is ~1e-10).
    expect([...seen.keys()].sort()).toEqual(['pod-a', 'pod-b', 'pod-c']);
    expect(peers.every((p) => p.calls.length > 0)).toBe(true);
    // One client connection in: the spread is per call, not per connection.
    const text = await scrape(px.metricsPort);
    expect(
      sample(text, 'remora_tcp_connections_opened_total', { direction: 'outbound', protocol: 'http2' }),
    ).toBe(1);
    expect(
      sample(text, 'remora_requests_total', { direction: 'outbound', protocol: 'grpc', grpc_status: '0' }),
    ).toBe(60);
  });
});
