import { describe, expect, it } from 'vitest';
import type { ProxyError } from '../../proxy/src/errors.js';
import {
  CircuitOpenError,
  NoTargetError,
  OverloadError,
  IdleTimeoutError,
  PolicyDeniedError,
  RateLimitedError,
  RemoraError,
  RequestTimeoutError,
  TooManyHeadersError,
  UpstreamConnectError,
  UpstreamProtocolError,
  UpstreamResetError,
  UpstreamTimeoutError,
} from '../../proxy/src/errors.js';
import { rescue } from '../../proxy/src/rescue.js';

describe('error table (name, code, message, status)', () => {
  const table: [ProxyError, string, string, RegExp, number][] = [
    [
      new UpstreamConnectError('a:1'),
      'UpstreamConnectError',
      'RMR_UPSTREAM_CONNECT',
      /cannot connect to upstream a:1/,
      503,
    ],
    [new UpstreamResetError('a:1'), 'UpstreamResetError', 'RMR_UPSTREAM_RESET', /reset/, 502],
    [new UpstreamTimeoutError('a:1'), 'UpstreamTimeoutError', 'RMR_UPSTREAM_TIMEOUT', /timed out/, 504],
    [
      new UpstreamProtocolError('a:1'),
      'UpstreamProtocolError',
      'RMR_UPSTREAM_PROTOCOL',
      /invalid response/,
      502,
    ],
    [new NoTargetError('inbound'), 'NoTargetError', 'RMR_NO_TARGET', /no inbound target/, 503],
    [new PolicyDeniedError('strict'), 'PolicyDeniedError', 'RMR_POLICY_DENIED', /refused by policy/, 403],
    [new OverloadError('draining'), 'OverloadError', 'RMR_OVERLOADED', /overloaded/, 503],
    [new TooManyHeadersError(100), 'TooManyHeadersError', 'RMR_TOO_MANY_HEADERS', /more than 100/, 431],
    [
      new RequestTimeoutError('a:1', 2000),
      'RequestTimeoutError',
      'RMR_REQUEST_TIMEOUT',
      /did not complete within 2000 ms/,
      504,
    ],
    [new IdleTimeoutError('a:1', 500), 'IdleTimeoutError', 'RMR_IDLE_TIMEOUT', /idle for 500 ms/, 504],
    [new RateLimitedError(2), 'RateLimitedError', 'RMR_RATE_LIMITED', /retry after 2 s/, 429],
    [
      new CircuitOpenError('a:1', 'max_requests'),
      'CircuitOpenError',
      'RMR_CIRCUIT_OPEN',
      /circuit open for upstream a:1: max_requests/,
      503,
    ],
  ];
  it.each(table)('%s', (err, name, code, message, status) => {
    expect(err).toBeInstanceOf(RemoraError);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(rescue(err, 'a:1').status).toBe(status);
  });

  it('codes are never reused', () => {
    const codes = table.map((t) => t[0].code);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it.each([
    [Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 503, 'RMR_UPSTREAM_CONNECT'],
    [Object.assign(new Error('x'), { code: 'ECONNRESET' }), 502, 'RMR_UPSTREAM_RESET'],
    [Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }), 502, 'RMR_UPSTREAM_RESET'],
    [Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), 504, 'RMR_UPSTREAM_TIMEOUT'],
    [new Error('x', { cause: { code: 'ECONNREFUSED' } }), 503, 'RMR_UPSTREAM_CONNECT'],
    [new Error('weird'), 502, 'RMR_UPSTREAM_PROTOCOL'],
  ])('classifies foreign error %#', (err, status, code) => {
    expect(rescue(err, 't').status).toBe(status);
    expect(rescue(err, 't').code).toBe(code);
  });
});
