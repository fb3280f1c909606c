/**
 * The access log (one JSON line per HTTP request and per opaque TCP connection) and security
 * events (warn, with a stable `event` field that alerting can match on). Both go through pino;
 * the caller passes plain fields and nothing is built when the line is sampled out or the level
 * is off. The query string is never logged: it routinely carries tokens.
 */
import type { Logger } from 'pino';
import type { AccessLogConfig } from './config.js';

export type Direction = 'inbound' | 'outbound';

export interface HttpAccessRecord {
  readonly direction: Direction;
  readonly method: string;
  /** The request target as received; the query is cut off before logging. */
  readonly path: string;
  /** Response status; 0 when no response was sent (the error says why). */
  readonly status: number;
  readonly durationMs: number;
  /** Request body bytes received from the client and response body bytes sent back. */
  readonly bytesReceived: number;
  readonly bytesSent: number;
  /** `host:port` the request was forwarded to. */
  readonly upstream: string | undefined;
  /** `address:port` of the client. */
  readonly peer: string | undefined;
  readonly traceId: string | undefined;
  /** Error code (`RMR_...`) when the proxy answered itself or the upstream failed. */
  readonly error?: string | undefined;
  /** a gRPC call's status from its trailers (or the proxy's own answer); absent otherwise */
  readonly grpcStatus?: number | undefined;
  /** HTTP version: '1.1', '1.0', '2' */
  readonly httpVersion?: string | undefined;
  /** retries the proxy sent upstream; absent when none */
  readonly retries?: number | undefined;
}

export interface TcpAccessRecord {
  readonly direction: Direction;
  readonly durationMs: number;
  /** Bytes client → upstream and upstream → client. */
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly upstream: string | undefined;
  readonly peer: string | undefined;
  readonly error?: string | undefined;
}

/**
 * Stable names of security events (DESIGN §7). Alerting matches on them, so a name is never
 * reused for something else; add new ones at the end.
 */
export const SECURITY_EVENTS = Object.freeze([
  'policy_denied',
  'tls_handshake_failed',
  'bad_certificate',
  'identity_mismatch',
  'plaintext_refused',
  'malformed_request',
  'admin_unauthorized',
] as const);
export type SecurityEvent = (typeof SECURITY_EVENTS)[number];

export class AccessLog {
  readonly #log: Logger;
  readonly #sample: number;

  constructor(logger: Logger, cfg: AccessLogConfig) {
    this.#log = logger.child({ log: 'access' });
    this.#sample = cfg.sample;
  }

  /**
   * Whether this request/connection is logged (the sampling decision, and the level): ask once
   * when it starts, before gathering anything, then call `http`/`tcp` only if it said yes.
   */
  wants(): boolean {
    return (this.#sample >= 1 || Math.random() < this.#sample) && this.#log.isLevelEnabled('info');
  }

  http(r: HttpAccessRecord): void {
    const q = r.path.indexOf('?');
    this.#log.info({
      type: 'http',
      direction: r.direction,
      method: r.method,
      path: q < 0 ? r.path : r.path.slice(0, q),
      status: r.status,
      duration_ms: round3(r.durationMs),
      bytes_received: r.bytesReceived,
      bytes_sent: r.bytesSent,
      upstream: r.upstream,
      peer: r.peer,
      trace_id: r.traceId,
      error: r.error,
      http_version: r.httpVersion,
      grpc_status: r.grpcStatus,
      retries: r.retries,
    });
  }

  tcp(r: TcpAccessRecord): void {
    this.#log.info({
      type: 'tcp',
      direction: r.direction,
      duration_ms: round3(r.durationMs),
      bytes_received: r.bytesReceived,
      bytes_sent: r.bytesSent,
      upstream: r.upstream,
      peer: r.peer,
      error: r.error,
    });
  }
}

/** Returns the access log, or undefined when it is off (then the caller installs nothing). */
export function createAccessLog(logger: Logger, cfg: AccessLogConfig): AccessLog | undefined {
  return cfg.enabled ? new AccessLog(logger, cfg) : undefined;
}

/**
 * Logs a security event at warn: never sampled (they are rare and each one matters). `fields`
 * should name the peer and what was refused; never put secrets or whole certificates in them.
 */
export function securityEvent(
  logger: Logger,
  event: SecurityEvent,
  fields: Readonly<Record<string, unknown>>,
  msg?: string,
): void {
  if (!logger.isLevelEnabled('warn')) return;
  logger.warn({ ...fields, event, security: true }, msg ?? event);
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
