import { describe, expect, it } from 'vitest';
import {
  GrpcDeadlineError,
  OverloadError,
  PolicyDeniedError,
  RateLimitedError,
  RequestTimeoutError,
  UpstreamConnectError,
  UpstreamResetError,
} from '../../../proxy/src/errors.js';
import {
  GRPC_STATUS,
  encodeGrpcMessage,
  formatGrpcTimeout,
  grpcErrorFields,
  grpcStatusFor,
  grpcStatusForHttp,
  grpcStatusInFields,
  isEndpointFailure,
  isGrpcContentType,
  parseGrpcPath,
  parseGrpcStatus,
  parseGrpcTimeout,
} from '../../../proxy/src/grpc/protocol.js';

describe('grpc protocol', () => {
  it('knows a gRPC content type and nothing else', () => {
    for (const v of [
      'application/grpc',
      'application/grpc+proto',
      'Application/GRPC+json',
      'application/grpc; x=1',
    ])
      expect(isGrpcContentType(v), v).toBe(true);
    for (const v of [
      undefined,
      '',
      'application/grpc-web',
      'application/grpcx',
      'application/json',
      'application/gr',
    ])
      expect(isGrpcContentType(v), String(v)).toBe(false);
  });

  it('parses /package.Service/Method and refuses other shapes', () => {
    expect(parseGrpcPath('/remora.test.Echo/Unary')).toEqual({
      service: 'remora.test.Echo',
      method: 'Unary',
    });
    for (const p of ['/', '//Unary', '/svc/', '/svc', '/a/b/c', '/svc/m?x=1', 'svc/m', ''])
      expect(parseGrpcPath(p), p).toBeUndefined();
  });

  it('parses grpc-timeout in every unit and refuses malformed values', () => {
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('2M')).toBe(120_000);
    expect(parseGrpcTimeout('3S')).toBe(3_000);
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('1500u')).toBe(1.5);
    expect(parseGrpcTimeout('2000000n')).toBe(2);
    expect(parseGrpcTimeout('99999999S')).toBe(99_999_999_000);
    for (const v of [undefined, '', 'S', '10', '10s', '-1S', '1.5S', '123456789S', ' 1S', '1 S'])
      expect(parseGrpcTimeout(v), String(v)).toBeUndefined();
  });

  it('formats a timeout that parses back to at least the same deadline, in at most 8 digits', () => {
    for (const ms of [0, 0.5, 1, 250, 99_998, 100_000, 5_000_000, 99_999_999, 1e11, 1e15]) {
      const v = formatGrpcTimeout(ms);
      expect(v, String(ms)).toMatch(/^\d{1,8}[HMSmun]$/);
      const back = parseGrpcTimeout(v) as number;
      if (ms < 99_999_999 * 60_000) expect(back, v).toBeGreaterThanOrEqual(ms);
    }
  });

  it('answers the proxy errors with the issue’s status codes', () => {
    expect(grpcStatusFor(new PolicyDeniedError('no rule'))).toBe(GRPC_STATUS.PERMISSION_DENIED);
    expect(grpcStatusFor(new UpstreamConnectError('a:1'))).toBe(GRPC_STATUS.UNAVAILABLE);
    expect(grpcStatusFor(new UpstreamResetError('a:1'))).toBe(GRPC_STATUS.UNAVAILABLE);
    expect(grpcStatusFor(new RequestTimeoutError('a:1', 5))).toBe(GRPC_STATUS.DEADLINE_EXCEEDED);
    expect(grpcStatusFor(new GrpcDeadlineError('a:1', 5))).toBe(GRPC_STATUS.DEADLINE_EXCEEDED);
    expect(grpcStatusFor(new RateLimitedError(1))).toBe(GRPC_STATUS.RESOURCE_EXHAUSTED);
    expect(grpcStatusFor(new OverloadError('draining'))).toBe(GRPC_STATUS.UNAVAILABLE);
  });

  it('maps HTTP answers as gRPC clients do', () => {
    expect(grpcStatusForHttp(403)).toBe(7);
    expect(grpcStatusForHttp(404)).toBe(12);
    expect(grpcStatusForHttp(503)).toBe(14);
    expect(grpcStatusForHttp(418)).toBe(2);
  });

  it('reads grpc-status and refuses what is not a code', () => {
    expect(parseGrpcStatus('0')).toBe(0);
    expect(parseGrpcStatus('16')).toBe(16);
    for (const v of [undefined, '', '17', '-1', 'x', '1.0', '007'])
      expect(parseGrpcStatus(v), String(v)).toBe(-1);
  });

  it('percent-encodes grpc-message', () => {
    expect(encodeGrpcMessage('plain text')).toBe('plain text');
    expect(encodeGrpcMessage('100% ok')).toBe('100%25 ok');
    expect(encodeGrpcMessage('a\nb é')).toBe('a%0Ab %C3%A9');
  });

  it('builds a trailers-only answer: HTTP 200, grpc-status, grpc-message, the error code', () => {
    const f = grpcErrorFields(new PolicyDeniedError('no rule'), 'x-remora-error');
    expect(f).toEqual({
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': 7,
      'grpc-message': 'refused by policy: no rule',
      'x-remora-error': 'RMR_POLICY_DENIED',
    });
  });

  it('finds grpc-status in a raw head (Buffers) or in trailers (strings); -1 when absent or bad', () => {
    const raw = (...f: string[]) => f.map((x) => Buffer.from(x, 'latin1'));
    expect(grpcStatusInFields(raw('content-type', 'application/grpc', 'Grpc-Status', '14'))).toBe(14);
    expect(grpcStatusInFields(['grpc-message', 'x', 'grpc-status', '0'])).toBe(0);
    expect(grpcStatusInFields(raw('content-type', 'application/grpc'))).toBe(-1);
    expect(grpcStatusInFields(['grpc-status', '99'])).toBe(-1);
    expect(grpcStatusInFields(['grpc-status', 'x'])).toBe(-1);
  });

  it('counts UNAVAILABLE, INTERNAL and DATA_LOSS as the endpoint’s failures, nothing else', () => {
    const failures = Object.values(GRPC_STATUS).filter(isEndpointFailure);
    expect(failures.sort((a, b) => a - b)).toEqual([13, 14, 15]);
  });
});
