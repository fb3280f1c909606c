/**
 * The access log (one JSON line per HTTP request and per opaque TCP connection) and security
 * events (warn, with a stable `event` field that alerting can match on). The caller passes plain
 * fields and nothing is built when the line is sampled out or the level is off. The query string
 * is never logged: it routinely carries tokens.
 *
 * Security events go through pino. An access line is written by this module into the logger's
 * own destination, with the logger's own level label, time and bindings (read through
 * `pino.symbols`, pino's documented integration point), so it is the line pino would write for
 * the same fields, in the same order; only the serialization of the fields is done here, for
 * the fixed set of fields an access line has, instead of pino walking an object built for it
 * (about half of what a line cost, docs/performance.md). The logger (log.ts) has no mixin,
 * redaction or log formatter, which this path would skip. Strings are escaped by
 * `JSON.stringify`: a client's lone surrogate comes out as `\ud800`, not as a raw surrogate
 * that the UTF-8 encoding replaces.
 */
import { pino } from 'pino';
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
  /** the client's address and port, written `address:port` (undefined: no `peer` field) */
  readonly peerAddress: string | undefined;
  readonly peerPort: number | undefined;
  /**
   * 32 hex digits, written as they are: the span's own id, or a caller's that the W3C
   * pattern or the B3 propagator's hex check let through (telemetry/layer.ts, tracing.ts).
   */
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

const S = pino.symbols;
const INFO = 30;

/** The parts of a pino logger a line is made of (pino.symbols). */
interface LineParts {
  readonly [S.lsCacheSym]: Readonly<Record<number, string>>;
  readonly [S.timeSym]: () => string;
  readonly [S.chindingsSym]: string;
  readonly [S.streamSym]: { write(line: string): unknown };
  readonly [S.endSym]: string;
}

export class AccessLog {
  readonly #log: Logger;
  readonly #parts: LineParts;
  readonly #sample: number;

  constructor(logger: Logger, cfg: AccessLogConfig) {
    this.#log = logger.child({ log: 'access' });
    this.#parts = this.#log as unknown as LineParts;
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
    // `direction` is one of two literals and `traceId` hex; every other string is escaped as needed.
    let line = `${this.#head()},"type":"http","direction":"${r.direction}","method":"${jsonText(r.method)}","path":"${jsonText(q < 0 ? r.path : r.path.slice(0, q))}","status":${num(r.status)},"duration_ms":${num(round3(r.durationMs))},"bytes_received":${num(r.bytesReceived)},"bytes_sent":${num(r.bytesSent)}`;
    if (r.upstream !== undefined) line += `,"upstream":"${jsonText(r.upstream)}"`;
    if (r.peerAddress !== undefined) line += `,"peer":"${jsonText(r.peerAddress)}:${num(r.peerPort ?? 0)}"`;
    if (r.traceId !== undefined) line += `,"trace_id":"${r.traceId}"`;
    if (r.error !== undefined) line += `,"error":"${jsonText(r.error)}"`;
    if (r.httpVersion !== undefined) line += `,"http_version":"${jsonText(r.httpVersion)}"`;
    if (r.grpcStatus !== undefined) line += `,"grpc_status":${num(r.grpcStatus)}`;
    if (r.retries !== undefined) line += `,"retries":${num(r.retries)}`;
    this.#write(line);
  }

  tcp(r: TcpAccessRecord): void {
    let line = `${this.#head()},"type":"tcp","direction":"${r.direction}","duration_ms":${num(round3(r.durationMs))},"bytes_received":${num(r.bytesReceived)},"bytes_sent":${num(r.bytesSent)}`;
    if (r.upstream !== undefined) line += `,"upstream":"${jsonText(r.upstream)}"`;
    if (r.peer !== undefined) line += `,"peer":"${jsonText(r.peer)}"`;
    if (r.error !== undefined) line += `,"error":"${jsonText(r.error)}"`;
    this.#write(line);
  }

  /** `{"level":"info","time":...` and the bindings, as pino starts a line at info. */
  #head(): string {
    const p = this.#parts;
    return (p[S.lsCacheSym][INFO] as string) + p[S.timeSym]() + p[S.chindingsSym];
  }

  #write(fields: string): void {
    const p = this.#parts;
    p[S.streamSym].write(fields + p[S.endSym]);
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

/**
 * What goes between a JSON string's quotes for `s`: escapes quotes, backslashes, control
 * characters and lone surrogates, exactly as JSON.stringify does. Most values (a method, a path,
 * an address) need nothing escaped and are returned as they are, after one scan of their
 * characters for what JSON.stringify would escape (quotes, backslashes, controls, surrogates,
 * lone or paired): no call into JSON.stringify's serializer (~600 instructions each, six or more
 * per line; docs/performance.md) and no string built. The scan is a loop, not a regex class:
 * a regex test cost ~450 instructions per value, the loop ~4 per character.
 */
export function jsonText(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff))
      return JSON.stringify(s).slice(1, -1);
  }
  return s;
}

/** A JSON number, or null for NaN and the infinities (as pino writes them). */
function num(n: number): string {
  return Number.isFinite(n) ? `${n}` : 'null';
}
