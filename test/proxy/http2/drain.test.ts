/**
 * Drain with HTTP/2 (issue 12 item 1): the engine sends GOAWAY at once; a call in flight on the
 * connection finishes (every message of a server stream, status OK); no new stream starts on
 * it; the engine stops once the call is done.
 */
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { startEngine } from '../harness.js';
import type { TestEngine } from '../harness.js';
import { grpc, grpcClient, startGrpcServer } from '../../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../../helpers/grpc.js';

let peer: GrpcPeer;
let px: TestEngine;
let client: Echo;

beforeAll(async () => {
  peer = await startGrpcServer();
  px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${peer.port}`, [ENV.drainSeconds]: '20' });
  client = grpcClient(px.port('inbound'));
});

afterAll(async () => {
  client?.close();
  await px?.engine.close();
  await peer?.close();
});

describe('HTTP/2 drain', () => {
  it('GOAWAY on drain: the stream in flight completes, the connection takes no new stream', async () => {
    const raw = http2.connect(`http://127.0.0.1:${px.port('inbound')}`);
    raw.on('error', () => undefined);
    await new Promise<void>((r) => raw.once('connect', () => r()));
    const goaway = new Promise<number>((r) => raw.once('goaway', (code: number) => r(code)));
    // A slow server stream: 40 messages, the server pausing between them (backpressure-free).
    const got: Buffer[] = [];
    let drained: Promise<void> | undefined;
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = client.spray(
        Buffer.from(JSON.stringify({ count: 40, size: 64 * 1024 })),
        new grpc.Metadata(),
        {},
      );
      call.on('data', (b: Buffer) => {
        got.push(b);
        if (got.length === 1) drained = px.engine.drain();
      });
      call.on('status', resolve);
      call.on('error', () => undefined);
    });
    expect(status.code).toBe(grpc.status.OK);
    expect(got.length).toBe(40);
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    // The proxy closes the connection that got GOAWAY once it has no stream left.
    await new Promise<void>((r) => (raw.closed ? r() : raw.once('close', () => r())));
    await drained;
    expect(px.engine.activeConnections()).toBe(0);
  }, 30_000);
});
