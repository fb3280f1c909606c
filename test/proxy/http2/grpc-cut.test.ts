/**
 * A gRPC call the upstream cuts after its head (docs/grpc.md, "A call cut after its head"):
 * grpc-js client → a real engine's inbound listener → the HTTP/2 upstream client → a
 * node:http2 server playing a gRPC server that sends the response head and then resets the
 * stream, or destroys its whole session (what a grpc-js server cannot be made to do on
 * purpose). The server cuts only once the client has seen the head, so the cut is always
 * after it. The client must get UNAVAILABLE with the proxy's `x-remora-error` in the trailers,
 * never the bare end grpc-js reports as INTERNAL "Received RST_STREAM with code 0".
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import type { Engine } from '../../../proxy/src/engine.js';
import { startEngine } from '../harness.js';
import { grpc, grpcClient } from '../../helpers/grpc.js';
import type { Echo } from '../../helpers/grpc.js';

type Cut = 'reset' | 'session';

let server: http2.Http2Server;
let engine: Engine;
let client: Echo;
/** how the server cuts the next call, and the stream waiting for the client to see its head */
let mode: Cut = 'reset';
let waiting: http2.ServerHttp2Stream | undefined;

beforeAll(async () => {
  server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-head': 'sent' });
    waiting = stream;
  });
  server.on('session', (s) => s.on('error', () => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const px = await startEngine({
    [ENV.inboundTarget]: `127.0.0.1:${(server.address() as AddressInfo).port}`,
  });
  engine = px.engine;
  client = grpcClient(px.port('inbound'));
});

afterAll(async () => {
  client?.close();
  await engine?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
});

interface Outcome {
  head: string | undefined;
  code: number | undefined;
  details: string | undefined;
  proxyError: string | undefined;
}

/** One unary call; the server cuts it (`how`) once the client has the head. */
function cutCall(how: Cut): Promise<Outcome> {
  mode = how;
  return new Promise((resolve) => {
    let head: string | undefined;
    const call = client.unary(Buffer.from('x'), new grpc.Metadata(), {}, (err) => {
      resolve({
        head,
        code: err?.code,
        details: err?.details,
        proxyError: err?.metadata.get('x-remora-error')[0] as string | undefined,
      });
    });
    call.on('metadata', (md: grpc.Metadata) => {
      head = md.get('x-head')[0] as string | undefined;
      const s = waiting;
      waiting = undefined;
      if (s === undefined) return;
      if (mode === 'reset') s.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else s.session?.destroy();
    });
  });
}

describe('a gRPC call cut by the upstream after its head', () => {
  it('an upstream RST_STREAM: UNAVAILABLE (14) with RMR_UPSTREAM_RESET in the trailers', async () => {
    const r = await cutCall('reset');
    expect(r.head).toBe('sent');
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.proxyError).toBe('RMR_UPSTREAM_RESET');
    expect(r.details).not.toMatch(/RST_STREAM/);
  });

  it('the upstream session destroyed: UNAVAILABLE (14) with the proxy code, then the next call works', async () => {
    const r = await cutCall('session');
    expect(r.head).toBe('sent');
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.proxyError).toMatch(/^RMR_UPSTREAM_/);
    expect(r.details).not.toMatch(/RST_STREAM/);
    // a new session to the upstream for the next call
    const again = await cutCall('reset');
    expect(again.head).toBe('sent');
    expect(again.proxyError).toBe('RMR_UPSTREAM_RESET');
  });
});
