import { describe, expect, it } from 'vitest';
import { parseTelemetryConfig, TRACING_DEFAULTS } from '../../../proxy/src/telemetry/config.js';
import type { TelemetryInput } from '../../../proxy/src/telemetry/config.js';

const BASE: TelemetryInput = {
  accessLog: true,
  accessLogSample: 1,
  traceSampling: 1,
  podName: undefined,
  podNamespace: undefined,
  serviceAccount: undefined,
  workload: undefined,
  otel: {},
};

const parse = (otel: TelemetryInput['otel'], extra: Partial<TelemetryInput> = {}) =>
  parseTelemetryConfig({ ...BASE, ...extra, otel });

describe('parseTelemetryConfig', () => {
  it('tracing is off without an endpoint, so no tracing layer is installed', () => {
    const { config, errors } = parse({});
    expect(errors).toEqual([]);
    expect(config.tracing).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: /v1/traces is appended', () => {
    expect(parse({ endpoint: 'http://collector:4318' }).config.tracing?.url).toBe(
      'http://collector:4318/v1/traces',
    );
    expect(parse({ endpoint: 'http://collector:4318/base/' }).config.tracing?.url).toBe(
      'http://collector:4318/base/v1/traces',
    );
  });

  it('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is and wins', () => {
    const { config } = parse({ endpoint: 'http://a:4318', tracesEndpoint: 'http://b:4318/custom' });
    expect(config.tracing?.url).toBe('http://b:4318/custom');
  });

  it('defaults: spec BSP values, parent-based sampling at REMORA_TRACE_SAMPLING', () => {
    const t = parse({ endpoint: 'http://c:4318' }, { traceSampling: 0.01 }).config.tracing;
    expect(t).toMatchObject({
      maxQueueSize: TRACING_DEFAULTS.maxQueueSize,
      maxExportBatchSize: TRACING_DEFAULTS.maxExportBatchSize,
      scheduleDelayMs: TRACING_DEFAULTS.scheduleDelayMs,
      exportTimeoutMs: TRACING_DEFAULTS.exportTimeoutMs,
      sampler: { parentBased: true, ratio: 0.01 },
      serviceName: 'remora-proxy',
    });
  });

  it('OTEL_TRACES_SAMPLER and its argument', () => {
    expect(
      parse({ endpoint: 'http://c', sampler: 'traceidratio', samplerArg: '0.25' }).config.tracing?.sampler,
    ).toEqual({
      parentBased: false,
      ratio: 0.25,
    });
    expect(
      parse({ endpoint: 'http://c', sampler: 'parentbased_always_off' }).config.tracing?.sampler,
    ).toEqual({
      parentBased: true,
      ratio: 0,
    });
  });

  it('the BSP and service variables are honoured; a batch larger than the queue is clamped', () => {
    const t = parse({
      endpoint: 'http://c',
      bspMaxQueueSize: '64',
      bspMaxExportBatchSize: '128',
      bspScheduleDelay: '100',
      bspExportTimeout: '2000',
      serviceName: 'svc',
      headers: 'x-api-key=a%20b,tenant=t1',
      resourceAttributes: 'deployment.environment=prod',
    }).config.tracing;
    expect(t).toMatchObject({
      maxQueueSize: 64,
      maxExportBatchSize: 64,
      scheduleDelayMs: 100,
      exportTimeoutMs: 2000,
      serviceName: 'svc',
      headers: { 'x-api-key': 'a b', tenant: 't1' },
      resourceAttributes: { 'deployment.environment': 'prod' },
    });
  });

  it('OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn tracing off', () => {
    expect(parse({ endpoint: 'http://c', sdkDisabled: 'true' }).config.tracing).toBeUndefined();
    expect(parse({ endpoint: 'http://c', tracesExporter: 'none' }).config.tracing).toBeUndefined();
  });

  it('the workload identity becomes a SPIFFE id and the default service name', () => {
    const { config } = parse(
      { endpoint: 'http://c' },
      { podNamespace: 'shop', serviceAccount: 'cart', workload: 'cart', trustDomain: 'example.org' },
    );
    expect(config.workload.identity).toBe('spiffe://example.org/ns/shop/sa/cart');
    expect(config.tracing?.serviceName).toBe('cart');
  });

  it('access log: off, or sample 0, installs nothing', () => {
    expect(parse({}, { accessLog: false }).config.accessLog.enabled).toBe(false);
    expect(parse({}, { accessLogSample: 0 }).config.accessLog.enabled).toBe(false);
    expect(parse({}, { accessLogSample: 0.5 }).config.accessLog).toEqual({ enabled: true, sample: 0.5 });
  });

  it('bad input: every error is listed, naming the variable and the value', () => {
    const { config, errors } = parse({
      endpoint: 'collector:4318',
      protocol: 'grpc',
      sampler: 'sometimes',
      bspMaxQueueSize: '-1',
      bspExportTimeout: '1.5s',
      headers: '=novalue',
    });
    expect(config.tracing).toBeUndefined();
    expect(errors).toEqual([
      'OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL, got "collector:4318"',
      'OTEL_EXPORTER_OTLP_PROTOCOL: only "http/protobuf" is supported, got "grpc"',
      expect.stringContaining('OTEL_TRACES_SAMPLER: unsupported sampler "sometimes"'),
      'OTEL_BSP_MAX_QUEUE_SIZE: expected a positive integer, got "-1"',
      'OTEL_BSP_EXPORT_TIMEOUT: expected a positive integer, got "1.5s"',
      'OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs separated by commas, got "=novalue"',
    ]);
    expect(parse({ endpoint: 'not a url' }).errors).toEqual([
      'OTEL_EXPORTER_OTLP_ENDPOINT: not a URL: "not a url"',
    ]);
    expect(parse({ endpoint: 'http://c', sampler: 'traceidratio', samplerArg: '2' }).errors).toEqual([
      'OTEL_TRACES_SAMPLER_ARG: expected a fraction 0..1, got "2"',
    ]);
  });
});
