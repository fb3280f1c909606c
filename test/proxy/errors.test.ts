import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  GrpcDeadlineError,
  Http2ProtocolError,
  Http1ChunkError,
  Http1Error,
  Http1FramingError,
  Http1HeadTooLargeError,
  Http1IncompleteError,
  Http1SyntaxError,
  Http1TooManyFieldsError,
  Http1UnexpectedDataError,
  ProxyError,
  RemoraError,
} from '../../proxy/src/errors.js';

describe('errors', () => {
  it('ConfigError lists every error and carries a stable code', () => {
    const e = new ConfigError(['REMORA_INBOUND_PORT: not a port: "x"', 'REMORA_LOG_LEVEL: unknown level']);
    expect(e).toBeInstanceOf(RemoraError);
    expect(e.code).toBe('RMR_CONFIG_INVALID');
    expect(e.name).toBe('ConfigError');
    expect(e.message).toContain('REMORA_INBOUND_PORT');
    expect(e.message).toContain('REMORA_LOG_LEVEL');
  });

  // The HTTP/1.1 codec's errors (proxy/src/http1/): name, code, kind by side, reason, message.
  const http1: [Http1Error, string, string, string, string][] = [
    [
      new Http1SyntaxError('request', 'obs_fold', 'obsolete line folding'),
      'Http1SyntaxError',
      'RMR_HTTP1_SYNTAX',
      'client',
      'obsolete line folding',
    ],
    [
      new Http1FramingError('request', 'multiple_content_length', 'more than one Content-Length'),
      'Http1FramingError',
      'RMR_HTTP1_FRAMING',
      'client',
      'more than one Content-Length',
    ],
    [
      new Http1ChunkError('response', 'chunk_size', 'chunk size is not a hex number'),
      'Http1ChunkError',
      'RMR_HTTP1_CHUNK',
      'upstream',
      'chunk size',
    ],
    [
      new Http1HeadTooLargeError('request', 16384),
      'Http1HeadTooLargeError',
      'RMR_HTTP1_HEAD_TOO_LARGE',
      'client',
      '16384 bytes',
    ],
    [
      new Http1TooManyFieldsError('response', 100),
      'Http1TooManyFieldsError',
      'RMR_HTTP1_TOO_MANY_FIELDS',
      'upstream',
      'more than 100',
    ],
    [
      new Http1IncompleteError('response', 'body'),
      'Http1IncompleteError',
      'RMR_HTTP1_INCOMPLETE',
      'upstream',
      'middle of the body',
    ],
    [
      new Http1UnexpectedDataError('response', 'bytes with no request'),
      'Http1UnexpectedDataError',
      'RMR_HTTP1_UNEXPECTED_DATA',
      'upstream',
      'bytes with no request',
    ],
  ];
  it.each(http1)('%o: name, code, kind, message', (e, name, code, kind, text) => {
    expect(e).toBeInstanceOf(ProxyError);
    expect(e).toBeInstanceOf(Http1Error);
    expect(e.name).toBe(name);
    expect(e.code).toBe(code);
    expect(e.kind).toBe(kind);
    expect(e.message).toMatch(new RegExp(`^malformed HTTP/1\\.1 (request|response): `));
    expect(e.message).toContain(text);
    expect(e.reason).toMatch(/^[a-z0-9_]+$/);
  });

  it('no two error classes share a code', () => {
    expect(new Set(http1.map(([, , code]) => code)).size).toBe(http1.length);
  });

  // HTTP/2 and gRPC (docs/grpc.md): name, code, kind, message.
  it.each([
    [
      new GrpcDeadlineError('127.0.0.1:50051', 150),
      'GrpcDeadlineError',
      'RMR_GRPC_DEADLINE',
      'timeout',
      'grpc-timeout of 150 ms',
    ],
    [
      new Http2ProtocolError('too many resets'),
      'Http2ProtocolError',
      'RMR_HTTP2_PROTOCOL',
      'client',
      'HTTP/2 protocol error: too many resets',
    ],
  ] as const)('%o: name, code, kind, message', (e, name, code, kind, text) => {
    expect(e).toBeInstanceOf(ProxyError);
    expect(e.name).toBe(name);
    expect(e.code).toBe(code);
    expect(e.kind).toBe(kind);
    expect(e.message).toContain(text);
  });
});
