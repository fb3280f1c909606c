/**
 * gRPC through a mesh hop (issue 12 items 1 and 5): two remora-proxy sidecars (real supervisor
 * + engine processes, explicit mode on loopback) with certificates from a real identity CA. A
 * grpc-js client calls A's outbound listener; A carries the calls over HTTP/2 inside ONE mTLS
 * tunnel to B (ALPN of the tunnel, then the HTTP/2 preface inside it); B's tunnel stack detects
 * the preface and serves the streams with its HTTP/2 stage to the grpc-js server, adding the
 * caller's verified identity.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { ENV } from '../../../proxy/src/contract.js';
import { sample } from '../harness.js';
import { get, startSidecar } from '../telemetry/sidecar.js';
import type { Sidecar } from '../telemetry/sidecar.js';
import { grpc, grpcClient, startGrpcServer, unary } from '../../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../../helpers/grpc.js';

const TD = 'grpc.test';
const ID_A = `spiffe://${TD}/ns/shop/sa/frontend`;
const ID_B = `spiffe://${TD}/ns/shop/sa/reviews`;
const TOKENS = new Map([
  ['token-a-0123456789abcdef', { namespace: 'shop', serviceAccount: 'frontend' }],
  ['token-b-0123456789abcdef', { namespace: 'shop', serviceAccount: 'reviews' }],
]);
const SERVICE = '127.0.0.212:50051';

let dir: string;
let ca: CaServer;
let peer: GrpcPeer;
let a: Sidecar;
let b: Sidecar;
let client: Echo;

function meshEnv(name: string, token: string, workload: string): Record<string, string> {
  const tokenFile = join(dir, `${name}.token`);
  writeFileSync(tokenFile, token);
  return {
    [ENV.caAddress]: `127.0.0.1:${ca.port}`,
    [ENV.caBundleFile]: join(dir, 'bundle.pem'),
    [ENV.tokenFile]: tokenFile,
    [ENV.trustDomain]: TD,
    [ENV.workload]: workload,
    [ENV.serviceAccount]: workload,
    [ENV.podNamespace]: 'shop',
  };
}

function tunnelPort(s: Sidecar): number {
  const port = (s.ports as unknown as Record<string, number | undefined>).tunnel;
  if (port === undefined) throw new Error(`no tunnel port in ${JSON.stringify(s.ports)}`);
  return port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-grpc-mesh-'));
  const root = newRoot(TD);
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
  peer = await startGrpcServer('reviews-0');
  b = await startSidecar(meshEnv('b', 'token-b-0123456789abcdef', 'reviews'));
  const disc = join(dir, 'discovery.json');
  writeFileSync(
    disc,
    JSON.stringify({
      services: {
        [SERVICE]: {
          endpoints: [
            {
              ip: '127.0.0.1',
              port: peer.port,
              meshed: true,
              identity: ID_B,
              tunnelPort: tunnelPort(b),
              service: 'reviews.shop',
              workload: 'reviews',
              namespace: 'shop',
            },
          ],
        },
      },
    }),
  );
  a = await startSidecar({
    ...meshEnv('a', 'token-a-0123456789abcdef', 'frontend'),
    [ENV.discoveryFile]: disc,
    [ENV.outboundTarget]: SERVICE,
  });
  client = grpcClient(a.ports.outbound);
}, 60_000);

afterAll(async () => {
  client?.close();
  for (const s of [a, b]) await s?.stop();
  await peer?.close();
  await ca?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('gRPC through a mesh hop (mTLS tunnel, HTTP/2 inside it)', () => {
  it('unary, streaming both ways and a 3 MiB message; the server learns the caller’s verified identity', async () => {
    // Both sidecars need their certificate first: retry until a call goes through.
    let r = await unary(client, 'hello', { 'x-echo-k': 'v' });
    const end = Date.now() + 15_000;
    while (r.err !== null && Date.now() < end) {
      await new Promise((res) => setTimeout(res, 200));
      r = await unary(client, 'hello', { 'x-echo-k': 'v' });
    }
    expect(r.err, JSON.stringify([...a.logs(), ...b.logs()].slice(-15))).toBeNull();
    expect(r.res?.toString()).toBe('hello');
    expect(r.headers['x-echo-k']).toBe('v');
    expect(r.trailers['x-trailer-k']).toBe('v');
    expect(peer.calls.at(-1)?.metadata['x-remora-peer-identity']).toBe(ID_A);

    const big = Buffer.alloc(3 * 1024 * 1024, 3);
    const rb = await unary(client, big);
    expect(rb.res?.equals(big)).toBe(true);

    const got: Buffer[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = client.spray(
        Buffer.from(JSON.stringify({ count: 100, size: 4096 })),
        new grpc.Metadata(),
        {},
      );
      call.on('data', (x: Buffer) => got.push(x));
      call.on('status', resolve);
      call.on('error', () => undefined);
    });
    expect(status.code).toBe(grpc.status.OK);
    expect(got.length).toBe(100);

    const bidi = client.chat(new grpc.Metadata(), {});
    const back: string[] = [];
    const done = new Promise<void>((resolve) => bidi.on('end', () => resolve()));
    bidi.on('data', (x: Buffer) => {
      back.push(x.toString());
      if (back.length < 3) bidi.write(Buffer.from(`m${back.length}`));
      else bidi.end();
    });
    bidi.write(Buffer.from('m0'));
    await done;
    expect(back).toEqual(['m0', 'm1', 'm2']);

    const failed = await unary(client, 'x', { 'x-status': '9', 'x-message': 'precondition' });
    expect(failed.err?.code).toBe(9);
  }, 60_000);

  it('many calls share one tunnel; both sides count them as gRPC with their status', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => unary(client, `c${i}`)));
    const ma = (await get(`http://127.0.0.1:${a.ports.metrics}/metrics`)).body;
    const mb = (await get(`http://127.0.0.1:${b.ports.metrics}/metrics`)).body;
    // B accepted the calls over the tunnel as one HTTP/2 connection (inbound, from A's identity).
    expect(
      sample(mb, 'remora_tcp_connections_opened_total', {
        direction: 'inbound',
        protocol: 'http2',
        source_identity: ID_A,
      }),
    ).toBe(1);
    expect(
      sample(mb, 'remora_requests_total', {
        direction: 'inbound',
        protocol: 'grpc',
        grpc_status: '9',
        source_identity: ID_A,
      }),
    ).toBe(1);
    expect(
      sample(ma, 'remora_requests_total', {
        direction: 'outbound',
        protocol: 'grpc',
        grpc_status: '0',
        destination_workload: 'reviews',
      }),
    ).toBeGreaterThanOrEqual(20);
  }, 30_000);
});
