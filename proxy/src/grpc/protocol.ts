/**
 * gRPC over HTTP/2 as the proxy needs to see it (docs/grpc.md): which requests are gRPC calls
 * (`content-type: application/grpc*`), the service and method a `:path` names, `grpc-timeout`
 * in and out, and the answer the proxy gives itself for a call it fails (HTTP 200,
 * trailers-only, `grpc-status` and `grpc-message`: DESIGN §8). Pure functions, no I/O.
 */
import type { ProxyError } from '../errors.js';
import { GrpcDeadlineError, PolicyDeniedError, RateLimitedError, RequestTimeoutError } from '../errors.js';

/** The gRPC status codes (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const);

/** The largest gRPC status code; a label value above it is counted as `unknown`. */
export const MAX_GRPC_STATUS = 16;

/** `application/grpc`, `application/grpc+proto`, `application/grpc; charset=...` (any case). */
export function isGrpcContentType(v: string | undefined): boolean {
  if (v === undefined || v.length < 16) return false;
  if (v.slice(0, 16).toLowerCase() !== 'application/grpc') return false;
  if (v.length === 16) return true;
  const c = v.charCodeAt(16);
  return c === 0x2b || c === 0x3b; // '+' or ';'
}

export interface GrpcMethod {
  /** `package.Service` */
  readonly service: string;
  readonly method: string;
}

/**
 * The service and method of a gRPC `:path` (`/package.Service/Method`), or undefined when the
 * path is not of that shape (a query, more segments, an empty part).
 */
export function parseGrpcPath(path: string): GrpcMethod | undefined {
  if (path.charCodeAt(0) !== 0x2f) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash <= 1 || slash === path.length - 1) return undefined;
  if (path.indexOf('/', slash + 1) !== -1 || path.indexOf('?') !== -1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000001,
});

/**
 * `grpc-timeout` (`TimeoutValue TimeoutUnit`: 1 to 8 digits and one of H M S m u n) in
 * milliseconds, or undefined when the value is not of that shape (the call then has no
 * deadline from the header; the spec does not let a proxy invent one).
 */
export function parseGrpcTimeout(v: string | undefined): number | undefined {
  if (v === undefined || v.length < 2 || v.length > 9) return undefined;
  const unit = UNIT_MS[v.charAt(v.length - 1)];
  if (unit === undefined) return undefined;
  let n = 0;
  for (let i = 0; i < v.length - 1; i++) {
    const c = v.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return undefined;
    n = n * 10 + c;
  }
  return n * unit;
}

/**
 * Milliseconds as a `grpc-timeout` value: the finest unit that fits in 8 digits (so what the
 * upstream reads is never later than the deadline by more than that unit's rounding).
 */
export function formatGrpcTimeout(ms: number): string {
  const t = Math.max(0, ms);
  if (t < 99_999) return `${Math.ceil(t * 1000)}u`;
  if (t < 99_999_999) return `${Math.ceil(t)}m`;
  if (t < 99_999_999_000) return `${Math.ceil(t / 1000)}S`;
  return `${Math.min(99_999_999, Math.ceil(t / 60_000))}M`;
}

/** The status the proxy answers a call it failed with (issue 12; gRPC's HTTP mapping otherwise). */
export function grpcStatusFor(err: ProxyError): number {
  if (err instanceof PolicyDeniedError) return GRPC_STATUS.PERMISSION_DENIED;
  if (err instanceof RateLimitedError) return GRPC_STATUS.RESOURCE_EXHAUSTED;
  if (err instanceof RequestTimeoutError || err instanceof GrpcDeadlineError)
    return GRPC_STATUS.DEADLINE_EXCEEDED;
  switch (err.kind) {
    case 'timeout':
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case 'policy':
      return GRPC_STATUS.PERMISSION_DENIED;
    case 'overload':
    case 'unavailable':
    case 'upstream':
      return GRPC_STATUS.UNAVAILABLE;
    case 'client':
      return GRPC_STATUS.INTERNAL;
  }
}

/**
 * What a client reads from a non-gRPC HTTP answer (grpc/doc/http-grpc-status-mapping.md), for
 * an upstream that answered a call without `grpc-status`.
 */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** A `grpc-status` value: 0..16 as sent, -1 when absent or not a code. */
export function parseGrpcStatus(v: string | undefined): number {
  if (v === undefined || v.length === 0 || v.length > 2) return -1;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= MAX_GRPC_STATUS ? n : -1;
}

/**
 * `grpc-status` in a flat [name, value, ...] field list (a raw response head as Buffers, or
 * trailers as strings): the code, -1 when absent or not a code.
 */
export function grpcStatusInFields(raw: readonly (Buffer | string)[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as Buffer | string;
    if (name.length !== 11) continue;
    const n = typeof name === 'string' ? name : name.toString('latin1');
    if (n.toLowerCase() === 'grpc-status') return parseGrpcStatus(String(raw[i + 1]));
  }
  return -1;
}

/**
 * The statuses outlier detection counts as the endpoint's failure, like a 5xx
 * (docs/grpc.md): UNAVAILABLE (it cannot serve), INTERNAL (it broke), DATA_LOSS. Not the
 * caller's deadline (DEADLINE_EXCEEDED), load shedding or quotas (RESOURCE_EXHAUSTED, the 429
 * of gRPC), a method every endpoint lacks (UNIMPLEMENTED), nor UNKNOWN (what frameworks make of
 * any application error): those say nothing about this endpoint against the others.
 */
export function isEndpointFailure(code: number): boolean {
  return code === GRPC_STATUS.UNAVAILABLE || code === GRPC_STATUS.INTERNAL || code === GRPC_STATUS.DATA_LOSS;
}

/**
 * `grpc-message` encoding (PROTOCOL-HTTP2.md): UTF-8, every byte outside printable ASCII and
 * `%` itself percent-encoded.
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out +=
      b < 0x20 || b > 0x7e || b === 0x25
        ? `%${b.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(b);
  }
  return out;
}

/**
 * The header fields of a trailers-only answer for a call the proxy failed: the HTTP status is
 * 200 (the caller reads the outcome from `grpc-status`), the proxy's error code in
 * `x-remora-error` as on every other answer it gives itself.
 */
export function grpcErrorFields(err: ProxyError, errorHeader: string): Record<string, string | number> {
  return {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': grpcStatusFor(err),
    'grpc-message': encodeGrpcMessage(err.message),
    [errorHeader]: err.code,
  };
}
