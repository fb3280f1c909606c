/**
 * The HTTP/2 server stage of a data listener (docs/grpc.md): h2c with prior knowledge, fed the
 * connections detection found starting with the HTTP/2 preface (tcp/detect.ts). Each stream is
 * one request: it becomes a RequestContext through the protocol seam (http/exchange.ts: this
 * file implements the response writer and the body source for a stream) and runs through the
 * listener's SAME composed layers, whose forwarder dispatches over the HTTP/2 pools.
 *
 * gRPC calls (`content-type: application/grpc*`) are a protocol of their own: the answers the
 * proxy gives itself are turned into gRPC terms here (HTTP 200, trailers-only, `grpc-status`,
 * `grpc-message`), whatever layer produced them; `grpc-timeout` is a deadline the stage
 * enforces; the call's status goes to the request series (`protocol="grpc"`, `grpc_status`).
 *
 * Hostile peers: the SETTINGS bound concurrent streams and the header list; nghttp2 bounds
 * CONTINUATION frames and invalid frames; a client that resets streams faster than
 * `maxResetsPerWindow` (CVE-2023-44487, rapid reset), or resets most of the streams it opens
 * at a lower rate (the ratio rule), gets GOAWAY ENHANCE_YOUR_CALM. What one connection can make
 * the proxy hold is bounded: the header lists of its open streams (`maxOpenHeaderBytes`) and the
 * answers waiting for a client that does not read (`maxBufferedBytes`); past either, the same
 * GOAWAY and the connection is dropped (docs/grpc.md, Hostile HTTP/2).
 */
import http2 from 'node:http2';
import type { Http2Session, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  BadRequestError,
  ClientAbortedError,
  GrpcDeadlineError,
  HeadersTooLargeError,
  Http2ProtocolError,
  IdleTimeoutError,
  PolicyDeniedError,
  RateLimitedError,
  RequestTimeoutError,
  TooManyHeadersError,
  UpstreamTimeoutError,
} from '../errors.js';
import type { ProxyError } from '../errors.js';
import {
  GRPC_STATUS,
  encodeGrpcMessage,
  isGrpcContentType,
  parseGrpcStatus,
  parseGrpcTimeout,
} from '../grpc/protocol.js';
import type { DownstreamResponse, RequestBody, ResponseOwner } from '../http/exchange.js';
import { filterRequestHeaders } from '../http/headers.js';
import type { RequestHeadInfo } from '../http/headers.js';
import { RequestContext } from '../http/layer.js';
import type { Handler, LocalAnswerDeps } from '../http/layer.js';
import { answerLocally } from '../http/local.js';
import { requestPath } from '../http/server.js';
import type { Logger } from '../log.js';
import type { Direction, DirectionMetrics, PeerMetrics } from '../metrics/proxy.js';
import { ERROR_HEADER } from '../rescue.js';
import { connectionOf } from '../tcp/connection.js';
import type { ConnectionInfo } from '../tcp/connection.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_NO_ERROR,
  NGHTTP2_FLAG_END_STREAM,
} = http2.constants;

export interface Http2StageOptions {
  readonly direction: Direction;
  readonly handler: Handler;
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, and nghttp2's bound on a decoded header block */
  readonly maxHeaderBytes: number;
  /** header fields per request, pseudo-headers not counted */
  readonly maxHeaders: number;
  readonly draining: () => boolean;
  /** SETTINGS_MAX_CONCURRENT_STREAMS (default 250) */
  readonly maxConcurrentStreams?: number;
  /** client resets of unfinished streams tolerated per window before GOAWAY (default 200) */
  readonly maxResetsPerWindow?: number;
  /** the rapid-reset window in ms (default 1000) */
  readonly resetWindowMs?: number;
  /**
   * The ratio rule: once this many streams have closed on a connection (default 100), more than
   * half of them reset by the client within `prematureResetMs` of opening → GOAWAY. The counts
   * are halved at 10× this many, so they describe the recent streams, not the lifetime.
   */
  readonly resetRatioMinStreams?: number;
  /** a client reset this soon after the stream opened is premature (default 1000 ms) */
  readonly prematureResetMs?: number;
  /** header bytes (RFC 7541 size: name + value + 32 per field) of the open streams (1 MiB) */
  readonly maxOpenHeaderBytes?: number;
  /** answer bytes written to streams and not yet taken by the client, per connection (4 MiB) */
  readonly maxBufferedBytes?: number;
  /**
   * A connection with no open stream and no frame for this long is closed with GOAWAY
   * (default 5 min: gRPC keeps connections for long on purpose, its keepalive PINGs count)
   */
  readonly idleTimeoutMs?: number;
}

export interface Http2Stage {
  /** Hands a detected HTTP/2 connection (preface unshifted, paused) to the HTTP/2 server. */
  serve(socket: Socket): void;
  /** GOAWAY to every session: no new stream, the ones in flight finish (drain). */
  closeIdle(): void;
  close(): void;
}

export const DEFAULT_MAX_CONCURRENT_STREAMS = 250;
export const DEFAULT_MAX_RESETS_PER_WINDOW = 200;
export const DEFAULT_RESET_WINDOW_MS = 1000;
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
export const DEFAULT_RESET_RATIO_MIN_STREAMS = 100;
export const DEFAULT_PREMATURE_RESET_MS = 1000;
/** 250 streams of 4 KiB of headers, or 64 at the 16 KiB list limit */
export const DEFAULT_MAX_OPEN_HEADER_BYTES = 1024 * 1024;
export const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/**
 * What nghttp2 itself may hold for one session, in MB (node's `maxSessionMemory`, default 10):
 * HPACK tables, stream state, the header block being decoded and data queued to send. The
 * queued data is what `maxBufferedBytes` bounds from our side; this is that plus 2 MB.
 */
export const MAX_SESSION_MEMORY_MB = 6;
/**
 * An answer stream whose client does not read also pins what its upstream stream may hold
 * (one flow-control window, 64 KiB): a blocked stream is charged that much on top.
 */
const BLOCKED_STREAM_CHARGE = 65_535;

/** Per session: the connection it came on and its reset count. */
interface SessionState {
  readonly conn: ConnectionInfo;
  resets: number;
  windowStart: number;
  calm: boolean;
  /** streams open now */
  open: number;
  /** streams closed, and those of them reset early by the client (the ratio rule) */
  closedStreams: number;
  earlyResets: number;
  /** header bytes of the open streams */
  headerBytes: number;
  /** answer streams whose last write was refused (the client is not reading) */
  readonly blocked: Set<ServerHttp2Stream>;
  /** what the connection was cut for, once it was */
  cut: string | undefined;
  /** streams started and PINGs received, for the idle check */
  activity: number;
}
const kState = Symbol('remora.h2session');
type StatefulSession = Http2Session & { [kState]?: SessionState };

/** The request body of one stream (http/exchange.ts RequestBody), counting what it passes. */
class StreamBody implements RequestBody {
  bytesReceived = 0;
  private sink: ((chunk: Buffer) => void) | undefined = undefined;
  /** a gRPC call's context and its own deadline (performance.now() ms), for `deadline` */
  ctx: RequestContext | undefined = undefined;
  grpcDeadline: number | undefined = undefined;
  constructor(private readonly stream: ServerHttp2Stream) {}

  /**
   * When a gRPC call must be over (performance.now() ms): the sooner of its `grpc-timeout` and
   * its route's `timeoutMs`; undefined when neither applies or the request is not gRPC. The
   * HTTP/2 client writes what is left of it as the upstream `grpc-timeout` when it sends the
   * call (a retry after a backoff sends less), so the server stops working for a caller gone.
   */
  get deadline(): number | undefined {
    const ctx = this.ctx;
    if (ctx === undefined) return undefined;
    let d = this.grpcDeadline;
    const t = ctx.route?.timeoutMs;
    if (t !== undefined && t > 0) {
      const r = ctx.startTime + t;
      if (d === undefined || r < d) d = r;
    }
    return d;
  }

  on(event: 'data', fn: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: string, fn: (arg: never) => void): this {
    if (event === 'data') {
      // One listener on the stream, whoever reads (a retry's attempt, the HTTP/1.1 client).
      if (this.sink === undefined) this.stream.on('data', (chunk: Buffer) => this.take(chunk));
      this.sink = fn as (chunk: Buffer) => void;
    } else {
      // Called on the body, as a Readable would: the HTTP/1.1 client's listeners read `this`.
      const bound = (fn as (this: StreamBody, arg?: unknown) => void).bind(this);
      (this.bound ??= new Map()).set(fn, bound);
      this.stream.on(event, bound);
    }
    return this;
  }
  private bound: Map<unknown, (arg?: unknown) => void> | undefined = undefined;
  private take(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    this.sink?.(chunk);
  }
  /**
   * The HTTP/1.1 upstream client (http1/connection.ts) lets go of a body it finished with, or
   * cuts it: a request carried over HTTP/2 for an HTTP/1.1 client reaches the app that way
   * (tunnel/origproto.ts).
   */
  off(event: string, fn: (arg: never) => void): this {
    if (event === 'data') {
      if (this.sink === fn) this.sink = () => undefined;
    } else {
      const bound = this.bound?.get(fn);
      if (bound !== undefined) {
        this.bound?.delete(fn);
        this.stream.off(event, bound);
      }
    }
    return this;
  }
  destroy(): this {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    return this;
  }
  pause(): this {
    this.stream.pause();
    return this;
  }
  resume(): this {
    this.stream.resume();
    return this;
  }
  get readableDidRead(): boolean {
    return this.stream.readableDidRead;
  }
  get destroyed(): boolean {
    return this.stream.destroyed;
  }
}

/**
 * The response to one stream (http/exchange.ts DownstreamResponse). The head is sent lazily
 * (at the first body bytes, at the end, or a microtask later), so an answer that is complete at
 * once goes out as one HEADERS frame with END_STREAM: gRPC's trailers-only form.
 */
class StreamResponse implements DownstreamResponse {
  headersSent = false;
  finished = false;
  private head: OutgoingHttpHeaders | undefined = undefined;
  private responded = false;
  private owner: ResponseOwner | undefined = undefined;
  private pendingTrailers: OutgoingHttpHeaders | undefined = undefined;
  /** a gRPC error answer the proxy gives itself, waiting for its message (the body) */
  private grpcError: { code: string; status: number } | undefined = undefined;
  bytesOut = 0;
  /** gRPC status seen in the answer (-1: none yet) */
  grpcStatus = -1;
  ctx: RequestContext | undefined = undefined;
  /** we reset the stream ourselves (not counted as a client reset) */
  localReset = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    readonly grpc: boolean,
    private readonly body: StreamBody | null,
  ) {}

  writeHead(status: number, _reason: string, headers: readonly string[]): void {
    if (this.headersSent) return;
    this.headersSent = true;
    let code: string | undefined;
    const h: OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = (headers[i] as string).toLowerCase();
      const value = headers[i + 1] as string;
      if (name === 'connection' || name === 'keep-alive' || name === 'transfer-encoding') continue;
      if (name === ERROR_HEADER) code = value;
      if (name === 'grpc-status') this.grpcStatus = parseGrpcStatus(value);
      const prev = h[name];
      if (prev === undefined) h[name] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else h[name] = [String(prev), value];
    }
    if (this.grpc && code !== undefined && status !== 200) {
      // The proxy's own answer (local.ts) to a gRPC call: in gRPC terms, its body the message.
      this.grpcError = { code, status };
      const ctx = this.ctx;
      if (ctx !== undefined) ctx.status = 200;
      return;
    }
    this.head = h;
    queueMicrotask(() => this.flush(false));
  }

  private flush(endStream: boolean): void {
    if (this.responded || this.stream.destroyed) return;
    const h = this.head;
    if (h === undefined) return;
    this.responded = true;
    try {
      // Trailers may follow (gRPC's always do): nghttp2 must know before the last DATA frame.
      // With none, node ends the stream with an empty DATA frame instead.
      this.stream.respond(h, { endStream, waitForTrailers: !endStream });
    } catch {
      this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  /** called when a write is refused: the connection's buffered-bytes budget is checked */
  onBlocked: ((stream: ServerHttp2Stream) => void) | undefined = undefined;
  onUnblocked: ((stream: ServerHttp2Stream) => void) | undefined = undefined;

  write(chunk: Buffer): boolean {
    if (this.grpcError !== undefined || this.stream.destroyed) return true;
    this.flush(false);
    this.bytesOut += chunk.length;
    if (this.stream.write(chunk)) return true;
    this.stream.once('drain', () => {
      this.onUnblocked?.(this.stream);
      this.owner?.responseDrained();
    });
    this.onBlocked?.(this.stream);
    return false;
  }

  end(last?: Buffer | string, trailers?: readonly string[] | null): void {
    if (this.finished) return;
    this.finished = true;
    const err = this.grpcError;
    if (err !== undefined) {
      this.answerGrpcError(err.code, err.status, typeof last === 'string' ? last : String(last ?? ''));
      return;
    }
    if (this.stream.destroyed) return;
    let t: OutgoingHttpHeaders | undefined;
    if (trailers !== null && trailers !== undefined && trailers.length > 0) {
      t = {};
      for (let i = 0; i < trailers.length; i += 2) {
        const name = (trailers[i] as string).toLowerCase();
        const v = trailers[i + 1] as string;
        if (name === 'grpc-status') this.grpcStatus = parseGrpcStatus(v);
        t[name] = v;
      }
    }
    const hasLast = last !== undefined && last.length > 0;
    if (!this.responded && !hasLast && this.grpc && this.head !== undefined) {
      // Complete at once: trailers-only (the head already holds grpc-status, or the trailers join it).
      if (t !== undefined) Object.assign(this.head, t);
      this.flush(true);
      this.noteStatus();
      return;
    }
    if (!this.responded && !hasLast && !this.grpc && t === undefined) {
      this.flush(true);
      this.noteStatus();
      return;
    }
    this.flush(false);
    this.pendingTrailers = t ?? {};
    this.stream.once('wantTrailers', () => this.sendTrailers());
    if (hasLast) this.bytesOut += last.length;
    this.stream.end(hasLast ? last : undefined);
    this.noteStatus();
  }

  private sendTrailers(): void {
    if (this.stream.destroyed) return;
    try {
      this.stream.sendTrailers(this.pendingTrailers ?? {});
    } catch {
      this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  /** A proxy error as a trailers-only gRPC answer (issue 12): HTTP 200, grpc-status, grpc-message. */
  private answerGrpcError(code: string, httpStatus: number, message: string): void {
    const status = grpcStatusForAnswer(code, httpStatus);
    this.grpcStatus = status;
    this.noteStatus();
    if (this.stream.destroyed) return;
    try {
      this.stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': status,
          'grpc-message': encodeGrpcMessage(message.trim()),
          [ERROR_HEADER]: code,
        },
        { endStream: true },
      );
    } catch {
      this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
    this.responded = true;
  }

  destroy(): void {
    const ctx = this.ctx;
    // A gRPC call cut after its head (a timeout, an upstream failure, the upstream stream reset
    // or its session gone): gRPC can still say why in trailers, UNAVAILABLE with the proxy's
    // code rather than a bare reset the client reads as INTERNAL. Only a client gone is a reset.
    if (this.grpc && this.headersSent && !this.finished && !this.stream.destroyed && ctx !== undefined) {
      const code = ctx.errorCode;
      if (code !== undefined && code !== ClientAbortedError.code) {
        this.finished = true;
        this.grpcStatus = grpcStatusForAnswer(code, 502);
        this.noteStatus();
        this.flush(false);
        this.pendingTrailers = {
          'grpc-status': this.grpcStatus,
          'grpc-message': encodeGrpcMessage(`${code}: the proxy ended the call`),
          [ERROR_HEADER]: code,
        };
        this.stream.once('wantTrailers', () => this.sendTrailers());
        this.stream.end();
        return;
      }
    }
    this.noteStatus();
    if (!this.stream.destroyed) {
      this.localReset = true;
      this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  attach(owner: ResponseOwner): void {
    this.owner = owner;
    this.stream.once('close', () => {
      this.noteStatus();
      owner.clientClosed();
    });
  }

  bytesMoved(): number {
    return this.bytesOut + (this.body?.bytesReceived ?? 0);
  }

  /**
   * The request counts under HTTP/2, or gRPC with the call's status: `peerMetrics` is swapped
   * to that series now, before the request is counted (the mesh may have set it to the chosen
   * endpoint's meanwhile; `as` keeps that peer).
   */
  noteStatus(): void {
    const ctx = this.ctx;
    if (ctx === undefined || ctx.endTime !== 0) return;
    const m = ctx.peerMetrics ?? (ctx.local?.metrics as PeerMetrics | undefined);
    if (m === undefined) return;
    // A request carried over HTTP/2 for its HTTP/1.1 client counts as HTTP/1, as on the near side.
    if (ctx.httpVersion !== '2') return;
    ctx.peerMetrics = this.grpc ? m.as('grpc', this.grpcStatus) : m.as('http2', -1);
  }
}

/** A gRPC call's status as its answer carried it (-1: not an HTTP/2 stream, or none seen). */
export function grpcStatusOf(response: DownstreamResponse): number {
  return response instanceof StreamResponse ? response.grpcStatus : -1;
}

/** The gRPC status for an answer the proxy gave itself, from its error code (DESIGN §8). */
export function grpcStatusForAnswer(code: string, httpStatus: number): number {
  switch (code) {
    case PolicyDeniedError.code:
      return GRPC_STATUS.PERMISSION_DENIED;
    case RateLimitedError.code:
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case RequestTimeoutError.code:
    case IdleTimeoutError.code:
    case UpstreamTimeoutError.code:
    case GrpcDeadlineError.code:
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case BadRequestError.code:
    case TooManyHeadersError.code:
    case HeadersTooLargeError.code:
    case Http2ProtocolError.code:
      return GRPC_STATUS.INTERNAL;
    default:
      return httpStatus === 403
        ? GRPC_STATUS.PERMISSION_DENIED
        : httpStatus === 504
          ? GRPC_STATUS.DEADLINE_EXCEEDED
          : GRPC_STATUS.UNAVAILABLE;
  }
}

// Reused across streams: filterRequestHeaders fills it synchronously and we read it at once.
const headInfo: RequestHeadInfo = { hasBody: false, upgrade: undefined, origProto: undefined };

export function createHttp2Stage(o: Http2StageOptions): Http2Stage {
  const local: LocalAnswerDeps = { metrics: o.metrics, draining: o.draining };
  const maxResets = o.maxResetsPerWindow ?? DEFAULT_MAX_RESETS_PER_WINDOW;
  const windowMs = o.resetWindowMs ?? DEFAULT_RESET_WINDOW_MS;
  const idleMs = o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const ratioMin = o.resetRatioMinStreams ?? DEFAULT_RESET_RATIO_MIN_STREAMS;
  const prematureMs = o.prematureResetMs ?? DEFAULT_PREMATURE_RESET_MS;
  const maxHeaderBytes = o.maxOpenHeaderBytes ?? DEFAULT_MAX_OPEN_HEADER_BYTES;
  const maxBuffered = o.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const server = http2.createServer({
    settings: {
      maxConcurrentStreams: o.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
      maxHeaderListSize: o.maxHeaderBytes,
      enablePush: false,
    },
    // pseudo-headers and the cookie crumbs count here too
    maxHeaderListPairs: o.maxHeaders + 8,
    // nghttp2 refuses streams beyond the limit with RST_STREAM REFUSED_STREAM; past this many
    // refusals or invalid frames the session is closed
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 100,
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
  });
  const sessions = new Set<Http2Session>();

  server.on('session', (session: StatefulSession) => {
    const socket = session.socket as Socket;
    const conn = connectionOf(socket);
    if (conn === undefined) {
      session.destroy();
      return;
    }
    const state: SessionState = {
      conn,
      resets: 0,
      windowStart: performance.now(),
      calm: false,
      open: 0,
      closedStreams: 0,
      earlyResets: 0,
      headerBytes: 0,
      blocked: new Set(),
      cut: undefined,
      activity: 0,
    };
    session[kState] = state;
    sessions.add(session);
    // An idle connection (no stream open, none started, no PING for idleMs to 1.25 × idleMs) is
    // let go: clients reconnect when they need to. Our own check every idleMs / 4, not
    // session.setTimeout, which refreshes a timer on every frame (docs/performance.md, gRPC cost).
    const step = Math.max(1, Math.ceil(idleMs / 4));
    let seen = 0;
    let quiet = 0;
    const idle = (): void => {
      if (session.destroyed || session.closed) return;
      if (state.open > 0 || state.activity !== seen) {
        seen = state.activity;
        quiet = 0;
      } else if (++quiet >= 4) {
        session.close();
        return;
      }
      idleTimer = setTimeout(idle, step);
      idleTimer.unref();
    };
    let idleTimer = setTimeout(idle, step);
    idleTimer.unref();
    session.on('ping', () => state.activity++);
    session.once('close', () => {
      clearTimeout(idleTimer);
      sessions.delete(session);
    });
    session.on('error', () => undefined);
    if (o.draining()) session.close();
  });

  server.on(
    'stream',
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => {
      const session = stream.session as StatefulSession | undefined;
      const state = session?.[kState];
      if (state === undefined) {
        stream.close(NGHTTP2_INTERNAL_ERROR);
        return;
      }
      stream.on('error', () => undefined);
      onStream(stream, headers, flags, raw, state, session as StatefulSession);
    },
  );

  const onStream = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    raw: string[],
    state: SessionState,
    session: StatefulSession,
  ): void => {
    const conn = state.conn;
    const method = headers[':method'] ?? '';
    const rawPath = headers[':path'];
    const hasBody = (flags & NGHTTP2_FLAG_END_STREAM) === 0;
    const grpc = isGrpcContentType(headers['content-type'] as string | undefined);
    const body = hasBody ? new StreamBody(stream) : null;
    const response = new StreamResponse(stream, grpc, body);
    const opened = performance.now();
    let headerBytes = 0;
    for (let i = 0; i < raw.length; i += 2)
      headerBytes += (raw[i] as string).length + (raw[i + 1] as string).length + 32;
    state.open++;
    state.headerBytes += headerBytes;
    state.activity++;
    stream.once('close', () => {
      state.open--;
      state.headerBytes -= headerBytes;
      state.blocked.delete(stream);
      // Streams closed because their session is going away (its error, GOAWAY) are no resets.
      if (session.destroyed || session.closed) return;
      state.closedStreams++;
      if (state.closedStreams >= 10 * ratioMin) {
        // the ratio rule speaks of the recent streams: a long good past buys no credit
        state.closedStreams >>= 1;
        state.earlyResets >>= 1;
      }
      // Rapid reset: a stream the client reset before its answer was done counts.
      if (response.localReset || stream.rstCode === NGHTTP2_NO_ERROR || response.finished) return;
      countReset(state, session, performance.now() - opened < prematureMs);
    });
    if (state.headerBytes > maxHeaderBytes) {
      cut(
        state,
        session,
        'header_budget',
        new Http2ProtocolError(
          `the open streams' header lists passed ${maxHeaderBytes} bytes on one connection`,
        ),
        { header_bytes: state.headerBytes },
      );
      return;
    }
    response.onBlocked = (s) => {
      state.blocked.add(s);
      let held = 0;
      for (const b of state.blocked) held += b.writableLength + BLOCKED_STREAM_CHARGE;
      if (held > maxBuffered)
        cut(
          state,
          session,
          'buffer_budget',
          new Http2ProtocolError(
            `${held} bytes of answers wait for a client that does not read (more than ${maxBuffered})`,
          ),
          { blocked_streams: state.blocked.size, buffered_bytes: held },
        );
    };
    response.onUnblocked = (s) => state.blocked.delete(s);
    // Flat fields as policy and the upstream see them: pseudo-headers out, :authority as host.
    const fields: string[] = [];
    let host = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (name.charCodeAt(0) === 0x3a) continue;
      if (name === 'host') host = true;
      fields.push(name, raw[i + 1] as string);
    }
    const authority = headers[':authority'];
    if (!host && typeof authority === 'string') fields.push('host', authority);
    const upstream: string[] = [];
    headInfo.hasBody = false;
    headInfo.upgrade = undefined;
    headInfo.origProto = undefined;
    filterRequestHeaders(fields, upstream, headInfo);
    const path = method === 'CONNECT' || rawPath === undefined ? undefined : requestPath(rawPath);
    // An HTTP/1.1 request a peer proxy carried over HTTP/2 (tunnel/origproto.ts): honoured only
    // on the inbound side and from a peer that proved its identity through the tunnel; its
    // version then says HTTP/1.1, and the forwarder takes the HTTP/1.1 pools to the app.
    const version =
      headInfo.origProto !== undefined && o.direction === 'inbound' && conn.peerIdentity !== undefined
        ? downgradedVersion(headInfo.origProto)
        : '2';
    const ctx = new RequestContext(
      o.direction,
      response,
      body,
      method,
      typeof path === 'string' ? path : (rawPath ?? ''),
      fields,
      version,
      performance.now(),
      conn,
      upstream,
      hasBody,
      local,
    );
    response.ctx = ctx;
    if (grpc && body !== null) body.ctx = ctx;
    response.noteStatus();
    if (typeof path !== 'string') {
      answerLocally(
        ctx,
        path ?? new BadRequestError(`${method === 'CONNECT' ? 'CONNECT' : 'no :path'} on HTTP/2`),
      );
      return;
    }
    if (grpc) {
      const ms = parseGrpcTimeout(headers['grpc-timeout'] as string | undefined);
      if (ms !== undefined) {
        deadline(ctx, ms);
        if (body !== null) body.grpcDeadline = ctx.startTime + ms;
      }
    }
    o.handler(ctx);
  };

  /** The call's own deadline: DEADLINE_EXCEEDED when it passes (the forwarder cancels upstream). */
  const deadline = (ctx: RequestContext, ms: number): void => {
    const t = setTimeout(expire, Math.max(1, Math.ceil(ms)), ctx, ms);
    ctx.onDone(() => clearTimeout(t));
  };

  const countReset = (state: SessionState, session: StatefulSession, premature: boolean): void => {
    const now = performance.now();
    if (now - state.windowStart > windowMs) {
      state.windowStart = now;
      state.resets = 0;
    }
    state.resets++;
    if (premature) state.earlyResets++;
    if (state.resets > maxResets) {
      cut(
        state,
        session,
        'rate',
        new Http2ProtocolError(`more than ${maxResets} stream resets in ${windowMs} ms (rapid reset)`),
        { resets: state.resets },
      );
    } else if (state.closedStreams >= ratioMin && state.earlyResets * 2 > state.closedStreams) {
      cut(
        state,
        session,
        'ratio',
        new Http2ProtocolError(
          `${state.earlyResets} of the last ${state.closedStreams} streams reset by the client within ${prematureMs} ms (rapid reset)`,
        ),
        { resets: state.earlyResets, streams: state.closedStreams },
      );
    }
  };

  /**
   * GOAWAY ENHANCE_YOUR_CALM, then the connection is dropped: a rapid-reset rule (`rate`,
   * `ratio`) or a memory budget (`header_budget`, `buffer_budget`) was passed. Logged once per
   * connection, `http2_rapid_reset` or `http2_memory_limit`.
   */
  const cut = (
    state: SessionState,
    session: StatefulSession,
    rule: 'rate' | 'ratio' | 'header_budget' | 'buffer_budget',
    err: Http2ProtocolError,
    detail: Record<string, number>,
  ): void => {
    if (state.calm) return;
    state.calm = true;
    state.cut = rule;
    o.log.warn(
      {
        event: rule === 'rate' || rule === 'ratio' ? 'http2_rapid_reset' : 'http2_memory_limit',
        code: err.code,
        rule,
        direction: o.direction,
        peer: `${state.conn.peerAddress}:${state.conn.peerPort}`,
        ...detail,
      },
      err.message,
    );
    // Regression: goaway() on a session already destroyed throws (ERR_HTTP2_INVALID_SESSION),
    // uncaught, out of a stream's 'close' handler: it took the engine down under h2spec.
    if (session.destroyed) return;
    try {
      session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    } catch {
      session.destroy();
      return;
    }
    // Give the GOAWAY a moment to leave, then drop whatever is still open.
    setTimeout(() => session.destroy(), 100).unref();
  };

  return {
    serve: (socket) => {
      // No resume: the session reads the unshifted preface from the socket's buffer itself
      // (on the next tick); a flowing socket would hand it to nobody.
      server.emit('connection', socket);
    },
    closeIdle: () => {
      for (const s of sessions) if (!s.closed && !s.destroyed) s.close();
    },
    close: () => {
      for (const s of sessions) s.destroy();
      sessions.clear();
      server.close();
    },
  };
}

/** The version an `x-remora-orig-proto` value names; anything else is not a downgrade ('2'). */
function downgradedVersion(value: string): string {
  const v = value.trim();
  return v === 'HTTP/1.1' ? '1.1' : v === 'HTTP/1.0' ? '1.0' : '2';
}

function expire(ctx: RequestContext, ms: number): void {
  const err: ProxyError = new GrpcDeadlineError(ctx.destinationKey, ms);
  ctx.abort(err);
}
