/**
 * gRPC spans (issue 12 item 2): a grpc-js call through an engine whose inbound stack carries the
 * telemetry layer, exported over OTLP/HTTP to a real receiver. The SERVER span follows the OTel
 * RPC conventions: named `package.Service/Method`, `rpc.system`, `rpc.service`, `rpc.method`,
 * `rpc.grpc.status_code`; a call that fails with a status HTTP 200 carried is still an error.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { parseTelemetryConfig } from '../../../proxy/src/telemetry/config.js';
import type { TelemetryInput } from '../../../proxy/src/telemetry/config.js';
import { AccessLog } from '../../../proxy/src/telemetry/accesslog.js';
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
const access: Record<string, unknown>[] = [];

beforeAll(async () => {
  rx = await startOtlpReceiver();
  const { config } = parseTelemetryConfig({ ...BASE, otel: { endpoint: rx.url, bspScheduleDelay: '50' } });
  if (config.tracing === undefined) throw new Error('tracing off');
  tracing = new Tracing(config.tracing, config.workload);
  peer = await startGrpcServer();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l !== '') access.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const accessLog = new AccessLog(pino({ level: 'info' }, sink), { enabled: true, sample: 1 });
  px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${peer.port}` }, undefined, {
    layers: { inbound: [telemetryLayer('inbound', { tracing, accessLog })] },
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

  it('the access log line of a call names HTTP/2 and its gRPC status', () => {
    const calls = access.filter((l) => l.path === '/remora.test.Echo/Unary');
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.map((l) => l.grpc_status).sort()).toEqual(expect.arrayContaining([0, 13]));
    expect(calls.every((l) => l.http_version === '2' && l.status === 200 && l.type === 'http')).toBe(true);
  });
});
