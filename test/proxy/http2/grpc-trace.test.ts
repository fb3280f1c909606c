/**
 * gRPC spans (issue 12 item 2): a grpc-js call through an engine whose inbound stack carries the
 * telemetry layer, exported over OTLP/HTTP to a real receiver. The SERVER span follows the OTel
 * RPC conventions: named `package.Service/Method`, `rpc.system`, `rpc.service`, `rpc.method`,
 * `rpc.grpc.status_code`; a call that fails with a status HTTP 200 carried is still an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { parseTelemetryConfig } from '../../../proxy/src/telemetry/config.js';
import type { TelemetryInput } from '../../../proxy/src/telemetry/config.js';
import { telemetryLayer } from '../../../proxy/src/telemetry/layer.js';
import { RPC_ATTR, Tracing } from '../../../proxy/src/telemetry/tracing.js';
import { startEngine } from '../harness.js';
import type { TestEngine } from '../harness.js';
import { SPAN_KIND, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import type { OtlpReceiver } from '../../helpers/otlp-receiver.js';
import { grpcClient, startGrpcServer, unary } from '../../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../../helpers/grpc.js';

const BASE: TelemetryInput = {
  accessLog: false,
  accessLogSample: 1,
  traceSampling: 1,
  podName: 'orders-1',
  podNamespace: 'shop',
  serviceAccount: 'orders',
  workload: 'orders',
  otel: {},
};

let rx: OtlpReceiver;
let tracing: Tracing;
let peer: GrpcPeer;
let px: TestEngine;
let client: Echo;

beforeAll(async () => {
  rx = await startOtlpReceiver();
  const { config } = parseTelemetryConfig({ ...BASE, otel: { endpoint: rx.url, bspScheduleDelay: '50' } });
  if (config.tracing === undefined) throw new Error('tracing off');
  tracing = new Tracing(config.tracing, config.workload);
  peer = await startGrpcServer();
  px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${peer.port}` }, undefined, {
    layers: { inbound: [telemetryLayer('inbound', { tracing, accessLog: undefined })] },
  });
  client = grpcClient(px.port('inbound'));
});

afterAll(async () => {
  client?.close();
  await px?.engine.close();
  await tracing?.shutdown();
  await rx?.close();
  await peer?.close();
});

describe('gRPC spans', () => {
  it('a call is a SERVER span with the RPC attributes and its status', async () => {
    expect((await unary(client, 'hi')).err).toBeNull();
    expect((await unary(client, 'hi', { 'x-status': '13', 'x-message': 'boom' })).err?.code).toBe(13);
    await tracing.forceFlush();
    const spans = await rx.waitFor((s) => s.filter((x) => x.name === 'remora.test.Echo/Unary').length >= 2);
    const calls = spans.filter((x) => x.name === 'remora.test.Echo/Unary');
    const ok = calls.find((x) => x.attributes[RPC_ATTR.grpcStatusCode] === 0);
    const failed = calls.find((x) => x.attributes[RPC_ATTR.grpcStatusCode] === 13);
    expect(ok?.kind).toBe(SPAN_KIND.server);
    expect(ok?.attributes).toMatchObject({
      [RPC_ATTR.system]: 'grpc',
      [RPC_ATTR.service]: 'remora.test.Echo',
      [RPC_ATTR.method]: 'Unary',
      'http.response.status_code': 200,
      'network.protocol.version': '2',
    });
    expect(ok?.statusCode).not.toBe(2);
    // INTERNAL is a server error in the RPC conventions, though HTTP said 200.
    expect(failed?.statusCode).toBe(2);
  });
});
