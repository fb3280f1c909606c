/**
 * The proxy package's error registry (STYLE.md #5, issue 16): every code `remora-proxy` and
 * `remora-init` raise, once, as a row of `PROXY_ERRORS` — its class's name, how it is answered
 * (HTTP status, exit code, or internal) and its message template. The classes below are derived
 * from their rows (`class X extends errorClass('RMR_X') {}`): the compiler refuses a code without
 * a row, and test/proxy/errors-registry.test.ts refuses two classes for one row, a class named
 * against the naming rule, a code missing from docs/errors.md, and a code spelt anywhere else in
 * proxy/src or injector/src (elsewhere it is `err.code` or `X.code`). `rescue.ts` is the one
 * place that turns a data-path error into a response; it takes the status from here.
 */

/** What kind of failure a data-path error is; the registry gives each its HTTP status. */
export type FailureKind = 'timeout' | 'overload' | 'policy' | 'unavailable' | 'upstream' | 'client';

/** The binaries that exit with a registry code (docs/errors.md). */
export type Binary = 'remora-proxy' | 'remora-init' | 'remora-injector' | 'remora';

/**
 * How the code is answered:
 * - `{ http }`: the HTTP status of the answer (data path, admin API, webhook, CA). `upstream`,
 *   when set, is the status when the upstream sent the bad bytes instead of the client.
 * - `{ exit }`: the exit code of each binary that stops on it at start.
 * - `'internal'`: handled inside (rollback, last good config kept, logged); never answered as such.
 */
export type Answer =
  | { readonly http: number; readonly upstream?: number }
  | { readonly exit: Readonly<Partial<Record<Binary, number>>> }
  | 'internal';

/** One row of a registry. The code is the row's key. */
export interface ErrorSpec {
  /** the class's name: the code is `RMR_` + an area prefix + this name in SCREAMING_SNAKE without `Error` */
  readonly name: string;
  readonly answer: Answer;
  /** data-path errors only (a `ProxyError`): what rescue.ts and the access log call the failure */
  readonly kind?: FailureKind;
  /**
   * the message from the constructor's arguments (the class's constructor takes exactly these,
   * then `ErrorOptions`); no default parameters, their count splits the arguments
   */
  readonly message: (...args: never[]) => string;
}

/** A package's registry: code → row. */
export type ErrorTable = Readonly<Record<`RMR_${string}`, ErrorSpec>>;

const list = (errors: readonly string[]): string => `\n  - ${errors.join('\n  - ')}`;

export const PROXY_ERRORS = {
  // Configuration and policy documents.
  RMR_CONFIG_INVALID: {
    name: 'ConfigError',
    answer: { exit: { 'remora-proxy': 1, 'remora-init': 2 } },
    message: (errors: readonly string[]) => `invalid configuration:${list(errors)}`,
  },
  RMR_POLICY_INVALID: {
    name: 'PolicyInvalidError',
    answer: 'internal',
    message: (errors: readonly string[]) => `invalid policy document:${list(errors)}`,
  },

  // The data path: rescue.ts answers with `answer.http`.
  RMR_UPSTREAM_CONNECT: {
    name: 'UpstreamConnectError',
    kind: 'unavailable',
    answer: { http: 503 },
    message: (target: string) => `cannot connect to upstream ${target}`,
  },
  RMR_UPSTREAM_RESET: {
    name: 'UpstreamResetError',
    kind: 'upstream',
    answer: { http: 502 },
    message: (target: string) => `upstream ${target} reset the connection`,
  },
  RMR_UPSTREAM_TIMEOUT: {
    name: 'UpstreamTimeoutError',
    kind: 'timeout',
    answer: { http: 504 },
    message: (target: string) => `upstream ${target} timed out`,
  },
  RMR_UPSTREAM_PROTOCOL: {
    name: 'UpstreamProtocolError',
    kind: 'upstream',
    answer: { http: 502 },
    message: (target: string) => `upstream ${target} sent an invalid response`,
  },
  RMR_NO_TARGET: {
    name: 'NoTargetError',
    kind: 'unavailable',
    answer: { http: 503 },
    message: (direction: string) =>
      `${direction} connection has no original destination and no ${direction} target is configured`,
  },
  RMR_POLICY_DENIED: {
    name: 'PolicyDeniedError',
    kind: 'policy',
    answer: { http: 403 },
    message: (reason: string) => `refused by policy: ${reason}`,
  },
  RMR_OVERLOADED: {
    name: 'OverloadError',
    kind: 'overload',
    answer: { http: 503 },
    message: (reason: string) => `overloaded: ${reason}`,
  },
  RMR_REQUEST_TIMEOUT: {
    name: 'RequestTimeoutError',
    kind: 'timeout',
    answer: { http: 504 },
    message: (upstream: string, ms: number) => `request to ${upstream} did not complete within ${ms} ms`,
  },
  RMR_IDLE_TIMEOUT: {
    name: 'IdleTimeoutError',
    kind: 'timeout',
    answer: { http: 504 },
    message: (upstream: string, ms: number) => `request to ${upstream} was idle for ${ms} ms`,
  },
  RMR_RATE_LIMITED: {
    name: 'RateLimitedError',
    kind: 'overload',
    answer: { http: 429 },
    message: (retryAfterSeconds: number) => `rate limited: retry after ${retryAfterSeconds} s`,
  },
  RMR_CIRCUIT_OPEN: {
    name: 'CircuitOpenError',
    kind: 'overload',
    answer: { http: 503 },
    message: (upstream: string, limit: string) => `circuit open for upstream ${upstream}: ${limit} reached`,
  },
  RMR_TOO_MANY_HEADERS: {
    name: 'TooManyHeadersError',
    kind: 'client',
    answer: { http: 431 },
    message: (limit: number) => `request has more than ${limit} header fields`,
  },
  RMR_BAD_REQUEST: {
    name: 'BadRequestError',
    kind: 'client',
    answer: { http: 400 },
    message: (detail: string) => `malformed request: ${detail}`,
  },
  RMR_EXPECTATION_FAILED: {
    name: 'ExpectationFailedError',
    kind: 'client',
    answer: { http: 417 },
    message: (value: string) => `expectation not supported: Expect: ${value} (only 100-continue is)`,
  },
  RMR_REQUEST_HEAD_TIMEOUT: {
    name: 'RequestHeadTimeoutError',
    kind: 'client',
    answer: { http: 408 },
    message: (ms: number) => `request not received in time (head timeout ${ms} ms)`,
  },
  RMR_HEADERS_TOO_LARGE: {
    name: 'HeadersTooLargeError',
    kind: 'client',
    answer: { http: 431 },
    message: (limit: number) => `request head exceeds ${limit} bytes`,
  },
  RMR_CLIENT_ABORTED: {
    name: 'ClientAbortedError',
    kind: 'client',
    answer: 'internal',
    message: () => 'the client closed the connection before the exchange was over',
  },
  RMR_GRPC_DEADLINE: {
    name: 'GrpcDeadlineError',
    kind: 'timeout',
    answer: { http: 504 },
    message: (upstream: string, ms: number) => `call to ${upstream} passed its grpc-timeout of ${ms} ms`,
  },
  RMR_HTTP2_PROTOCOL: {
    name: 'Http2ProtocolError',
    kind: 'client',
    answer: { http: 400 },
    message: (detail: string) => `HTTP/2 protocol error: ${detail}`,
  },

  // The HTTP/1.1 codec (proxy/src/http1/): `http` for a request, `upstream` for a response.
  // The message is prefixed `malformed HTTP/1.1 <side>: ` by Http1Error.
  RMR_HTTP1_SYNTAX: {
    name: 'Http1SyntaxError',
    kind: 'client',
    answer: { http: 400, upstream: 502 },
    message: (detail: string) => detail,
  },
  RMR_HTTP1_FRAMING: {
    name: 'Http1FramingError',
    kind: 'client',
    answer: { http: 400, upstream: 502 },
    message: (detail: string) => detail,
  },
  RMR_HTTP1_CHUNK: {
    name: 'Http1ChunkError',
    kind: 'client',
    answer: { http: 400, upstream: 502 },
    message: (detail: string) => detail,
  },
  RMR_HTTP1_HEAD_TOO_LARGE: {
    name: 'Http1HeadTooLargeError',
    kind: 'client',
    answer: { http: 431, upstream: 502 },
    message: (limit: number) => `head exceeds ${limit} bytes`,
  },
  RMR_HTTP1_TOO_MANY_FIELDS: {
    name: 'Http1TooManyFieldsError',
    kind: 'client',
    answer: { http: 431, upstream: 502 },
    message: (limit: number) => `more than ${limit} header fields`,
  },
  RMR_HTTP1_INCOMPLETE: {
    name: 'Http1IncompleteError',
    kind: 'client',
    answer: { http: 400, upstream: 502 },
    message: (what: string) => `connection closed in the middle of the ${what}`,
  },
  RMR_HTTP1_UNEXPECTED_DATA: {
    name: 'Http1UnexpectedDataError',
    kind: 'client',
    answer: { http: 400, upstream: 502 },
    message: (detail: string) => detail,
  },

  // The supervisor (RMR_SUP_*) and its admin API on 15000.
  RMR_SUP_ENGINE_START: {
    name: 'EngineStartError',
    answer: 'internal',
    message: (reason: string) => `engine did not become ready: ${reason}`,
  },
  RMR_SUP_UPGRADE_INVALID: {
    name: 'UpgradeRequestError',
    answer: { http: 400 },
    message: (errors: readonly string[]) => `invalid upgrade request: ${errors.join('; ')}`,
  },
  RMR_SUP_BUSY: {
    name: 'UpgradeBusyError',
    answer: { http: 409 },
    message: (what: string) => `cannot upgrade now: ${what}`,
  },
  RMR_SUP_IPC: {
    name: 'IpcProtocolError',
    answer: 'internal',
    message: (detail: string) => `engine IPC protocol error: ${detail}`,
  },
  RMR_SUP_BUNDLE: {
    name: 'BundleError',
    answer: 'internal',
    message: (detail: string) => `engine bundle refused: ${detail}`,
  },
  RMR_SUP_BUNDLE_DIGEST: {
    name: 'BundleDigestError',
    answer: 'internal',
    message: (expected: string, actual: string) =>
      `engine bundle digest mismatch: expected ${expected}, got ${actual}`,
  },
  RMR_SUP_TOKEN: {
    name: 'TokenError',
    answer: { exit: { 'remora-proxy': 1 } },
    message: (detail: string) => detail,
  },
  RMR_SUP_UNAUTHORIZED: {
    name: 'UnauthorizedError',
    answer: { http: 401 },
    message: () => 'this endpoint needs Authorization: Bearer <token from REMORA_ADMIN_TOKEN_FILE>',
  },
  RMR_SUP_METHOD: {
    name: 'MethodError',
    answer: { http: 405 },
    message: (path: string, method: string) => `${path} needs ${method}`,
  },
  RMR_SUP_LOG_LEVEL: {
    name: 'LogLevelError',
    answer: { http: 400 },
    message: (levels: readonly string[]) => `level must be one of ${levels.join(', ')}`,
  },
  RMR_SUP_NOT_FOUND: {
    name: 'NotFoundError',
    answer: { http: 404 },
    message: (path: string) => `no admin endpoint ${path}`,
  },
  RMR_SUP_INTERNAL: {
    name: 'InternalError',
    answer: { http: 500 },
    message: (err: unknown) => String(err),
  },
  RMR_FDUTIL_MISSING: {
    name: 'FdutilMissingError',
    answer: { exit: { 'remora-proxy': 1 } },
    message: (detail: string) => `the native fdutil addon is not built (proxy/native, node-gyp): ${detail}`,
  },

  // remora-init.
  RMR_INIT_IPTABLES_FAILED: {
    name: 'IptablesFailedError',
    answer: { exit: { 'remora-init': 1 } },
    message: (what: string, cmd: string, exitCode: number, detail: string) =>
      `${what}: ${cmd} exited ${exitCode}: ${detail}`,
  },
} as const satisfies ErrorTable;

export type ProxyCode = keyof typeof PROXY_ERRORS;

/** The registry's areas besides the bare `RMR_`: the naming rule allows these prefixes. */
export const PROXY_AREAS: readonly string[] = Object.freeze(['SUP', 'INIT']);

/** The arguments of a code's message template, which its class's constructor takes. */
export type MessageArgs<T extends ErrorTable, C extends keyof T> = T[C] extends {
  readonly message: (...args: infer A) => string;
}
  ? A
  : never;

/** The base of every error either package raises on purpose: a stable `code` and the class's name. */
export class RemoraError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Splits `(...messageArgs, options?)` by the template's arity and formats the message. */
function format(spec: ErrorSpec, args: readonly unknown[]): [string, ErrorOptions | undefined] {
  const n = spec.message.length;
  const message = (spec.message as (...a: unknown[]) => string)(...args.slice(0, n));
  return [message, args[n] as ErrorOptions | undefined];
}

/**
 * The base class for a registry row: `class X extends registryClass(TABLE, 'RMR_...') {}` makes X
 * take the template's arguments (then `ErrorOptions`), carry the code and its message, and
 * expose the code as `X.code`. Used by both packages' registries.
 */
export function registryClass<T extends ErrorTable, C extends keyof T & `RMR_${string}`>(table: T, code: C) {
  const spec = table[code] as ErrorSpec;
  return class extends RemoraError {
    static readonly code: C = code;
    declare readonly code: C;
    constructor(...args: [...MessageArgs<T, C>, options?: ErrorOptions]) {
      const [message, options] = format(spec, args);
      super(code, message, options);
    }
  };
}

/** The codes of a table whose message lists problems: `(errors: readonly string[])`. */
export type ListCode<T extends ErrorTable> = {
  [C in keyof T & `RMR_${string}`]: T[C] extends { readonly message: (errors: readonly string[]) => string }
    ? C
    : never;
}[keyof T & `RMR_${string}`];

/** `registryClass` for a row that lists every problem: the class keeps them as `errors`. */
export function listRegistryClass<T extends ErrorTable, C extends ListCode<T>>(table: T, code: C) {
  return class extends registryClass(table, code) {
    readonly errors: readonly string[];
    constructor(errors: readonly string[]) {
      super(...([errors] as unknown as [...MessageArgs<T, C>, ErrorOptions?]));
      this.errors = Object.freeze([...errors]);
    }
  };
}

/** The HTTP status the registry gives a code (`upstream` when the upstream is at fault), if any. */
export function httpStatusOf(table: ErrorTable, code: string, upstream = false): number | undefined {
  const answer = (table as Readonly<Record<string, ErrorSpec>>)[code]?.answer;
  if (typeof answer !== 'object' || !('http' in answer)) return undefined;
  return upstream && answer.upstream !== undefined ? answer.upstream : answer.http;
}

/** An error on the data path: it knows its kind, so rescue.ts can answer for it. */
export class ProxyError extends RemoraError {
  readonly kind: FailureKind;
  constructor(kind: FailureKind, code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.kind = kind;
  }
}

/** The data-path codes: the rows with a `kind`. */
type DataCode = {
  [C in ProxyCode]: (typeof PROXY_ERRORS)[C] extends { readonly kind: FailureKind } ? C : never;
}[ProxyCode];

/** The other rows: a plain RemoraError. */
const errorClass = <C extends Exclude<ProxyCode, DataCode>>(code: C) => registryClass(PROXY_ERRORS, code);

/** `registryClass` for a data-path row: the class is a ProxyError of the row's kind. */
function dataErrorClass<C extends DataCode>(code: C) {
  const spec: ErrorSpec = PROXY_ERRORS[code];
  const kind = spec.kind as FailureKind;
  return class extends ProxyError {
    static readonly code: C = code;
    declare readonly code: C;
    constructor(...args: [...MessageArgs<typeof PROXY_ERRORS, C>, options?: ErrorOptions]) {
      const [message, options] = format(spec, args);
      super(kind, code, message, options);
    }
  };
}

/** Invalid configuration at start (exit non-zero) or at reload (keep the last good one). */
export class ConfigError extends listRegistryClass(PROXY_ERRORS, 'RMR_CONFIG_INVALID') {}

/**
 * A policy document (docs/policy.md) failed validation: every problem, each naming its path
 * (`policies[0].inbound[1]...`). At start the proxy exits; on an update the last good policy stays.
 */
export class PolicyInvalidError extends listRegistryClass(PROXY_ERRORS, 'RMR_POLICY_INVALID') {}

/** The upstream refused the connection or could not be reached. */
export class UpstreamConnectError extends dataErrorClass('RMR_UPSTREAM_CONNECT') {}

/** The upstream closed or reset the connection before a complete response. */
export class UpstreamResetError extends dataErrorClass('RMR_UPSTREAM_RESET') {}

/** The upstream did not connect or answer in time. */
export class UpstreamTimeoutError extends dataErrorClass('RMR_UPSTREAM_TIMEOUT') {}

/** Any other upstream protocol failure (invalid response, ...). */
export class UpstreamProtocolError extends dataErrorClass('RMR_UPSTREAM_PROTOCOL') {}

/** A connection that was not redirected and has no configured target. */
export class NoTargetError extends dataErrorClass('RMR_NO_TARGET') {}

/** Refused by policy (authorization, strict mTLS). */
export class PolicyDeniedError extends dataErrorClass('RMR_POLICY_DENIED') {}

/** The proxy is shedding load (draining, or a limit was reached). */
export class OverloadError extends dataErrorClass('RMR_OVERLOADED') {}

/** A route's whole-request timeout expired (docs/traffic.md): 504, or a cut once the head was sent. */
export class RequestTimeoutError extends dataErrorClass('RMR_REQUEST_TIMEOUT') {}

/** No byte moved either way for a route's idle timeout (docs/traffic.md): 504, or a cut. */
export class IdleTimeoutError extends dataErrorClass('RMR_IDLE_TIMEOUT') {}

/** The local rate limit refused the request (docs/traffic.md): 429 with Retry-After. */
export class RateLimitedError extends dataErrorClass('RMR_RATE_LIMITED') {
  /** whole seconds until a token is available, for Retry-After */
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super(retryAfterSeconds);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The client sent more header fields than REMORA_MAX_HEADERS allows. */
export class TooManyHeadersError extends dataErrorClass('RMR_TOO_MANY_HEADERS') {}

/** The client sent malformed HTTP (request line, framing, chunk sizes, ...): 400 and close. */
export class BadRequestError extends dataErrorClass('RMR_BAD_REQUEST') {}

/** An Expect field other than 100-continue (RFC 9110 §10.1.1): 417 and close. */
export class ExpectationFailedError extends dataErrorClass('RMR_EXPECTATION_FAILED') {}

/** The client did not send a whole request head within REMORA_REQUEST_HEAD_TIMEOUT_MS: 408 and close. */
export class RequestHeadTimeoutError extends dataErrorClass('RMR_REQUEST_HEAD_TIMEOUT') {}

/** The request head is larger than REMORA_MAX_HEADER_BYTES: 431 and close. */
export class HeadersTooLargeError extends dataErrorClass('RMR_HEADERS_TOO_LARGE') {}

/**
 * A gRPC call's own deadline (`grpc-timeout`, docs/grpc.md) passed before it completed: the
 * proxy answers DEADLINE_EXCEEDED (HTTP 200, `grpc-status: 4`) and cancels the upstream stream.
 */
export class GrpcDeadlineError extends dataErrorClass('RMR_GRPC_DEADLINE') {}

/**
 * The HTTP/2 stage of a listener saw a hostile pattern (too many stream resets: rapid reset):
 * the connection is closed with GOAWAY ENHANCE_YOUR_CALM.
 */
export class Http2ProtocolError extends dataErrorClass('RMR_HTTP2_PROTOCOL') {}

/** A circuit breaker limit of an upstream is reached (issue 7, docs/circuit-breaking.md): 503. */
export class CircuitOpenError extends dataErrorClass('RMR_CIRCUIT_OPEN') {
  /** which limit: `max_connections` | `max_pending_requests` | `max_requests` */
  readonly limit: string;
  constructor(upstream: string, limit: string) {
    super(upstream, limit);
    this.limit = limit;
  }
}

/**
 * The client went away before the exchange was over: nothing is answered (nobody is left to
 * read it); the access log and metrics carry the code (`ClientAbortedError.code`).
 */
export class ClientAbortedError extends dataErrorClass('RMR_CLIENT_ABORTED') {}

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

type Http1Code = Extract<ProxyCode, `RMR_HTTP1_${string}`>;

/** `registryClass` for a codec row: `(side, reason, ...template arguments)`. */
function http1ErrorClass<C extends Http1Code>(code: C) {
  const spec: ErrorSpec = PROXY_ERRORS[code];
  return class extends Http1Error {
    static readonly code: C = code;
    declare readonly code: C;
    constructor(side: Http1Side, reason: string, ...args: MessageArgs<typeof PROXY_ERRORS, C>) {
      super(code, side, reason, format(spec, args)[0]);
    }
  };
}

/** A start line, field line or character that RFC 9112 does not allow (bare CR/LF, obs-fold, ...). */
export class Http1SyntaxError extends http1ErrorClass('RMR_HTTP1_SYNTAX') {}

/** Content-Length / Transfer-Encoding that frame the body ambiguously or not at all (smuggling). */
export class Http1FramingError extends http1ErrorClass('RMR_HTTP1_FRAMING') {}

/** A chunked body that breaks the chunk grammar (size, extension, missing CRLF, trailers). */
export class Http1ChunkError extends http1ErrorClass('RMR_HTTP1_CHUNK') {}

/** A head (or trailer section) larger than the configured limit: 431 for a request. */
export class Http1HeadTooLargeError extends http1ErrorClass('RMR_HTTP1_HEAD_TOO_LARGE') {
  constructor(side: Http1Side, limit: number) {
    super(side, 'head_too_large', limit);
  }
}

/** More header (or trailer) fields than the configured limit: 431 for a request. */
export class Http1TooManyFieldsError extends http1ErrorClass('RMR_HTTP1_TOO_MANY_FIELDS') {
  constructor(side: Http1Side, limit: number) {
    super(side, 'too_many_fields', limit);
  }
}

/** The connection ended before the message did (a truncated head or body). */
export class Http1IncompleteError extends http1ErrorClass('RMR_HTTP1_INCOMPLETE') {
  constructor(side: Http1Side, what: string) {
    super(side, 'incomplete', what);
  }
}

/** Bytes after a message where none may follow (a second response to one request, ...). */
export class Http1UnexpectedDataError extends http1ErrorClass('RMR_HTTP1_UNEXPECTED_DATA') {
  constructor(side: Http1Side, detail: string) {
    super(side, 'unexpected_data', detail);
  }
}

// The supervisor (re-exported from supervisor/errors.ts, where they used to live).

/** A new engine did not become ready; the running one keeps serving (automatic rollback). */
export class EngineStartError extends errorClass('RMR_SUP_ENGINE_START') {}

/** An upgrade request that names a missing or malformed version, or invalid config. */
export class UpgradeRequestError extends listRegistryClass(PROXY_ERRORS, 'RMR_SUP_UPGRADE_INVALID') {}

/** Another upgrade (or a shutdown) is already in progress. */
export class UpgradeBusyError extends errorClass('RMR_SUP_BUSY') {}

/** An engine sent a message that is not part of the IPC protocol. */
export class IpcProtocolError extends errorClass('RMR_SUP_IPC') {}

/** An engine bundle that cannot be used (malformed archive, over a cap, wrong manifest). */
export class BundleError extends errorClass('RMR_SUP_BUNDLE') {}

/** An engine bundle whose sha256 is not the digest the control plane announced: nothing runs. */
export class BundleDigestError extends errorClass('RMR_SUP_BUNDLE_DIGEST') {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(expected, actual);
  }
}

/** The admin token file cannot be read or created, or holds too short a token. */
export class TokenError extends errorClass('RMR_SUP_TOKEN') {}

/** A state-changing admin call without the admin token. */
export class UnauthorizedError extends errorClass('RMR_SUP_UNAUTHORIZED') {}

/** An admin endpoint called with the wrong method; the message and `Allow` name the right one. */
export class MethodError extends errorClass('RMR_SUP_METHOD') {}

/** `POST /logging?level=` with a level that is not one of `levels`. */
export class LogLevelError extends errorClass('RMR_SUP_LOG_LEVEL') {}

/** No admin endpoint at this path. */
export class NotFoundError extends errorClass('RMR_SUP_NOT_FOUND') {}

/** An admin call failed for a reason of the supervisor's own (the message is the cause's). */
export class InternalError extends errorClass('RMR_SUP_INTERNAL') {}

/** The native fdutil addon (proxy/native) is not built; the supervisor cannot hand out sockets. */
export class FdutilMissingError extends errorClass('RMR_FDUTIL_MISSING') {}

// remora-init.

/** An iptables(-save|-restore) command failed: remora-init exits 1. */
export class IptablesFailedError extends errorClass('RMR_INIT_IPTABLES_FAILED') {}
