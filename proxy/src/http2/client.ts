/**
 * The HTTP/2 upstream client (docs/grpc.md): one `node:http2` session per origin, h2c with
 * prior knowledge, every request a stream on it. It implements the same dispatch contract as the HTTP/1.1 pools
 * (`dispatch({path, method, headers, body}, handler)` with undici's onConnect / onHeaders /
 * onData / onComplete / onError callbacks), so the forwarder, the breaker and the mesh's
 * endpoint choice drive it unchanged.
 *
 * A session that got GOAWAY, closed or failed takes no new stream; the next request opens a
 * new one (streams already on the old session finish there). Backpressure runs both ways:
 * a handler's `onData` returning false pauses the upstream stream until `resume`, and the
 * request body is piped, so a slow upstream window slows the client's reads.
 */
import http2 from 'node:http2';
import type {
  ClientHttp2Session,
  ClientHttp2Stream,
  IncomingHttpHeaders,
  OutgoingHttpHeaders,
} from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { formatGrpcTimeout, isGrpcContentType } from '../grpc/protocol.js';
import type { DispatchHandler, DispatchOptions, PoolStats, UpstreamPool } from '../http/dispatch.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_AUTHORITY,
  HTTP2_HEADER_SCHEME,
} = http2.constants;

/** Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); `te` passes only as `trailers`. */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

export interface H2OriginOptions {
  /** ms to wait for the connection (and the peer's SETTINGS) before failing what waits on it */
  readonly connectTimeout: number;
  /** ms a session with no stream is kept before it is closed */
  readonly idleTimeout: number;
  /** connections to the origin leave from this address (inbound delivery) */
  readonly localAddress?: string | undefined;
  /**
   * Makes the transport instead of a TCP connection: a mesh tunnel (mTLS + CONNECT), whose
   * requests wait until it is up. HTTP/2 then runs inside the tunnel (docs/grpc.md).
   */
  readonly connect?: (() => Promise<Duplex>) | undefined;
}

/** A session's counts in the shape every pool reports (http/dispatch.ts PoolStats). */
export class H2Stats implements PoolStats {
  connected = 0;
  running = 0;
  pending = 0;
  readonly queued = 0;
  /** a stream needs no free connection, only a session: 1 while one is up */
  get free(): number {
    return this.connected > 0 ? 1 : 0;
  }
  get size(): number {
    return this.connected;
  }
}

/** An error for what the upstream did to one stream, classified by rescue.ts like a reset. */
function streamReset(code: number): Error {
  return Object.assign(new Error(`upstream reset the HTTP/2 stream (code ${code})`), {
    code: code === NGHTTP2_REFUSED_STREAM ? 'ECONNREFUSED' : 'ECONNRESET',
    rstCode: code,
  });
}

function connectTimeout(key: string): Error {
  return Object.assign(new Error(`HTTP/2 connection to ${key} timed out`), {
    code: 'UND_ERR_CONNECT_TIMEOUT',
  });
}

/** Flat [name, value, ...] request fields as an http2 header object (pseudo-headers set by the caller). */
function requestHeaders(flat: readonly string[], out: OutgoingHttpHeaders): void {
  for (let i = 0; i < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase();
    const value = flat[i + 1] as string;
    if (name.charCodeAt(0) === 0x3a) continue; // pseudo-headers come from the request itself
    if (name === 'host') {
      out[HTTP2_HEADER_AUTHORITY] ??= value;
      continue;
    }
    if (CONNECTION_SPECIFIC.has(name)) continue;
    if (name === 'te' && value.trim().toLowerCase() !== 'trailers') continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = name === 'cookie' ? `${String(prev)}; ${value}` : [String(prev), value];
  }
}

/**
 * An http2 header object (pseudo-headers dropped) as a flat string list: a head's fields
 * (onHeaders) or trailers (onComplete).
 */
export function flatFields(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 0x3a) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(name, x);
    else out.push(name, String(v));
  }
  return out;
}

/** One request's stream and its handler: the state the stream's events need, no closures. */
class H2Exchange {
  done = false;
  stream: ClientHttp2Stream | undefined = undefined;
  gotHeaders = false;
  trailers: string[] | null = null;
  /**
   * DATA read before the 'response' event: node emits the head on the next tick but pushes the
   * DATA of the same read at once, so under load (HEADERS and DATA in one socket read) a chunk
   * can come first. Held here and passed on right after the head (docs/grpc.md).
   */
  early: Buffer[] | undefined = undefined;
  /** 'end' came before the head as well: the head completes the exchange */
  ended = false;
  /** the handler's way to undo a pause (its onData returned false) */
  readonly resume = (): void => {
    this.stream?.resume();
  };
  /** a gRPC call: its end must bring trailers (grpc-status), or the stream was cut */
  grpc = false;
  constructor(
    readonly origin: H2Origin,
    readonly handler: DispatchHandler,
    readonly body: unknown,
  ) {}

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.origin.streamDone();
    const s = this.stream;
    if (s !== undefined && !s.destroyed) s.close(NGHTTP2_CANCEL);
    this.handler.onError?.(err);
  }

  complete(trailers: string[] | null): void {
    if (this.done) return;
    this.done = true;
    this.origin.streamDone();
    this.handler.onComplete?.(trailers);
  }
}

function onResponse(
  this: ClientHttp2Stream & { [kEx]: H2Exchange },
  headers: IncomingHttpHeaders,
  flags: number,
): void {
  const x = this[kEx];
  if (x.done) return;
  const status = Number(headers[HTTP2_HEADER_STATUS]);
  if (status < 200) return; // 1xx: informational, dropped as on HTTP/1
  x.gotHeaders = true;
  let ok = x.handler.onHeaders?.(status, flatFields(headers), x.resume, '');
  const early = x.early;
  if (early !== undefined) {
    x.early = undefined;
    for (const chunk of early) {
      if (x.done) return;
      if (x.handler.onData?.(chunk) === false) ok = false;
    }
  }
  if (x.ended) {
    x.complete(x.trailers);
    return;
  }
  // END_STREAM on the head: a trailers-only answer (gRPC) or a bodiless one.
  if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
    x.complete(null);
    return;
  }
  if (ok === false) this.pause();
}

function onData(this: ClientHttp2Stream & { [kEx]: H2Exchange }, chunk: Buffer): void {
  const x = this[kEx];
  if (x.done) return;
  if (!x.gotHeaders) {
    (x.early ??= []).push(chunk);
    return;
  }
  if (x.handler.onData?.(chunk) === false) this.pause();
}

function onTrailers(this: ClientHttp2Stream & { [kEx]: H2Exchange }, trailers: IncomingHttpHeaders): void {
  // Trailers can arrive while data still waits in a paused stream: they complete it at 'end'.
  this[kEx].trailers = flatFields(trailers);
}

function onEnd(this: ClientHttp2Stream & { [kEx]: H2Exchange }): void {
  const x = this[kEx];
  // A gRPC answer that ends without trailers may be a stream cut (reset, its session gone):
  // 'close' tells, with the stream's RST code and the session's state.
  if (x.gotHeaders && (x.trailers !== null || !x.grpc)) x.complete(x.trailers);
  else x.ended = true;
}

function onClose(this: ClientHttp2Stream & { [kEx]: H2Exchange }): void {
  const x = this[kEx];
  if (x.done) return;
  const code = this.rstCode ?? NGHTTP2_NO_ERROR;
  // A gRPC answer whose trailers came late after all completes; one that ended without them
  // (its stream reset, its session gone, a server that just stopped) is no gRPC answer: failed
  // as a reset, so the stage ends the call with UNAVAILABLE in trailers (docs/grpc.md).
  if (x.ended && x.gotHeaders && x.trailers !== null) {
    x.complete(x.trailers);
    return;
  }
  x.fail(code !== NGHTTP2_NO_ERROR ? streamReset(code) : streamReset(NGHTTP2_CANCEL));
}

function onStreamError(this: ClientHttp2Stream & { [kEx]: H2Exchange }, err: Error): void {
  const x = this[kEx];
  // The peer's RST_STREAM surfaces as ERR_HTTP2_STREAM_ERROR: report it as the reset it is.
  if ((err as NodeJS.ErrnoException).code === 'ERR_HTTP2_STREAM_ERROR')
    x.fail(streamReset(this.rstCode ?? http2.constants.NGHTTP2_INTERNAL_ERROR));
  else x.fail(x.origin.sessionError ?? err);
}

const kEx = Symbol('remora.h2exchange');

/** The HTTP/2 client of one origin (`host:port`). */
export class H2Origin implements UpstreamPool {
  readonly stats = new H2Stats();
  /** why the current session failed, for streams that error because of it */
  sessionError: Error | undefined = undefined;
  private session: ClientHttp2Session | undefined = undefined;
  private closed = false;
  /** when the last stream finished (performance.now() ms), for the idle check */
  private idleSince = 0;

  /** One request is over: the origin is idle from now when it was the last. */
  streamDone(): void {
    if (--this.stats.running === 0) this.idleSince = performance.now();
  }

  constructor(
    readonly key: string,
    private readonly opts: H2OriginOptions,
  ) {}

  private open(transport?: Duplex): ClientHttp2Session {
    const o = this.opts;
    const key = this.key;
    const sep = key.lastIndexOf(':');
    const host = key.slice(0, sep).replace(/^\[|\]$/g, '');
    const port = Number(key.slice(sep + 1));
    const session = http2.connect(`http://${key}`, {
      createConnection: () =>
        transport ??
        net.connect({
          host,
          port,
          noDelay: true,
          ...(o.localAddress !== undefined ? { localAddress: o.localAddress } : {}),
        }),
    });
    this.session = session;
    this.sessionError = undefined;
    const timer = setTimeout(() => session.destroy(connectTimeout(key)), o.connectTimeout);
    timer.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      this.stats.connected++;
      session.once('close', () => this.stats.connected--);
    });
    const drop = () => {
      clearTimeout(timer);
      if (this.session === session) this.session = undefined;
    };
    session.on('error', (err: Error) => {
      this.sessionError = err;
      drop();
    });
    session.once('goaway', drop);
    session.once('close', drop);
    // No stream for idleTimeout: let it go (a new request opens another). Our own check, not
    // session.setTimeout: that one refreshes a timer on every frame read or written, a
    // measurable share of a gRPC call's CPU (docs/performance.md, gRPC cost).
    const idle = (): void => {
      if (session.closed || session.destroyed) return;
      const left =
        this.stats.running > 0 ? o.idleTimeout : this.idleSince + o.idleTimeout - performance.now();
      if (left > 0) {
        idleTimer = setTimeout(idle, Math.max(1, Math.ceil(left)));
        idleTimer.unref();
        return;
      }
      drop();
      session.close();
    };
    this.idleSince = performance.now();
    let idleTimer = setTimeout(idle, o.idleTimeout);
    idleTimer.unref();
    session.once('close', () => clearTimeout(idleTimer));
    return session;
  }

  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    const body = opts.body as BodySource | Buffer | string | null | undefined;
    const x = new H2Exchange(this, handler, body);
    this.stats.running++;
    if (this.closed) {
      x.fail(Object.assign(new Error('HTTP/2 client closed'), { code: 'UND_ERR_CLOSED' }));
      return false;
    }
    handler.onConnect?.((err?: Error) => x.fail(err ?? new Error('aborted')));
    if (x.done) return true;
    if (this.session === undefined && this.opts.connect !== undefined) {
      this.waiting.push([x, opts]);
      this.connectTransport();
      return true;
    }
    this.start(x, opts, this.session ?? this.open());
    return true;
  }

  /** The requests waiting for a transport (`connect`), and the one connection attempt they wait on. */
  private readonly waiting: [H2Exchange, DispatchOptions][] = [];
  private connecting = false;

  private connectTransport(): void {
    if (this.connecting) return;
    this.connecting = true;
    const timer = setTimeout(() => this.transportFailed(connectTimeout(this.key)), this.opts.connectTimeout);
    timer.unref();
    (this.opts.connect as () => Promise<Duplex>)().then(
      (t) => {
        clearTimeout(timer);
        if (!this.connecting) {
          t.destroy();
          return;
        }
        this.connecting = false;
        const session = this.open(t);
        for (const [x, o] of this.waiting.splice(0)) if (!x.done) this.start(x, o, session);
      },
      (err: Error) => {
        clearTimeout(timer);
        this.transportFailed(err);
      },
    );
  }

  private transportFailed(err: Error): void {
    if (!this.connecting) return;
    this.connecting = false;
    for (const [x] of this.waiting.splice(0)) x.fail(err);
  }

  private start(x: H2Exchange, opts: DispatchOptions, session: ClientHttp2Session): void {
    const body = x.body as BodySource | Buffer | string | null | undefined;
    const headers: OutgoingHttpHeaders = {
      [HTTP2_HEADER_METHOD]: opts.method,
      [HTTP2_HEADER_PATH]: opts.path,
      [HTTP2_HEADER_SCHEME]: 'http',
    };
    const flat = opts.headers;
    if (Array.isArray(flat)) requestHeaders(flat as string[], headers);
    headers[HTTP2_HEADER_AUTHORITY] ??= this.key;
    // gRPC needs `te: trailers` (its servers refuse a call without it); the HTTP core drops
    // `te` as a hop-by-hop field, so the HTTP/2 hop adds it back for gRPC.
    if (isGrpcContentType(headers['content-type'] as string | undefined)) {
      headers.te = 'trailers';
      x.grpc = true;
      // The call's deadline as it stands now (its own grpc-timeout, a shorter route timeout,
      // minus the time spent here): what the server gets to work with.
      const d =
        body !== null && typeof body === 'object' && !Buffer.isBuffer(body) ? body.deadline : undefined;
      if (d !== undefined) headers['grpc-timeout'] = formatGrpcTimeout(d - performance.now());
    }
    const hasBody = body !== null && body !== undefined;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: !hasBody });
    } catch (err) {
      // The session went away between the check and the request (GOAWAY just in): try a new one.
      if (this.session === session) this.session = undefined;
      if (this.opts.connect !== undefined) {
        this.waiting.push([x, opts]);
        this.connectTransport();
        return;
      }
      try {
        stream = (this.session ?? this.open()).request(headers, { endStream: !hasBody });
      } catch (e) {
        x.fail(e as Error);
        return;
      }
      void err;
    }
    x.stream = stream;
    const s = stream as ClientHttp2Stream & { [kEx]: H2Exchange };
    s[kEx] = x;
    s.on('response', onResponse);
    s.on('data', onData);
    s.on('trailers', onTrailers);
    s.on('end', onEnd);
    s.on('close', onClose);
    s.on('error', onStreamError);
    if (hasBody) {
      if (typeof body === 'string' || Buffer.isBuffer(body)) stream.end(body);
      else sendBody(x, body, stream);
    }
  }

  close(): Promise<void> {
    this.closed = true;
    const s = this.session;
    this.session = undefined;
    return s === undefined || s.closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => s.close(() => resolve()));
  }

  destroy(): Promise<void> {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
    return Promise.resolve();
  }
}

/**
 * The request body as the HTTP core hands it over (http/exchange.ts RequestBody: data, end,
 * error, pause and resume, nothing else of a Readable).
 */
interface BodySource {
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  /** a gRPC call's deadline (performance.now() ms), when the HTTP/2 stage knows one */
  readonly deadline?: number | undefined;
}

/** Copies the body into the upstream stream; its flow-control window pauses the client's. */
function sendBody(x: H2Exchange, body: BodySource, stream: ClientHttp2Stream): void {
  let ended = false;
  body.on('data', (chunk: Buffer) => {
    if (x.done || stream.destroyed) return;
    if (!stream.write(chunk)) {
      body.pause();
      stream.once('drain', () => body.resume());
    }
  });
  body.on('end', () => {
    ended = true;
    if (!stream.destroyed) stream.end();
  });
  body.on('error', () => x.fail(new Error('the client request body failed')));
  // The client went away mid-body (HTTP/2: its RST_STREAM): the upstream stream is cancelled.
  body.on('close', () => {
    if (!ended) x.fail(Object.assign(new Error('client request body cut'), { code: 'ECONNRESET' }));
  });
  body.resume();
}
