/**
 * The fast upstream client (REMORA_UPSTREAM_CLIENT=fast, docs/proxy.md "Fast upstream client"):
 * one origin's keep-alive pool of plain `net.Socket`s speaking HTTP/1.1, behind the same
 * `dispatch(opts, handler)` callback contract as undici's Pool, so forward.ts and the breaker
 * cannot tell them apart. The profile of the engine put undici's request object, header
 * validation, llhttp-wasm glue and queue bookkeeping at ~8 % of the CPU per request; here the
 * request head is one string written in one `write`, and the response head is parsed by a
 * strict parser of the few forms an upstream may use.
 *
 * What it does not handle goes to undici before any byte is sent (Upgrade, CONNECT, a handler
 * of undici's controller style, bodies that are not streams or buffers, header lists it would
 * have to validate differently). A response it cannot parse safely fails the request with an
 * error rescue.ts maps to 502 RMR_UPSTREAM_PROTOCOL, and the connection is closed.
 *
 * Errors carry the codes undici's would, so rescue.ts and the retry policy classify them the
 * same: connect failures keep the socket's errno (ECONNREFUSED, ...), a connection that closed
 * before a complete response is ECONNRESET (Node's own "socket hang up" code), a connect
 * timeout UND_ERR_CONNECT_TIMEOUT, parser faults llhttp's HPE_* code for the same fault.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { Dispatcher } from 'undici';

export interface FastPoolOptions {
  /** ms an idle connection is kept (the server's `Keep-Alive: timeout=` can only shorten it) */
  readonly keepAliveTimeout: number;
  readonly connectTimeout: number;
  /** most connections at once; undefined = unlimited (undici's default) */
  readonly connections: number | undefined;
  /** largest response head (and trailer section) accepted; undici's default is 16 KiB too */
  readonly maxHeaderBytes?: number;
  /** most header fields in a response head */
  readonly maxHeaders?: number;
  /** undici's dispatcher for this origin, made on first need: what the fast path does not handle */
  readonly fallback: () => Dispatcher;
  /** source address of every connection (the inbound passthrough source); undefined: the kernel's */
  readonly localAddress?: string | undefined;
}

/** What the strict parser refused; `code` is llhttp's for the same fault (what undici reports). */
export class ResponseParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`invalid upstream response: ${message}`);
    this.name = 'ResponseParseError';
  }
}

/** The connection closed before the response was complete (ECONNRESET, as Node's http client says). */
export class ConnectionClosedError extends Error {
  readonly code = 'ECONNRESET';
  constructor(message = 'upstream closed the connection before the response was complete') {
    super(message);
    this.name = 'ConnectionClosedError';
  }
}

/** The connection did not open within connectTimeout (undici's code: forward.ts retries it as a connect failure). */
export class ConnectTimeoutError extends Error {
  readonly code = 'UND_ERR_CONNECT_TIMEOUT';
  constructor(ms: number) {
    super(`connect timed out after ${ms} ms`);
    this.name = 'ConnectTimeoutError';
  }
}

class PoolClosedError extends Error {
  constructor(readonly code: 'UND_ERR_CLOSED' | 'UND_ERR_DESTROYED') {
    super(code === 'UND_ERR_CLOSED' ? 'the pool is closed' : 'the pool was destroyed');
    this.name = 'PoolClosedError';
  }
}

class RequestAbortedError extends Error {
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('request aborted');
    this.name = 'RequestAbortedError';
  }
}

const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
const DEFAULT_MAX_HEADERS = 256;
/** undici's keepAliveTimeoutThreshold: a server's announced timeout is trusted minus this. */
const KEEP_ALIVE_THRESHOLD_MS = 2_000;
/** a chunk-size line (hex digits and extensions) longer than this is refused */
const MAX_CHUNK_LINE = 1024;
/** 2^52: any longer chunk size or Content-Length is refused before it can lose precision */
const MAX_SIZE_DIGITS_HEX = 13;
const MAX_SIZE_DIGITS_DEC = 15;

const CRLF = Buffer.from('\r\n', 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const LFLF = Buffer.from('\n\n', 'latin1');
/** Anything but HTAB, SP..~ and obs-text in a head, a CR without LF, or an LF without CR. */
const BAD_HEAD = /[^\t\x20-\x7e\x80-\xff\r\n]|\r(?!\n)|(?<!\r)\n/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** what must not reach the request line: controls, SP, DEL */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const BAD_TARGET = /[\x00-\x20\x7f]/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[\s,])timeout\s*=\s*(\d+)/i;

// Parser states of a connection, per response.
const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNK_SIZE = 2;
const S_CHUNK_DATA = 3;
const S_CHUNK_CRLF = 4;
const S_TRAILERS = 5;
const S_CLOSE = 6;
const S_DONE = 7;

type LegacyHandler = Dispatcher.DispatchHandler & {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: string[] | null): void;
  onError(err: Error): void;
};

/** One request from dispatch to its end; `abort` is what the handler gets in onConnect. */
class Req {
  conn: Conn | undefined = undefined;
  done = false;
  /** the stale keep-alive retry was spent */
  retried = false;
  /** a response byte arrived on the current connection */
  answered = false;
  /** the request body was written completely (or there is none) */
  sent: boolean;
  /** onConnect was called */
  started = false;
  readonly abort: (err?: Error) => void;
  private bodyListening = false;
  /** the stream listeners, made only for a request with a streamed body */
  private onBodyData: ((chunk: Buffer | string) => void) | undefined = undefined;
  private onBodyEnd: (() => void) | undefined = undefined;
  private onBodyError: ((err: Error) => void) | undefined = undefined;
  private onBodyClose: (() => void) | undefined = undefined;
  private onSocketDrain: (() => void) | undefined = undefined;

  constructor(
    readonly pool: FastPool,
    readonly handler: LegacyHandler,
    readonly head: string,
    readonly body: Readable | Buffer | null,
    readonly chunked: boolean,
    readonly isHead: boolean,
    readonly retryable: boolean,
  ) {
    this.sent = body === null;
    this.abort = (err?: Error) => this.aborted(err ?? new RequestAbortedError());
  }

  private aborted(err: Error): void {
    if (this.done) return;
    this.done = true;
    const c = this.conn;
    this.conn = undefined;
    if (c !== undefined) {
      c.detach();
      // Bytes of this exchange may be on the wire either way: the connection cannot be reused.
      c.socket.destroy();
    } else {
      this.pool.unqueue(this);
    }
    this.stopBody(true);
    this.handler.onError(err);
  }

  /** Fails the request (after a running exchange broke); the caller disposes of the connection. */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.conn = undefined;
    this.stopBody(true);
    this.handler.onError(err);
  }

  /** Writes the head and streams the body to `socket`. */
  send(c: Conn): void {
    const socket = c.socket;
    const body = this.body;
    if (body === null) {
      socket.write(this.head, 'latin1');
      return;
    }
    if (Buffer.isBuffer(body)) {
      socket.cork();
      socket.write(this.head, 'latin1');
      if (this.chunked) socket.write(`${body.length.toString(16)}\r\n`, 'latin1');
      socket.write(body);
      if (this.chunked) socket.write('\r\n0\r\n\r\n', 'latin1');
      socket.uncork();
      this.sent = true;
      return;
    }
    if (body.destroyed || body.readableAborted) {
      c.detach();
      this.fail(new ConnectionClosedError('the request body was aborted'));
      c.settle(true); // nothing was written
      return;
    }
    // The head waits for the first body bytes, as undici's does: a body the client botches
    // before its first byte (a bad chunk size) then sends nothing upstream at all.
    this.bodyListening = true;
    body.on('data', (this.onBodyData = (chunk) => this.bodyData(chunk)));
    body.on('end', (this.onBodyEnd = () => this.bodyEnd()));
    body.on('error', (this.onBodyError = (err) => this.bodyFailed(err)));
    body.on('close', (this.onBodyClose = () => this.bodyClose()));
    this.onSocketDrain = () => this.socketDrain();
    body.resume();
  }

  /** the head went out (with the first body bytes, for a streamed body) */
  private headSent = false;

  private bodyData(chunk: Buffer | string): void {
    const c = this.conn;
    if (c === undefined) return;
    const s = c.socket;
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
      (this.body as Readable).pause();
      s.once('drain', this.onSocketDrain as () => void);
    }
  }

  private waitingDrain = false;
  private socketDrain(): void {
    this.waitingDrain = false;
    if (this.bodyListening) (this.body as Readable).resume();
  }

  private bodyEnd(): void {
    const c = this.conn;
    this.stopBody(false);
    this.sent = true;
    if (c === undefined) return;
    const end = this.chunked ? '0\r\n\r\n' : '';
    if (this.headSent) {
      if (end !== '') c.socket.write(end, 'latin1');
    } else {
      this.headSent = true;
      c.socket.write(this.head + end, 'latin1');
    }
  }

  private bodyClose(): void {
    // Closed without 'end': the client went away mid-body.
    if (!this.sent) this.bodyFailed(new ConnectionClosedError('the request body was aborted'));
  }

  private bodyFailed(err: Error): void {
    const c = this.conn;
    this.stopBody(false);
    if (c !== undefined) {
      c.detach();
      // Before the head nothing was written and the connection is as good as idle.
      if (this.headSent) c.socket.destroy();
      else c.settle(true);
    }
    this.fail(err);
  }

  /**
   * Stops reading the body. `destroy`: as undici does when a request ends early; else the rest
   * is drained to nowhere, so the client's connection can carry on. A body never read (the
   * request failed before it was sent) is left alone: a retry may still send it.
   */
  stopBody(destroy: boolean): void {
    const body = this.body;
    if (body === null || Buffer.isBuffer(body) || !this.bodyListening) return;
    this.bodyListening = false;
    body.off('data', this.onBodyData as (chunk: Buffer | string) => void);
    body.off('end', this.onBodyEnd as () => void);
    body.off('error', this.onBodyError as (err: Error) => void);
    body.off('close', this.onBodyClose as () => void);
    if (this.sent) return;
    if (destroy) body.destroy();
    else body.resume();
  }
}

/** One upstream connection: its socket, the request it serves, and the response parser's state. */
class Conn {
  readonly socket: Socket;
  req: Req | undefined = undefined;
  /** responses completed on this connection: a reused connection can be a stale one */
  served = 0;
  connected = false;
  idleSince = 0;
  /** ms this connection may stay idle (the server's Keep-Alive timeout may shorten it) */
  idleMs: number;
  private connectTimer: NodeJS.Timeout | undefined;
  private error: Error | undefined = undefined;
  private closed = false;

  // parser state of the current response
  private state: number = S_HEAD;
  /** bytes of a head, chunk-size line or trailer section that arrived in pieces */
  private acc: Buffer | undefined = undefined;
  private remaining = 0;
  private crlf = 0;
  private keepAlive = true;
  private trailers: string[] | null = null;
  /** bytes read while the handler had paused us */
  private stash: Buffer | undefined = undefined;
  private paused = false;
  private eof = false;
  private executing = false;
  private resumeAsked = false;
  readonly resume = (): void => this.resumed();

  constructor(
    readonly pool: FastPool,
    /** the request this connection was opened for (dropped once it has the connection) */
    private first: Req | undefined,
  ) {
    this.idleMs = pool.keepAliveTimeout;
    // Half-open allowed: a close-delimited body the client is still reading ends on our terms.
    const s = net.connect({
      host: pool.host,
      port: pool.port,
      noDelay: true,
      allowHalfOpen: true,
      ...(pool.localAddress !== undefined ? { localAddress: pool.localAddress } : {}),
    });
    this.socket = s;
    this.connectTimer = setTimeout(connectTimedOut, pool.connectTimeout, this);
    s.once('connect', () => this.onConnect());
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('end', () => this.onEnd());
    s.on('error', (err: Error) => (this.error ??= err));
    s.once('close', () => this.onClose());
  }

  timedOut(): void {
    this.connectTimer = undefined;
    this.error = new ConnectTimeoutError(this.pool.connectTimeout);
    this.socket.destroy();
  }

  private onConnect(): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.connected = true;
    this.pool.connectedCount++;
    const r = this.first as Req;
    this.first = undefined;
    if (r.done) {
      // aborted while it waited for this connection
      this.pool.pendingCount--;
      this.pool.release(this);
    } else {
      this.pool.run(this, r);
    }
  }

  /** Starts `r` on this (connected, idle) connection; false if onConnect aborted it at once. */
  start(r: Req): boolean {
    if (!r.started) {
      r.started = true;
      r.handler.onConnect(r.abort);
      if (r.done) return false; // nothing was written: this connection stays usable
    }
    this.pool.runningCount++;
    this.req = r;
    r.conn = this;
    r.answered = false;
    this.state = S_HEAD;
    this.keepAlive = !r.isHead;
    this.idleMs = this.pool.keepAliveTimeout;
    r.send(this);
    return true;
  }

  /** Takes the running request off this connection (its exchange ended one way or another). */
  detach(): Req | undefined {
    const r = this.req;
    if (r !== undefined) {
      this.req = undefined;
      r.conn = undefined;
      this.pool.runningCount--;
    }
    return r;
  }

  private onData(chunk: Buffer): void {
    const r = this.req;
    if (r === undefined) {
      // Bytes nobody asked for (on an idle connection, or after an abort): never reuse it.
      this.socket.destroy();
      return;
    }
    r.answered = true;
    this.execute(chunk, 0);
  }

  private onEnd(): void {
    this.eof = true;
    if (this.req !== undefined && this.state === S_CLOSE) {
      // The end of a close-delimited body; when paused, resume() completes it after the stash.
      if (!this.paused) this.complete(false);
      return;
    }
    this.socket.destroy();
  }

  private onClose(): void {
    this.closed = true;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const pool = this.pool;
    if (this.connected) {
      pool.connectedCount--;
      const r = this.detach();
      if (r !== undefined && !r.done) {
        // The keep-alive race: the server closed this idle connection just as we reused it.
        // Nothing of the answer arrived and nothing but the head was sent: send it once more
        // on a fresh connection (idempotent, bodyless requests only).
        if (this.served > 0 && !r.answered && r.retryable && !r.retried) {
          r.retried = true;
          pool.pendingCount++;
          pool.connectFor(r);
        } else {
          r.fail(this.error ?? new ConnectionClosedError());
        }
      }
    } else {
      // Never connected: the request it was opened for fails with the connect error.
      pool.pendingCount--;
      const r = this.first as Req;
      this.first = undefined;
      if (!r.done) {
        r.done = true;
        r.stopBody(true);
        r.handler.onError(this.error ?? new ConnectionClosedError('connection closed while connecting'));
      }
    }
    pool.forget(this);
  }

  private resumed(): void {
    if (this.executing) {
      // resume() from inside the handler's own callback: the running loop carries on
      this.resumeAsked = true;
      return;
    }
    if (!this.paused || this.req === undefined) return;
    this.paused = false;
    // Resumed first: new bytes arrive in a later tick, after the stash below.
    this.socket.resume();
    const b = this.stash;
    if (b !== undefined) {
      this.stash = undefined;
      this.execute(b, 0);
    }
    if (!this.paused && this.req !== undefined && this.eof && this.state === S_CLOSE) this.complete(false);
  }

  private pause(chunk: Buffer, off: number): void {
    this.paused = true;
    if (off < chunk.length) this.keep(chunk.subarray(off));
    this.socket.pause();
  }

  /** Keeps unparsed bytes for resume() (after what is kept already, should more arrive). */
  private keep(rest: Buffer): void {
    const s = this.stash;
    this.stash = s === undefined ? rest : Buffer.concat([s, rest]);
  }

  /** Parses `chunk` from `off` for the current request until it is used up, paused or done. */
  private execute(chunk: Buffer, off: number): void {
    this.executing = true;
    try {
      this.run(chunk, off);
    } catch (err) {
      this.broken(err as Error);
    } finally {
      this.executing = false;
    }
  }

  /**
   * Hands body bytes to the handler; true when parsing must stop here (aborted, or paused with
   * the rest of `chunk` from `off` kept for resume()).
   */
  private deliver(r: Req, part: Buffer, chunk: Buffer, off: number): boolean {
    this.resumeAsked = false;
    const go = r.handler.onData(part);
    if (r.done) return true;
    if (!this.stopped(go)) return false;
    this.pause(chunk, off);
    return true;
  }

  /** Did the handler ask to pause (returned false without resuming from inside the call)? */
  private stopped(go: boolean): boolean {
    const asked = this.resumeAsked;
    this.resumeAsked = false;
    return !go && !asked;
  }

  private run(chunk: Buffer, off: number): void {
    let len = chunk.length;
    while (off < len) {
      const r = this.req;
      if (r === undefined || r.done) return;
      if (this.paused) {
        this.keep(chunk.subarray(off));
        return;
      }
      switch (this.state) {
        case S_HEAD: {
          const sec = this.gather(chunk, off, CRLFCRLF, this.pool.maxHeaderBytes, 'head');
          if (sec === undefined) return;
          chunk = sec.data;
          len = chunk.length;
          off = sec.at + 4;
          if (!this.head(r, chunk, sec.from, off)) continue; // a 1xx: the real head follows
          if (r.done) return; // aborted from onHeaders
          if ((this.state as number) === S_DONE) {
            this.complete(off < len);
            return;
          }
          if (this.paused) {
            this.pause(chunk, off);
            return;
          }
          break;
        }
        case S_LENGTH: {
          const n = Math.min(this.remaining, len - off);
          const part = off === 0 && n === len ? chunk : chunk.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          const stop = this.deliver(r, part, chunk, off);
          if (r.done) return;
          if (this.remaining === 0) {
            this.complete(off < len);
            return;
          }
          if (stop) return;
          break;
        }
        case S_CHUNK_SIZE: {
          const line = this.gather(chunk, off, CRLF, MAX_CHUNK_LINE, 'chunk-size line');
          if (line === undefined) return;
          chunk = line.data;
          len = chunk.length;
          off = line.at + 2;
          const size = chunkSize(chunk, line.from, line.at);
          if (size === 0) {
            off = line.at; // the trailer section is read from this line's CRLF on
            this.state = S_TRAILERS;
          } else {
            this.remaining = size;
            this.state = S_CHUNK_DATA;
          }
          break;
        }
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, len - off);
          const part = off === 0 && n === len ? chunk : chunk.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = S_CHUNK_CRLF;
            this.crlf = 0;
          }
          if (this.deliver(r, part, chunk, off)) return;
          break;
        }
        case S_CHUNK_CRLF: {
          const b = chunk[off++];
          if (b !== (this.crlf === 0 ? 0x0d : 0x0a))
            throw new ResponseParseError('HPE_STRICT', 'chunk data not followed by CRLF');
          if (++this.crlf === 2) this.state = S_CHUNK_SIZE;
          break;
        }
        case S_TRAILERS: {
          // From the last chunk's CRLF: an empty trailer section makes it CRLFCRLF at once.
          const sec = this.gather(chunk, off, CRLFCRLF, this.pool.maxHeaderBytes, 'trailer section');
          if (sec === undefined) return;
          const end = sec.at + 4;
          if (end - sec.from > 4) {
            const t = sec.data.toString('latin1', sec.from, end);
            if (BAD_HEAD.test(t))
              throw new ResponseParseError('HPE_STRICT', 'control character, bare CR or bare LF in trailers');
            this.trailers = this.fields(t, 2, null);
          }
          this.complete(end < sec.data.length);
          return;
        }
        case S_CLOSE: {
          const part = off === 0 ? chunk : chunk.subarray(off);
          off = len;
          if (this.deliver(r, part, chunk, off)) return;
          break;
        }
        default:
          // S_DONE with bytes left: more than one response for one request
          throw new ResponseParseError('HPE_INVALID_CONSTANT', 'data after the end of the response');
      }
    }
  }

  /**
   * Bytes from `chunk` at `off` up to `delim` (CRLFCRLF ends a head or trailer section, CRLF a
   * chunk-size line), joined with what arrived before: `at` is where `delim` starts. Undefined
   * (and the bytes kept) until `delim` is there; more than `max` bytes before it is refused.
   */
  private gather(
    chunk: Buffer,
    off: number,
    delim: Buffer,
    max: number,
    what: string,
  ): { data: Buffer; from: number; at: number } | undefined {
    let data = chunk;
    let from = off;
    let searchFrom = off;
    const acc = this.acc;
    if (acc !== undefined) {
      data = Buffer.concat([acc, chunk.subarray(off)]);
      from = 0;
      searchFrom = Math.max(0, acc.length - delim.length + 1);
      this.acc = undefined;
    }
    const at = data.indexOf(delim, searchFrom);
    if (at !== -1 && at - from <= max) return { data, from, at };
    const head = delim === CRLFCRLF;
    if (data.length - from > max)
      throw new ResponseParseError(
        head ? 'HPE_HEADER_OVERFLOW' : 'HPE_INVALID_CHUNK_SIZE',
        `${what} longer than ${max} bytes`,
      );
    // Lines ended by bare LFs would never show a CRLFCRLF: refuse them now, not at the cap.
    if (head && data.indexOf(LFLF, searchFrom) !== -1)
      throw new ResponseParseError('HPE_STRICT', `bare LF in the ${what}`);
    this.acc = Buffer.from(data.subarray(from));
    return undefined;
  }

  /**
   * Parses a complete response head (`data[start..end)`, ending in CRLFCRLF) and hands it to
   * the handler. False for a 1xx, which is skipped (the final response follows).
   */
  private head(r: Req, data: Buffer, start: number, end: number): boolean {
    const s = data.toString('latin1', start, end);
    if (BAD_HEAD.test(s))
      throw new ResponseParseError('HPE_STRICT', 'control character, bare CR or bare LF in the head');
    // status-line = HTTP-version SP 3DIGIT [SP reason-phrase]
    if (!s.startsWith('HTTP/1.') || s.charCodeAt(8) !== 0x20)
      throw new ResponseParseError('HPE_INVALID_CONSTANT', 'not an HTTP/1.x status line');
    const minor = s.charCodeAt(7);
    if (minor !== 0x31 && minor !== 0x30) throw new ResponseParseError('HPE_INVALID_VERSION', 'HTTP version');
    const d0 = s.charCodeAt(9) - 0x30;
    const d1 = s.charCodeAt(10) - 0x30;
    const d2 = s.charCodeAt(11) - 0x30;
    if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9))
      throw new ResponseParseError('HPE_INVALID_STATUS', 'status code is not 100..999');
    const status = d0 * 100 + d1 * 10 + d2;
    const eol = s.indexOf('\r\n', 12);
    let statusText = '';
    if (eol !== 12) {
      if (s.charCodeAt(12) !== 0x20) throw new ResponseParseError('HPE_INVALID_STATUS', 'status line');
      statusText = s.slice(13, eol);
    }
    if (status < 200) {
      if (status === 101)
        throw new ResponseParseError('HPE_INVALID_CONSTANT', '101 to a request without Upgrade');
      this.fields(s, eol + 2, null); // checked, then dropped with the 1xx
      return false;
    }
    this.contentLength = -1;
    this.chunked = false;
    this.transferEncoding = false;
    this.keepAlive = this.keepAlive && minor === 0x31;
    const raw: Buffer[] = [];
    this.fields(s, eol + 2, raw, data, start);
    if (this.transferEncoding && this.contentLength !== -1)
      throw new ResponseParseError(
        'HPE_UNEXPECTED_CONTENT_LENGTH',
        'both Transfer-Encoding and Content-Length',
      );
    if (r.isHead || status === 204 || status === 304) {
      this.state = S_DONE;
    } else if (this.chunked) {
      this.state = S_CHUNK_SIZE;
    } else if (this.contentLength >= 0) {
      this.remaining = this.contentLength;
      this.state = this.contentLength === 0 ? S_DONE : S_LENGTH;
    } else {
      this.state = S_CLOSE;
      this.keepAlive = false;
    }
    this.resumeAsked = false;
    if (this.stopped(r.handler.onHeaders(status, raw, this.resume, statusText))) this.paused = true;
    return true;
  }

  // what the head's framing fields said (valid while its head is parsed)
  private contentLength = -1;
  private chunked = false;
  private transferEncoding = false;

  /**
   * Parses the field lines of `s` from `pos` to its final CRLF: into `raw` (Buffer views of
   * `data` at `base`) for a head, or into a string list for trailers (`raw` null, returned).
   */
  private fields(s: string, pos: number, raw: Buffer[] | null, data?: Buffer, base = 0): string[] | null {
    const last = s.length - 2;
    const max = this.pool.maxHeaders;
    const strings: string[] | null = raw === null ? [] : null;
    let n = 0;
    while (pos < last) {
      const le = s.indexOf('\r\n', pos);
      const colon = s.indexOf(':', pos);
      if (colon === -1 || colon > le) {
        const c = s.charCodeAt(pos);
        throw new ResponseParseError(
          'HPE_INVALID_HEADER_TOKEN',
          c === 0x20 || c === 0x09 ? 'obsolete line folding' : 'field line without a colon',
        );
      }
      const name = s.slice(pos, colon);
      if (!TOKEN.test(name)) throw new ResponseParseError('HPE_INVALID_HEADER_TOKEN', 'field name');
      if (++n > max) throw new ResponseParseError('HPE_HEADER_OVERFLOW', `more than ${max} header fields`);
      let vs = colon + 1;
      let ve = le;
      while (vs < ve && (s.charCodeAt(vs) === 0x20 || s.charCodeAt(vs) === 0x09)) vs++;
      while (ve > vs && (s.charCodeAt(ve - 1) === 0x20 || s.charCodeAt(ve - 1) === 0x09)) ve--;
      if (raw !== null) {
        const d = data as Buffer;
        raw.push(d.subarray(base + pos, base + colon), d.subarray(base + vs, base + ve));
        const nl = name.length;
        if (nl === 14 || nl === 17 || nl === 10) this.framing(name.toLowerCase(), s.slice(vs, ve));
      } else {
        (strings as string[]).push(name, s.slice(vs, ve));
      }
      pos = le + 2;
    }
    return strings;
  }

  /** Acts on the fields that frame the body or decide keep-alive. */
  private framing(lower: string, value: string): void {
    switch (lower) {
      case 'content-length': {
        if (this.contentLength !== -1)
          throw new ResponseParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'more than one Content-Length');
        const n = value.length;
        if (n === 0 || n > MAX_SIZE_DIGITS_DEC || !/^\d+$/.test(value))
          throw new ResponseParseError('HPE_INVALID_CONTENT_LENGTH', 'Content-Length is not a number');
        this.contentLength = Number(value);
        return;
      }
      case 'transfer-encoding':
        // Only `chunked`: any other coding (or a list) would reach the client undecoded and
        // unmarked once the hop-by-hop field is dropped.
        if (this.transferEncoding || value.toLowerCase() !== 'chunked')
          throw new ResponseParseError(
            'HPE_INVALID_TRANSFER_ENCODING',
            'Transfer-Encoding other than chunked',
          );
        this.transferEncoding = true;
        this.chunked = true;
        return;
      case 'connection': {
        for (const t of value.split(',')) if (t.trim().toLowerCase() === 'close') this.keepAlive = false;
        return;
      }
      case 'keep-alive': {
        const m = KEEP_ALIVE_TIMEOUT.exec(value);
        if (m === null) return;
        const ms = Number(m[1]) * 1000 - KEEP_ALIVE_THRESHOLD_MS;
        if (ms <= 0) this.keepAlive = false;
        else this.idleMs = Math.min(this.idleMs, ms);
        return;
      }
      default:
    }
  }

  /** The response is complete: tell the handler, then keep or close the connection. */
  private complete(extra: boolean): void {
    const r = this.detach() as Req;
    const trailers = this.trailers;
    this.trailers = null;
    this.acc = undefined;
    this.stash = undefined;
    this.state = S_HEAD;
    r.done = true;
    this.served++;
    // The answer came before the request body was all sent (an early 413, ...): undici closes
    // such a connection too; the rest of the client's body is drained to nowhere.
    const reuse = this.keepAlive && !extra && !this.eof && r.sent;
    if (!r.sent) r.stopBody(false);
    r.handler.onComplete(trailers);
    this.settle(reuse);
  }

  /** After an exchange: back to the pool, or closed. */
  settle(reuse: boolean): void {
    if (this.closed) return;
    if (!reuse || this.pool.closing) {
      this.socket.destroy();
      return;
    }
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    this.pool.release(this);
  }

  /** A parser fault: fail the request (502 RMR_UPSTREAM_PROTOCOL) and close the connection. */
  private broken(err: Error): void {
    const r = this.detach();
    this.acc = undefined;
    this.stash = undefined;
    if (r !== undefined) r.fail(err);
    this.socket.destroy();
  }
}

function connectTimedOut(c: Conn): void {
  c.timedOut();
}

/** `1*HEXDIG [BWS ";" ext]` in data[start..end), or a ResponseParseError. */
function chunkSize(data: Buffer, start: number, end: number): number {
  let size = 0;
  let i = start;
  for (; i < end; i++) {
    const c = data[i] as number;
    const v =
      c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
          ? c - 0x57
          : c >= 0x41 && c <= 0x46
            ? c - 0x37
            : -1;
    if (v === -1) break;
    size = size * 16 + v;
  }
  const digits = i - start;
  if (digits === 0 || digits > MAX_SIZE_DIGITS_HEX)
    throw new ResponseParseError('HPE_INVALID_CHUNK_SIZE', 'chunk size is not a hex number');
  if (i < end) {
    while (i < end && (data[i] === 0x20 || data[i] === 0x09)) i++;
    if (data[i] !== 0x3b) throw new ResponseParseError('HPE_INVALID_CHUNK_SIZE', 'chunk size line');
    for (; i < end; i++) {
      const c = data[i] as number;
      if ((c < 0x20 && c !== 0x09) || c === 0x7f)
        throw new ResponseParseError('HPE_INVALID_CHUNK_SIZE', 'control character in a chunk extension');
    }
  }
  return size;
}

/** Is this a handler of undici's classic callback style (the forwarder's)? */
function isLegacy(h: Dispatcher.DispatchHandler): h is LegacyHandler {
  return (
    h.onRequestStart === undefined &&
    typeof h.onConnect === 'function' &&
    typeof h.onHeaders === 'function' &&
    typeof h.onData === 'function' &&
    typeof h.onComplete === 'function' &&
    typeof h.onError === 'function'
  );
}

function expectsPayload(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}

/** RFC 9110 §9.2.2 idempotent methods: the only ones the stale-connection retry may resend. */
function idempotent(method: string): boolean {
  return (
    method === 'GET' ||
    method === 'HEAD' ||
    method === 'OPTIONS' ||
    method === 'PUT' ||
    method === 'DELETE' ||
    method === 'TRACE'
  );
}

/**
 * One origin's connections. Requests are never pipelined: a connection serves one exchange at
 * a time and goes back to the pool only after a complete response that allows keep-alive.
 */
export class FastPool extends Dispatcher {
  readonly host: string;
  readonly port: number;
  readonly keepAliveTimeout: number;
  readonly connectTimeout: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly localAddress: string | undefined;
  private readonly limit: number;
  /** `host` header for requests without one (port 80 left out, as undici does) */
  private readonly hostHeader: string;
  private readonly makeFallback: () => Dispatcher;
  private fallbackPool: Dispatcher | undefined = undefined;
  /** idle connections, the most recently used last (reused first, so the rest can time out) */
  private readonly idle: Conn[] = [];
  /** requests waiting for a connection while `connections` are all busy */
  private readonly queue: Req[] = [];
  private readonly conns = new Set<Conn>();
  private sweeper: NodeJS.Timeout | undefined = undefined;
  private closeWaiters: (() => void)[] = [];
  connectedCount = 0;
  /** requests dispatched and not yet on a connection (queued or waiting for theirs) */
  pendingCount = 0;
  runningCount = 0;
  closing = false;
  private destroyed = false;

  constructor(origin: string, o: FastPoolOptions) {
    super();
    const i = origin.lastIndexOf(':');
    const host = origin.slice(0, i);
    this.host = host.startsWith('[') ? host.slice(1, -1) : host;
    this.port = Number(origin.slice(i + 1));
    this.hostHeader = this.port === 80 ? host : origin;
    this.keepAliveTimeout = o.keepAliveTimeout;
    this.connectTimeout = o.connectTimeout;
    this.limit = o.connections ?? Infinity;
    this.maxHeaderBytes = o.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.maxHeaders = o.maxHeaders ?? DEFAULT_MAX_HEADERS;
    this.makeFallback = o.fallback;
    this.localAddress = o.localAddress;
  }

  /** undici's dispatcher for what the fast path does not handle (made on first need). */
  get fallback(): Dispatcher {
    return (this.fallbackPool ??= this.makeFallback());
  }

  /** Requests that went to undici (tests, /config). */
  fallbacks = 0;

  /** undici's PoolStats fields that Pools and the breaker read, over both paths. */
  get stats(): {
    connected: number;
    free: number;
    pending: number;
    queued: number;
    running: number;
    size: number;
  } {
    const own = {
      connected: this.connectedCount,
      free: this.idle.length,
      pending: this.pendingCount,
      queued: this.queue.length,
      running: this.runningCount,
      size: this.pendingCount + this.runningCount,
    };
    const fb = this.fallbackPool as (Dispatcher & { stats?: typeof own }) | undefined;
    const s = fb?.stats;
    if (s === undefined) return own;
    return {
      connected: own.connected + s.connected,
      free: own.free,
      pending: own.pending + s.pending,
      queued: own.queued + s.queued,
      running: own.running + s.running,
      size: own.size + s.size,
    };
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const r = this.closing ? undefined : this.prepare(opts, handler);
    if (r === undefined) {
      if (this.closing) {
        handler.onError?.(new PoolClosedError(this.destroyed ? 'UND_ERR_DESTROYED' : 'UND_ERR_CLOSED'));
        return false;
      }
      this.fallbacks++;
      return this.fallback.dispatch(opts, handler);
    }
    this.pendingCount++;
    let c = this.idle.pop();
    if (c !== undefined) {
      const now = Date.now();
      // Past its idle time the server may be closing it right now: take a younger one. (One
      // closed by the server and not yet forgotten is destroyed already.)
      while (c !== undefined && (c.socket.destroyed || now - c.idleSince > c.idleMs)) {
        c.socket.destroy();
        c = this.idle.pop();
      }
    }
    if (c !== undefined) this.run(c, r);
    else if (this.conns.size < this.limit) this.connectFor(r);
    else this.queue.push(r);
    return true;
  }

  /** The request as the fast path sends it, or undefined when undici has to take it. */
  private prepare(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): Req | undefined {
    if (!isLegacy(handler)) return undefined;
    const method = opts.method;
    const path = opts.path;
    if (
      method === 'CONNECT' ||
      (opts.upgrade !== undefined && opts.upgrade !== null && opts.upgrade !== false) ||
      opts.origin !== undefined ||
      opts.query !== undefined ||
      opts.reset === true ||
      typeof method !== 'string' ||
      opts.expectContinue === true ||
      (opts.typeOfService !== undefined && opts.typeOfService !== null) ||
      typeof path !== 'string' ||
      BAD_TARGET.test(path) ||
      !TOKEN.test(method)
    )
      return undefined;
    const body = opts.body ?? null;
    let buf: Buffer | null = null;
    let stream: Readable | null = null;
    if (typeof body === 'string') buf = Buffer.from(body);
    else if (Buffer.isBuffer(body)) buf = body;
    else if (body !== null) {
      if (typeof (body as Readable).on !== 'function' || typeof (body as Readable).pause !== 'function')
        return undefined;
      stream = body as Readable;
    }
    const headers = opts.headers ?? null;
    if (headers !== null && !Array.isArray(headers)) return undefined;
    let head = `${method} ${path} HTTP/1.1\r\n`;
    let hasHost = false;
    let hasLength = false;
    if (headers !== null) {
      const list = headers as unknown[];
      for (let i = 0; i < list.length; i += 2) {
        const name = list[i];
        const value = list[i + 1];
        if (typeof name !== 'string' || typeof value !== 'string') return undefined;
        switch (name.length) {
          case 4:
            if (name.toLowerCase() === 'host') hasHost = true;
            break;
          case 14:
            if (name.toLowerCase() === 'content-length') hasLength = true;
            break;
          case 6:
          case 7:
          case 10:
          case 17: {
            // Fields undici frames or refuses itself: let it decide.
            const l = name.toLowerCase();
            if (
              l === 'expect' ||
              l === 'upgrade' ||
              l === 'connection' ||
              l === 'keep-alive' ||
              l === 'transfer-encoding'
            )
              return undefined;
            break;
          }
          default:
        }
        head += `${name}: ${value}\r\n`;
      }
      // One scan of the whole head: no control character, no CR or LF but the line ends we
      // wrote (as many as there are lines), and every name a token. Else undici decides.
      if (BAD_HEAD.test(head) || lineEnds(head) !== list.length / 2 + 1 || !tokens(list)) return undefined;
    }
    // A buffer with a Content-Length of its own: undici checks that the two agree.
    if (buf !== null && hasLength) return undefined;
    if (!hasHost) head += `host: ${this.hostHeader}\r\n`;
    const isHead = method === 'HEAD';
    // undici closes after HEAD too: a server that wrongly sends a body would poison the next response.
    if (isHead) head += 'connection: close\r\n';
    let chunked = false;
    if (stream !== null && !hasLength) {
      head += 'transfer-encoding: chunked\r\n';
      chunked = true;
    } else if (buf !== null && !hasLength) {
      head += `content-length: ${buf.length}\r\n`;
    } else if (stream === null && buf === null && !hasLength && expectsPayload(method)) {
      head += 'content-length: 0\r\n';
    }
    head += '\r\n';
    const b = buf ?? stream;
    return new Req(this, handler, head, b, chunked, isHead, b === null && idempotent(method));
  }

  /** @internal starts pending `r` on `c` */
  run(c: Conn, r: Req): void {
    this.pendingCount--;
    c.socket.ref();
    if (!c.start(r)) this.release(c); // aborted from onConnect before anything was written
  }

  /** @internal opens a connection for pending `r` */
  connectFor(r: Req): void {
    const c = new Conn(this, r);
    this.conns.add(c);
    this.sweep();
  }

  /** @internal an idle connection: to the next queued request, or kept */
  release(c: Conn): void {
    let r = this.queue.shift();
    while (r !== undefined && r.done) {
      this.pendingCount--;
      r = this.queue.shift();
    }
    if (r !== undefined) {
      this.run(c, r);
      return;
    }
    if (this.closing) {
      c.socket.destroy();
      return;
    }
    c.idleSince = Date.now();
    c.socket.unref();
    this.idle.push(c);
  }

  /** @internal a queued request was aborted */
  unqueue(r: Req): void {
    const i = this.queue.indexOf(r);
    if (i !== -1) {
      this.queue.splice(i, 1);
      this.pendingCount--;
    }
  }

  /** @internal a connection closed */
  forget(c: Conn): void {
    this.conns.delete(c);
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
    // A slot opened: the oldest waiting request gets a connection of its own.
    if (this.queue.length > 0 && this.conns.size < this.limit && !this.closing) {
      const r = this.queue.shift() as Req;
      if (r.done) this.pendingCount--;
      else this.connectFor(r);
    }
    if (this.conns.size === 0) {
      if (this.sweeper !== undefined) clearInterval(this.sweeper);
      this.sweeper = undefined;
      const w = this.closeWaiters;
      this.closeWaiters = [];
      for (const f of w) f();
    }
  }

  /** Closes connections idle past their time, checked every second while any is open. */
  private sweep(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (let i = this.idle.length - 1; i >= 0; i--) {
        const c = this.idle[i] as Conn;
        if (now - c.idleSince > c.idleMs) c.socket.destroy();
      }
    }, 1_000);
    this.sweeper.unref();
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.closing = true;
    for (const c of [...this.idle]) c.socket.destroy();
    const done = Promise.all([
      this.conns.size === 0 ? undefined : new Promise<void>((r) => this.closeWaiters.push(r)),
      this.fallbackPool?.close(),
    ]).then(() => undefined);
    if (callback === undefined) return done;
    done.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const callback = typeof a === 'function' ? a : b;
    const err = typeof a === 'function' || a == null ? new PoolClosedError('UND_ERR_DESTROYED') : a;
    this.closing = true;
    this.destroyed = true;
    const queued = this.queue.splice(0);
    this.pendingCount -= queued.length;
    for (const r of queued) r.fail(err);
    const wait = this.conns.size === 0 ? undefined : new Promise<void>((r) => this.closeWaiters.push(r));
    for (const c of [...this.conns]) {
      c.detach()?.fail(err);
      c.socket.destroy();
    }
    const done = Promise.all([wait, this.fallbackPool?.destroy(err)]).then(() => undefined);
    if (callback === undefined) return done;
    done.then(callback, callback);
  }
}

/** How many LFs `head` holds. */
function lineEnds(head: string): number {
  let n = 0;
  for (let i = head.indexOf('\n'); i !== -1; i = head.indexOf('\n', i + 1)) n++;
  return n;
}

/** Are all field names tokens? (values were checked with the head) */
function tokens(list: unknown[]): boolean {
  for (let i = 0; i < list.length; i += 2) if (!TOKEN.test(list[i] as string)) return false;
  return true;
}
