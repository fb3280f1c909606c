/**
 * One upstream HTTP/1.1 connection on the codec (issue 11: the upstream client split into
 * codec / connection / pool; the pool is pool.ts). A connection runs one exchange at a time,
 * never pipelined: it writes the request head and streams the request body with backpressure,
 * reads the response with the codec's ResponseReader (strict heads, Content-Length, chunked with
 * trailers, close-delimited, 1xx skipped, HEAD/204/304, 101 to an Upgrade), and hands the
 * handler (http/dispatch.ts) views of the socket's own Buffers.
 *
 * Per request this allocates the ClientRequest (its state and its `abort`), the raw header
 * views the handler contract asks for, and the head string; listeners, the resume function
 * and the timer link are per connection. Timers (connect and idle) are one shared wheel.
 *
 * Errors: a connect failure keeps the socket's errno error (rescue.ts: 503
 * RMR_UPSTREAM_CONNECT), a connect timeout is ConnectTimeoutError (code UND_ERR_CONNECT_TIMEOUT,
 * as undici's: 504, and the forwarder retries it as a connect failure), a connection that closed
 * before a complete response is UpstreamResetError (502 RMR_UPSTREAM_RESET, retryable as a
 * reset), a malformed response is the codec's Http1Error (502 RMR_HTTP1_*).
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { UpstreamResetError } from '../errors.js';
import { NO_FIELDS } from '../http/dispatch.js';
import type { DispatchHandler, RequestBody } from '../http/dispatch.js';
import { TimerWheel, WheelTimer, systemClock } from '../tcp/wheel.js';
import { lastChunkText } from './encode.js';
import { BODY_CLOSE, BODY_INFORMATIONAL, BODY_TUNNEL, keepAlive } from './framing.js';
import { F_KEEP_ALIVE } from './head.js';
import type { HeadLimits } from './head.js';
import { R_DATA, R_END, R_HEAD, ResponseReader } from './reader.js';
import { SlabReader } from './readslab.js';

const EMPTY = Buffer.alloc(0);
/** onComplete without a trailer section: empty, as undici reports it (never null: its handlers parse it) */
const NO_TRAILERS = Object.freeze([]) as unknown as string[];
/** undici's keepAliveTimeoutThreshold: a server's announced timeout is trusted minus this */
const KEEP_ALIVE_MARGIN_MS = 2_000;
const KEEP_ALIVE_TIMEOUT = /(?:^|[\s,;])timeout\s*=\s*(\d+)/i;

// A server sends the same Keep-Alive value on every response: the last one's reading is kept
// (one string compare instead of the regex and a number conversion, ~1,000 instructions).
let lastKeepAlive = '';
let lastKeepAliveMs = NaN;

/** The idle time a `Keep-Alive` value allows, in ms less undici's margin; NaN without `timeout=`. */
function keepAliveMs(value: string): number {
  if (value === lastKeepAlive) return lastKeepAliveMs;
  const m = KEEP_ALIVE_TIMEOUT.exec(value);
  const ms = m === null ? NaN : Number(m[1]) * 1000 - KEEP_ALIVE_MARGIN_MS;
  lastKeepAlive = value;
  lastKeepAliveMs = ms;
  return ms;
}

/**
 * Idle connections whose socket still holds the event loop: the wheel's next tick lets go of
 * those still idle then. A connection reused within the tick never toggles its handle: ref()
 * and unref() are two calls into C++, ~1,100 instructions per request together (counted:
 * docs/performance.md). So an idle pooled connection never keeps a process alive for more than
 * a tick, and one with a request running always does.
 */
let toUnref: ClientConnection[] = [];

function unrefIdle(): void {
  if (toUnref.length === 0) return;
  const q = toUnref;
  toUnref = [];
  for (let i = 0; i < q.length; i++) (q[i] as ClientConnection).letGo();
}

/** Connect and idle timeouts of every upstream connection: one coarse wheel, 250 ms ticks. */
export const clientWheel = new TimerWheel(250, 64, systemClock, unrefIdle);

/**
 * Opens the transport of a connection (the mesh's mTLS tunnel); the socket comes connected.
 * A connector that can read through `reader` (its `onread` given to `tls.connect`/`net.connect`,
 * its `sink` as it was when the socket is handed on) says so with `slab: true`; otherwise the
 * connection reads the socket with 'data'.
 */
export type Connector = (
  done: (err: Error | null, socket?: Socket, slab?: boolean) => void,
  reader?: SlabReader,
) => void;

/** The connection did not open within the connect timeout (undici's code, see above). */
export class ConnectTimeoutError extends Error {
  readonly code = 'UND_ERR_CONNECT_TIMEOUT';
  constructor(ms: number) {
    super(`connect timed out after ${ms} ms`);
    this.name = 'ConnectTimeoutError';
  }
}

/** The handler's abort() without a reason. */
export class RequestAbortedError extends Error {
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('request aborted');
    this.name = 'RequestAbortedError';
  }
}

/** What a connection and its requests need from their pool (pool.ts). */
export interface ConnectionOwner {
  readonly host: string;
  readonly port: number;
  /** `host:port`, for error messages */
  readonly target: string;
  readonly keepAliveTimeout: number;
  readonly connectTimeout: number;
  readonly localAddress: string | undefined;
  readonly connector: Connector | undefined;
  readonly limits: HeadLimits;
  readonly closing: boolean;
  connectedCount: number;
  pendingCount: number;
  runningCount: number;
  /** starts pending `r` on idle connection `c` */
  run(c: ClientConnection, r: ClientRequest): void;
  /** opens a connection for pending `r` */
  connectFor(r: ClientRequest): void;
  /** `c` is idle again: the next queued request, or the idle list */
  release(c: ClientConnection): void;
  /** a queued request was aborted */
  unqueue(r: ClientRequest): void;
  /** `c` is gone (closed, or handed over by an upgrade) */
  forget(c: ClientConnection): void;
}

const kReq = Symbol('remora.clientRequest');
type Body = RequestBody & { [kReq]?: ClientRequest };

function onBodyData(this: Body, chunk: Buffer | string): void {
  this[kReq]?.bodyData(chunk);
}
function onBodyEnd(this: Body): void {
  this[kReq]?.bodyEnd();
}
function onBodyError(this: Body, err: Error): void {
  this[kReq]?.bodyFailed(err);
}
function onBodyClose(this: Body): void {
  this[kReq]?.bodyClose();
}

/** One request from dispatch to its end. */
export class ClientRequest {
  conn: ClientConnection | undefined = undefined;
  done = false;
  /** onConnect was called (once, however many connections the request sees) */
  started = false;
  /** the stale keep-alive retry was spent */
  retried = false;
  /** the whole request went out */
  sent: boolean;
  private headSent = false;
  private listening = false;
  private waitingDrain = false;
  readonly abort = (err?: Error): void => this.aborted(err ?? new RequestAbortedError());

  constructor(
    readonly owner: ConnectionOwner,
    readonly handler: DispatchHandler,
    /** the encoded head (latin1), through its empty line */
    readonly head: string,
    readonly body: Body | Buffer | null,
    readonly chunked: boolean,
    readonly method: string,
    readonly upgrade: boolean,
    /** may be sent again after a stale keep-alive connection (bodyless and idempotent) */
    readonly retryable: boolean,
  ) {
    this.sent = body === null;
  }

  private aborted(err: Error): void {
    if (this.done) return;
    this.done = true;
    const c = this.conn;
    this.conn = undefined;
    // On a connection, bytes of this exchange may be on the wire: that connection is lost.
    if (c !== undefined) c.abandon();
    else this.owner.unqueue(this);
    this.stopBody(true);
    this.handler.onError?.(err);
  }

  /** Fails the request; the caller has taken it off its connection. */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.conn = undefined;
    this.stopBody(true);
    this.handler.onError?.(err);
  }

  /** Writes the head, and the body or starts streaming it. */
  send(c: ClientConnection): void {
    const s = c.socket as Socket;
    const body = this.body;
    if (body === null) {
      this.headSent = true;
      s.write(this.head, 'latin1');
      return;
    }
    if (Buffer.isBuffer(body)) {
      this.headSent = true;
      s.cork();
      s.write(this.head, 'latin1');
      if (this.chunked) s.write(`${body.length.toString(16)}\r\n`, 'latin1');
      s.write(body);
      if (this.chunked) s.write('\r\n0\r\n\r\n', 'latin1');
      s.uncork();
      this.sent = true;
      return;
    }
    if (body.destroyed) {
      c.detach();
      this.fail(
        new UpstreamResetError(this.owner.target, { cause: new Error('the request body was aborted') }),
      );
      c.settle(true); // nothing was written
      return;
    }
    // The head waits for the first body bytes: a body the client botches before its first
    // byte (a bad chunk size) then sends nothing upstream at all.
    this.listening = true;
    body[kReq] = this;
    body.on('data', onBodyData);
    body.on('end', onBodyEnd);
    body.on('error', onBodyError);
    body.on('close', onBodyClose);
    body.resume();
  }

  /** @internal */
  bodyData(chunk: Buffer | string): void {
    const c = this.conn;
    if (c === undefined) return;
    const s = c.socket as Socket;
    s.cork();
    if (!this.headSent) {
      this.headSent = true;
      s.write(this.head, 'latin1');
    }
    let ok: boolean;
    if (this.chunked) {
      const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      s.write(`${n.toString(16)}\r\n`, 'latin1');
      s.write(chunk);
      ok = s.write('\r\n', 'latin1');
    } else {
      ok = s.write(chunk);
    }
    s.uncork();
    if (!ok && !this.waitingDrain) {
      // Backpressure from the upstream: the client's body waits until the socket drains.
      this.waitingDrain = true;
      (this.body as Body).pause();
      c.waitDrain();
    }
  }

  /** @internal the upstream socket drained */
  drained(): void {
    this.waitingDrain = false;
    if (this.listening) (this.body as Body).resume();
  }

  /** @internal */
  bodyEnd(): void {
    const c = this.conn;
    this.stopBody(false);
    this.sent = true;
    if (c === undefined) return;
    const s = c.socket as Socket;
    // The client's trailer section goes on after a chunked body (filtered by the server stage).
    const last = this.chunked ? lastChunkText((this.body as Body).trailers) : '';
    if (this.headSent) {
      if (this.chunked) s.write(last, 'latin1');
    } else {
      this.headSent = true;
      s.write(this.chunked ? `${this.head}${last}` : this.head, 'latin1');
    }
  }

  /** @internal closed without 'end': the client went away mid-body */
  bodyClose(): void {
    if (!this.sent)
      this.bodyFailed(
        new UpstreamResetError(this.owner.target, { cause: new Error('the request body was aborted') }),
      );
  }

  /** @internal */
  bodyFailed(err: Error): void {
    const c = this.conn;
    this.stopBody(false);
    if (c !== undefined) {
      c.detach();
      // Before the head nothing was written: the connection is as good as idle.
      if (this.headSent) c.destroy();
      else c.settle(true);
    }
    this.fail(err);
  }

  /**
   * Stops reading the body. `destroy`: the request ended early; else the rest is drained to
   * nowhere, so the client's connection can carry on. A body never read is left alone (a
   * retry may still send it).
   */
  stopBody(destroy: boolean): void {
    const body = this.body;
    if (body === null || Buffer.isBuffer(body) || !this.listening) return;
    this.listening = false;
    if (body[kReq] === this) body[kReq] = undefined;
    body.off('data', onBodyData);
    body.off('end', onBodyEnd);
    body.off('error', onBodyError);
    body.off('close', onBodyClose);
    if (this.sent) return;
    if (destroy) body.destroy();
    else body.resume();
  }
}

const C_CONNECTING = 0;
const C_IDLE = 1;
const C_BUSY = 2;
const C_CLOSED = 3;

export class ClientConnection extends WheelTimer {
  socket: Socket | undefined = undefined;
  req: ClientRequest | undefined = undefined;
  /** responses completed on this connection: a reused connection may be a stale one */
  served = 0;
  connected = false;
  idleSince = 0;
  /** ms this connection may stay idle (the server's Keep-Alive timeout may shorten it) */
  idleMs: number;
  private state = C_CONNECTING;
  private readonly reader: ResponseReader;
  private error: Error | undefined = undefined;
  /** a response byte arrived for the running exchange */
  private answered = false;
  private reuse = true;
  private closeDelimited = false;
  private paused = false;
  private stash: Buffer | undefined = undefined;
  private stashAt = 0;
  private eof = false;
  private inCall = false;
  private resumeAsked = false;
  private drainListening = false;
  /** the socket holds the event loop (a new socket does): false once an idle tick let go of it */
  private holds = true;
  /** listed in toUnref */
  private letting = false;
  readonly resume = (): void => this.resumed();
  private readonly onDrain = (): void => this.drained();
  private readonly onBytes = (chunk: Buffer): void => this.bytes(chunk);
  /** the reads of a socket we connected ourselves (net's onread, slab buffers); else 'data' */
  private slabReader: SlabReader | undefined = undefined;
  private readonly onEnd = (): void => this.ended();
  private readonly onError = (err: Error): void => void (this.error ??= err);
  private readonly onClose = (): void => this.closed();

  constructor(
    readonly owner: ConnectionOwner,
    /** the request this connection was opened for (until it has the connection) */
    private first: ClientRequest | undefined,
  ) {
    super();
    this.idleMs = owner.keepAliveTimeout;
    this.reader = new ResponseReader(owner.limits);
    clientWheel.arm(this, owner.connectTimeout);
    const connector = owner.connector;
    // Reads bypass the Readable (readslab.ts): on our own sockets always, on a connector's (the
    // mesh tunnel's TLS socket) when it takes the reader; else they are read with 'data'.
    const rd = new SlabReader(this.onBytes);
    this.slabReader = rd;
    if (connector === undefined) {
      // Half-open allowed: a close-delimited body ends on our terms.
      const s = net.connect({
        onread: rd.onread,
        host: owner.host,
        port: owner.port,
        noDelay: true,
        allowHalfOpen: true,
        ...(owner.localAddress !== undefined ? { localAddress: owner.localAddress } : {}),
      });
      this.attach(s);
      s.once('connect', () => this.opened());
    } else {
      connector((err, s, slab) => {
        if (this.state === C_CLOSED) {
          s?.destroy(); // timed out meanwhile
          return;
        }
        if (err !== null || s === undefined) {
          this.error = err ?? new Error('no socket');
          this.closed();
          return;
        }
        if (slab !== true) this.slabReader = undefined;
        this.attach(s);
        if (slab !== true) s.resume();
        this.opened();
      }, rd);
    }
  }

  private attach(s: Socket): void {
    this.socket = s;
    if (this.slabReader === undefined) s.on('data', this.onBytes);
    s.on('end', this.onEnd);
    s.on('error', this.onError);
    s.once('close', this.onClose);
  }

  /**
   * The wheel: a connect timeout, or a look at the idle time. Once connected the timer stays
   * armed (for at most idleMs) instead of being cancelled and armed again per request: a busy
   * connection re-arms, an idle one is closed when its idle time is up or re-arms for the rest.
   */
  expire(now: number): void {
    const st = this.state;
    if (st === C_CONNECTING) {
      this.error = new ConnectTimeoutError(this.owner.connectTimeout);
      if (this.socket !== undefined) this.socket.destroy();
      else this.closed();
    } else if (st === C_IDLE) {
      const left = clientWheel.remaining(this.idleSince, this.idleMs, now);
      if (left === 0) this.destroy();
      else clientWheel.arm(this, Math.min(left, this.idleMs));
    } else if (st === C_BUSY) {
      clientWheel.arm(this, this.idleMs);
    }
  }

  destroy(): void {
    if (this.socket !== undefined) this.socket.destroy();
    else if (this.state !== C_CLOSED) this.closed();
  }

  private opened(): void {
    clientWheel.arm(this, this.idleMs); // from now on: the idle look (expire)
    this.connected = true;
    this.state = C_IDLE;
    const o = this.owner;
    o.connectedCount++;
    const r = this.first as ClientRequest;
    this.first = undefined;
    if (r.done) {
      o.pendingCount--; // aborted while it waited for this connection
      o.release(this);
    } else {
      o.run(this, r);
    }
  }

  /**
   * Idle now: the wheel closes it after its idle time. Its timer is armed already, due within
   * idleMs; re-armed only when the server's Keep-Alive just shortened idleMs below that.
   */
  parked(): void {
    this.state = C_IDLE;
    if (this.holds && !this.letting) {
      this.letting = true;
      toUnref.push(this);
    }
    const w = clientWheel;
    if (this.wheelSlot === -1 || this.wheelDue > w.now + this.idleMs) w.arm(this, this.idleMs);
    // after arm: a stopped wheel reads the clock when it starts again
    this.idleSince = w.now;
  }

  /** @internal the wheel's tick: an idle connection stops holding the event loop */
  letGo(): void {
    this.letting = false;
    const s = this.socket;
    if (this.state === C_IDLE && this.holds && s !== undefined) {
      this.holds = false;
      s.unref();
    }
  }

  /** Is this idle connection still worth reusing at `now`? */
  fresh(now: number): boolean {
    return this.state === C_IDLE && !(this.socket as Socket).destroyed && now - this.idleSince < this.idleMs;
  }

  /** Starts `r` on this connected, idle connection; false when onConnect aborted it at once. */
  start(r: ClientRequest): boolean {
    if (!r.started) {
      r.started = true;
      r.handler.onConnect?.(r.abort);
      if (r.done) {
        this.state = C_IDLE;
        return false; // nothing was written: still usable
      }
    }
    const o = this.owner;
    o.runningCount++;
    this.state = C_BUSY;
    this.req = r;
    r.conn = this;
    this.answered = false;
    this.reuse = !r.upgrade;
    this.closeDelimited = false;
    this.idleMs = o.keepAliveTimeout;
    this.reader.expect(r.method, r.upgrade);
    if (!this.holds) {
      this.holds = true;
      (this.socket as Socket).ref();
    }
    r.send(this);
    return true;
  }

  /** Takes the running request off this connection. */
  detach(): ClientRequest | undefined {
    const r = this.req;
    if (r !== undefined) {
      this.req = undefined;
      r.conn = undefined;
      this.owner.runningCount--;
    }
    return r;
  }

  /** The running request was aborted: this connection cannot be reused. */
  abandon(): void {
    this.detach();
    this.destroy();
  }

  /** @internal the request body waits for the socket to drain */
  waitDrain(): void {
    if (this.drainListening) return;
    this.drainListening = true;
    (this.socket as Socket).once('drain', this.onDrain);
  }

  private drained(): void {
    this.drainListening = false;
    this.req?.drained();
  }

  private bytes(chunk: Buffer): void {
    if (this.req === undefined) {
      // Bytes nobody asked for (on an idle connection, or after an abort): never reuse it.
      this.destroy();
      return;
    }
    this.answered = true;
    if (this.paused) {
      this.keep(chunk, 0);
      return;
    }
    this.parse(chunk, 0);
  }

  private keep(chunk: Buffer, off: number): void {
    const s = this.stash;
    if (s === undefined) {
      this.stash = chunk;
      this.stashAt = off;
    } else {
      this.stash = Buffer.concat([s.subarray(this.stashAt), chunk.subarray(off)]);
      this.stashAt = 0;
    }
  }

  /** Reads `chunk` from `off` for the running exchange until it is used up, paused or over. */
  private parse(chunk: Buffer, off: number): void {
    const rd = this.reader;
    try {
      for (;;) {
        const r = this.req;
        if (r === undefined) return;
        const ev = rd.next(chunk, off);
        off = rd.pos;
        if (ev === R_DATA) {
          const s = rd.dataStart;
          const e = rd.dataEnd;
          const part = s === 0 && e === chunk.length ? chunk : chunk.subarray(s, e);
          this.inCall = true;
          this.resumeAsked = false;
          const go = r.handler.onData?.(part) ?? true;
          this.inCall = false;
          if (this.req !== r) return; // aborted from onData
          if (!go && !this.resumeAsked) {
            this.pauseAt(chunk, off);
            return;
          }
        } else if (ev === R_HEAD) {
          const body = rd.body;
          if (body === BODY_INFORMATIONAL) continue;
          if (body === BODY_TUNNEL) {
            this.upgraded(r, chunk, off);
            return;
          }
          if (!this.headed(r, body)) return;
          if (this.paused) {
            this.pauseAt(chunk, off);
            return;
          }
        } else if (ev === R_END) {
          this.complete(r, off < chunk.length);
          return;
        } else {
          return;
        }
      }
    } catch (err) {
      this.broken(err as Error);
    }
  }

  /** Hands a final response head to the handler; false when it aborted the request. */
  private headed(r: ClientRequest, body: number): boolean {
    const h = this.reader.head;
    if (!keepAlive(h, body)) this.reuse = false;
    this.closeDelimited = body === BODY_CLOSE;
    for (let i = 0; i < h.count; i++) if (h.kinds[i] === F_KEEP_ALIVE) this.keepAliveField(h.value(i));
    const handler = r.handler;
    // The fields as strings (slices of the head decoded once) only for a handler that reads them.
    const raw = handler.takesFields === true ? NO_FIELDS : h.toArray();
    this.inCall = true;
    this.resumeAsked = false;
    const go = handler.onHeaders?.(h.status, raw, this.resume, h.reasonPhrase(), h) ?? true;
    this.inCall = false;
    if (this.req !== r) return false;
    if (!go && !this.resumeAsked) this.paused = true;
    return true;
  }

  /** `Keep-Alive: timeout=N` shortens this connection's idle time (by undici's margin). */
  private keepAliveField(value: string): void {
    const ms = keepAliveMs(value);
    if (Number.isNaN(ms)) return;
    if (ms <= 0) this.reuse = false;
    else if (ms < this.idleMs) this.idleMs = ms;
  }

  private pauseAt(chunk: Buffer, off: number): void {
    this.paused = true;
    if (off < chunk.length) this.keep(chunk, off);
    (this.socket as Socket).pause();
  }

  private resumed(): void {
    if (this.inCall) {
      // resume() from inside the handler's own callback: the running loop carries on
      this.resumeAsked = true;
      return;
    }
    if (!this.paused || this.req === undefined) return;
    this.paused = false;
    const s = this.stash;
    const at = this.stashAt;
    this.stash = undefined;
    // With nothing kept, still ask the reader: the body may have ended with the paused read.
    this.parse(s ?? EMPTY, s === undefined ? 0 : at);
    if (this.paused || this.req === undefined) return;
    if (this.eof) this.ended();
    else (this.socket as Socket).resume();
  }

  /** A 101 to an Upgrade: the socket leaves the pool and goes to the handler. */
  private upgraded(r: ClientRequest, chunk: Buffer, off: number): void {
    const h = this.reader.head;
    const raw: Buffer[] = [];
    for (let i = 0; i < h.count; i++) {
      const k = i * 4;
      raw.push(
        h.buf.subarray(h.ranges[k] as number, h.ranges[k + 1] as number),
        h.buf.subarray(h.ranges[k + 2] as number, h.ranges[k + 3] as number),
      );
    }
    this.detach();
    r.done = true;
    r.sent = true;
    const s = this.socket as Socket;
    s.pause();
    if (this.slabReader === undefined) s.off('data', this.onBytes);
    else this.slabReader.toStream(s); // the next reads go into the socket's Readable
    s.off('end', this.onEnd);
    s.off('error', this.onError);
    s.off('close', this.onClose);
    if (off < chunk.length) s.unshift(chunk.subarray(off));
    this.state = C_CLOSED;
    clientWheel.cancel(this);
    this.owner.connectedCount--;
    this.owner.forget(this);
    if (r.handler.onUpgrade === undefined) {
      s.destroy();
      r.handler.onError?.(new UpstreamResetError(this.owner.target));
      return;
    }
    r.handler.onUpgrade(h.status, raw, s);
  }

  private complete(r: ClientRequest, extra: boolean): void {
    this.detach();
    r.done = true;
    this.served++;
    const t = this.reader.decoder.trailers;
    const trailers = t.count > 0 ? t.toArray() : NO_TRAILERS;
    // Bytes beyond the response, a close coming, or an answer before the request body was all
    // sent (an early 413): never reuse. The rest of such a body is drained to nowhere.
    const reuse = this.reuse && !extra && !this.eof && r.sent;
    if (!r.sent) r.stopBody(false);
    r.handler.onComplete?.(trailers);
    this.settle(reuse);
  }

  /** After an exchange: back to the pool, or closed. */
  settle(reuse: boolean): void {
    if (this.state === C_CLOSED) return;
    if (!reuse || this.owner.closing) {
      this.destroy();
      return;
    }
    this.state = C_IDLE;
    this.paused = false;
    this.stash = undefined;
    // Paused for the handler (its last read may have ended the body): read again.
    const s = this.socket as Socket;
    if (s.isPaused()) s.resume();
    this.owner.release(this);
  }

  /** A malformed response: fail the request and close the connection. */
  private broken(err: Error): void {
    const r = this.detach();
    this.stash = undefined;
    this.destroy();
    r?.fail(err);
  }

  private ended(): void {
    this.eof = true;
    const r = this.req;
    if (r !== undefined && this.closeDelimited) {
      // The end of a close-delimited body; when paused, resume() gets here after the stash.
      if (this.paused) return;
      try {
        this.reader.end();
        this.parse(EMPTY, 0);
      } catch (err) {
        this.broken(err as Error);
      }
      return;
    }
    // Anything else the close decides (closed()): a stale connection, or a reset.
    this.destroy();
  }

  private closed(): void {
    if (this.state === C_CLOSED) return;
    this.state = C_CLOSED;
    clientWheel.cancel(this);
    const o = this.owner;
    if (this.connected) {
      o.connectedCount--;
      const r = this.detach();
      if (r !== undefined && !r.done) {
        // The keep-alive race: the server closed this idle connection (a FIN, before anything
        // else) just as we reused it. Nothing of the answer arrived and only a bodyless head
        // was sent: send it once more on a fresh connection (idempotent methods only). A reset
        // (RST: an error first) is the server's answer, and the retry policy's to judge.
        if (this.served > 0 && !this.answered && this.error === undefined && r.retryable && !r.retried) {
          r.retried = true;
          o.pendingCount++;
          o.connectFor(r);
        } else {
          r.fail(
            new UpstreamResetError(o.target, this.error === undefined ? undefined : { cause: this.error }),
          );
        }
      }
    } else {
      // Never connected: the request it was opened for fails with the connect error.
      o.pendingCount--;
      const r = this.first;
      this.first = undefined;
      if (r !== undefined && !r.done) {
        r.done = true;
        r.stopBody(true);
        r.handler.onError?.(this.error ?? new UpstreamResetError(o.target));
      }
    }
    o.forget(this);
  }
}
