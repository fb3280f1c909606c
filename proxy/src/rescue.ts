/**
 * The one place that turns an error into an HTTP answer (STYLE #5, linkerd's ServerRescue). The
 * status is the registry's (`PROXY_ERRORS` in errors.ts, listed in docs/errors.md): timeout →
 * 504, overload and unreachable upstream → 503, refused by policy → 403, a client error →
 * 400/431 (a slow request head → 408), the local rate limit → 429, anything else → 502. The code
 * travels in `x-remora-error`.
 */
import {
  PROXY_ERRORS,
  ProxyError,
  httpStatusOf,
  UpstreamConnectError,
  UpstreamProtocolError,
  UpstreamResetError,
  UpstreamTimeoutError,
} from './errors.js';
import type { FailureKind } from './errors.js';

export const ERROR_HEADER = 'x-remora-error';

export interface Rescue {
  readonly status: number;
  readonly code: string;
  readonly error: ProxyError;
}

/** For a ProxyError whose code the registry does not know (a class outside it): by its kind. */
const KIND_STATUS: Readonly<Record<FailureKind, number>> = Object.freeze({
  timeout: 504,
  overload: 503,
  unavailable: 503,
  policy: 403,
  upstream: 502,
  client: 400,
});

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);
const TIMEOUT_CODES = new Set([
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** Classifies any error raised while talking to `target` (undici, net, ours). */
export function classify(err: unknown, target: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  const c = typeof code === 'string' ? code : '';
  const cc = typeof cause === 'string' ? cause : '';
  if (TIMEOUT_CODES.has(c) || TIMEOUT_CODES.has(cc)) return new UpstreamTimeoutError(target, { cause: err });
  if (CONNECT_CODES.has(c) || CONNECT_CODES.has(cc)) return new UpstreamConnectError(target, { cause: err });
  if (RESET_CODES.has(c) || RESET_CODES.has(cc)) return new UpstreamResetError(target, { cause: err });
  return new UpstreamProtocolError(target, { cause: err });
}

/** The status and code to answer with for an error. */
export function rescue(err: unknown, target: string): Rescue {
  const error = classify(err, target);
  // A response's fault (kind `upstream`) takes the row's `upstream` status where it has one.
  const status = httpStatusOf(PROXY_ERRORS, error.code, error.kind === 'upstream') ?? KIND_STATUS[error.kind];
  return { status, code: error.code, error };
}
