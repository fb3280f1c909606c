/**
 * Every error the proxy raises on purpose, in one file (STYLE.md #5): a stable `code`
 * (`RMR_...`, never reused), a `name`, and a default message. `rescue.ts` maps them to responses.
 */
export class RemoraError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Invalid configuration at start (exit non-zero) or at reload (keep the last good one). */
export class ConfigError extends RemoraError {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super('RMR_CONFIG_INVALID', `invalid configuration:\n  - ${errors.join('\n  - ')}`);
    this.errors = Object.freeze([...errors]);
  }
}

/**
 * A policy document (docs/policy.md) failed validation: every problem, each naming its path
 * (`policies[0].inbound[1]...`). At start the proxy exits; on an update the last good policy stays.
 */
export class PolicyInvalidError extends RemoraError {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super('RMR_POLICY_INVALID', `invalid policy document:\n  - ${errors.join('\n  - ')}`);
    this.errors = Object.freeze([...errors]);
  }
}

/**
 * What kind of failure an error is; rescue.ts turns the kind into a status code, so new errors
 * only have to pick one.
 */
export type FailureKind = 'timeout' | 'overload' | 'policy' | 'unavailable' | 'upstream' | 'client';

/** An error on the data path: it knows its kind, so rescue.ts can answer for it. */
export class ProxyError extends RemoraError {
  readonly kind: FailureKind;
  constructor(kind: FailureKind, code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.kind = kind;
  }
}

/** The upstream refused the connection or could not be reached. */
export class UpstreamConnectError extends ProxyError {
  constructor(target: string, options?: { cause?: unknown }) {
    super('unavailable', 'RMR_UPSTREAM_CONNECT', `cannot connect to upstream ${target}`, options);
  }
}

/** The upstream closed or reset the connection before a complete response. */
export class UpstreamResetError extends ProxyError {
  constructor(target: string, options?: { cause?: unknown }) {
    super('upstream', 'RMR_UPSTREAM_RESET', `upstream ${target} reset the connection`, options);
  }
}

/** The upstream did not connect or answer in time. */
export class UpstreamTimeoutError extends ProxyError {
  constructor(target: string, options?: { cause?: unknown }) {
    super('timeout', 'RMR_UPSTREAM_TIMEOUT', `upstream ${target} timed out`, options);
  }
}

/** Any other upstream protocol failure (invalid response, ...). */
export class UpstreamProtocolError extends ProxyError {
  constructor(target: string, options?: { cause?: unknown }) {
    super('upstream', 'RMR_UPSTREAM_PROTOCOL', `upstream ${target} sent an invalid response`, options);
  }
}

/** A connection that was not redirected and has no configured target. */
export class NoTargetError extends ProxyError {
  constructor(direction: string) {
    super(
      'unavailable',
      'RMR_NO_TARGET',
      `${direction} connection has no original destination and no ${direction} target is configured`,
    );
  }
}

/** Refused by policy (authorization, strict mTLS). */
export class PolicyDeniedError extends ProxyError {
  constructor(reason: string) {
    super('policy', 'RMR_POLICY_DENIED', `refused by policy: ${reason}`);
  }
}

/** The proxy is shedding load (draining, or a limit was reached). */
export class OverloadError extends ProxyError {
  constructor(reason: string) {
    super('overload', 'RMR_OVERLOADED', `overloaded: ${reason}`);
  }
}

/** A route's whole-request timeout expired (docs/traffic.md): 504, or a cut once the head was sent. */
export class RequestTimeoutError extends ProxyError {
  constructor(upstream: string, ms: number) {
    super('timeout', 'RMR_REQUEST_TIMEOUT', `request to ${upstream} did not complete within ${ms} ms`);
  }
}

/** No byte moved either way for a route's idle timeout (docs/traffic.md): 504, or a cut. */
export class IdleTimeoutError extends ProxyError {
  constructor(upstream: string, ms: number) {
    super('timeout', 'RMR_IDLE_TIMEOUT', `request to ${upstream} was idle for ${ms} ms`);
  }
}

/** The local rate limit refused the request (docs/traffic.md): 429 with Retry-After. */
export class RateLimitedError extends ProxyError {
  /** whole seconds until a token is available, for Retry-After */
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('overload', 'RMR_RATE_LIMITED', `rate limited: retry after ${retryAfterSeconds} s`);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The client sent more header fields than REMORA_MAX_HEADERS allows. */
export class TooManyHeadersError extends ProxyError {
  constructor(limit: number) {
    super('client', 'RMR_TOO_MANY_HEADERS', `request has more than ${limit} header fields`);
  }
}

/** The client sent malformed HTTP (request line, framing, chunk sizes, ...): 400 and close. */
export class BadRequestError extends ProxyError {
  constructor(detail: string) {
    super('client', 'RMR_BAD_REQUEST', `malformed request: ${detail}`);
  }
}

/** The client did not send a whole request head within REMORA_REQUEST_HEAD_TIMEOUT_MS: 408 and close. */
export class RequestHeadTimeoutError extends ProxyError {
  constructor(ms: number) {
    super('client', 'RMR_REQUEST_HEAD_TIMEOUT', `request not received in time (head timeout ${ms} ms)`);
  }
}

/** The request head is larger than REMORA_MAX_HEADER_BYTES: 431 and close. */
export class HeadersTooLargeError extends ProxyError {
  constructor(limit: number) {
    super('client', 'RMR_HEADERS_TOO_LARGE', `request head exceeds ${limit} bytes`);
  }
}

/**
 * A gRPC call's own deadline (`grpc-timeout`, docs/grpc.md) passed before it completed: the
 * proxy answers DEADLINE_EXCEEDED (HTTP 200, `grpc-status: 4`) and cancels the upstream stream.
 */
export class DeadlineExceededError extends ProxyError {
  constructor(upstream: string, ms: number) {
    super('timeout', 'RMR_GRPC_DEADLINE', `call to ${upstream} passed its grpc-timeout of ${ms} ms`);
  }
}

/**
 * The HTTP/2 client stage of a listener saw a protocol problem or a hostile pattern (too many
 * resets, headers too large): the stream is reset or the connection closed with GOAWAY.
 */
export class Http2ProtocolError extends ProxyError {
  constructor(detail: string) {
    super('client', 'RMR_HTTP2_PROTOCOL', `HTTP/2 protocol error: ${detail}`);
  }
}

/** A circuit breaker limit of an upstream is reached (issue 7, docs/circuit-breaking.md): 503. */
export class CircuitOpenError extends ProxyError {
  /** which limit: `max_connections` | `max_pending_requests` | `max_requests` */
  readonly limit: string;
  constructor(upstream: string, limit: string) {
    super('overload', 'RMR_CIRCUIT_OPEN', `circuit open for upstream ${upstream}: ${limit} reached`);
    this.limit = limit;
  }
}

/**
 * Malformed HTTP/1.1 bytes found by the project's own codec (proxy/src/http1/, docs/proxy.md
 * "HTTP/1.1 codec"). `side` says who sent them: a request comes from the client (kind `client`,
 * 400 or 431), a response from the upstream (kind `upstream`, 502). `reason` is a stable
 * snake_case code naming the exact fault (logged and counted; tests assert it).
 */
export type Http1Side = 'request' | 'response';

export class Http1Error extends ProxyError {
  readonly side: Http1Side;
  readonly reason: string;
  constructor(code: string, side: Http1Side, reason: string, message: string) {
    super(side === 'request' ? 'client' : 'upstream', code, `malformed HTTP/1.1 ${side}: ${message}`);
    this.side = side;
    this.reason = reason;
  }
}

/** A start line, field line or character that RFC 9112 does not allow (bare CR/LF, obs-fold, ...). */
export class Http1SyntaxError extends Http1Error {
  constructor(side: Http1Side, reason: string, detail: string) {
    super('RMR_HTTP1_SYNTAX', side, reason, detail);
  }
}

/** Content-Length / Transfer-Encoding that frame the body ambiguously or not at all (smuggling). */
export class Http1FramingError extends Http1Error {
  constructor(side: Http1Side, reason: string, detail: string) {
    super('RMR_HTTP1_FRAMING', side, reason, detail);
  }
}

/** A chunked body that breaks the chunk grammar (size, extension, missing CRLF, trailers). */
export class Http1ChunkError extends Http1Error {
  constructor(side: Http1Side, reason: string, detail: string) {
    super('RMR_HTTP1_CHUNK', side, reason, detail);
  }
}

/** A head (or trailer section) larger than the configured limit: 431 for a request. */
export class Http1HeadTooLargeError extends Http1Error {
  constructor(side: Http1Side, limit: number) {
    super('RMR_HTTP1_HEAD_TOO_LARGE', side, 'head_too_large', `head exceeds ${limit} bytes`);
  }
}

/** More header (or trailer) fields than the configured limit: 431 for a request. */
export class Http1TooManyFieldsError extends Http1Error {
  constructor(side: Http1Side, limit: number) {
    super('RMR_HTTP1_TOO_MANY_FIELDS', side, 'too_many_fields', `more than ${limit} header fields`);
  }
}

/** The connection ended before the message did (a truncated head or body). */
export class Http1IncompleteError extends Http1Error {
  constructor(side: Http1Side, what: string) {
    super('RMR_HTTP1_INCOMPLETE', side, 'incomplete', `connection closed in the middle of the ${what}`);
  }
}

/** Bytes after a message where none may follow (a second response to one request, ...). */
export class Http1UnexpectedDataError extends Http1Error {
  constructor(side: Http1Side, detail: string) {
    super('RMR_HTTP1_UNEXPECTED_DATA', side, 'unexpected_data', detail);
  }
}
