/**
 * The HTTP/1.1 server stage on the project's codec (http1/: RequestReader, strict heads and body
 * framing), without node:http: a detected connection's bytes are parsed here, each request is a
 * RequestContext over this stage's DownstreamResponse and RequestBody (exchange.ts), and the
 * response is encoded here. The same checks as the node:http stage run on every head (target,
 * framing look-alikes, the normalized path: validate.ts, server.ts `requestPath`), after the
 * codec's own, so strictness is the codec's and node's together.
 *
 * One request at a time per connection: bytes of a pipelined next request wait (bounded: past
 * PIPELINE_LIMIT the socket is paused) until the response ends. A request body is a Readable
 * fed from the socket with backpressure (the socket pauses when the upstream does). Expect:
 * 100-continue is answered at the head, as node:http did. Upgrade requests run through the
 * layers and are handed to upgrade.ts with the socket; `Upgrade: h2c` is served as a plain
 * request and the connection closes after it (as on the node:http stage). Head timeout (408),
 * keep-alive idle timeout and the close grace run on one timer wheel per stage (tcp/wheel.ts, the
 * one the upstream client uses too), not a timer per socket, and nothing is armed per request:
 * each connection keeps one wheel timer that looks at its deadlines at most every `pollMs` and
 * re-arms itself. No setImmediate/nextTick on the common path: only a pipelined request waiting
 * behind a response is started on the next turn.
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { DEFAULTS } from '../config/config.js';
import {
  BadRequestError,
  ExpectationFailedError,
  HeadersTooLargeError,
  Http1Error,
  Http1HeadTooLargeError,
  Http1TooManyFieldsError,
  RequestHeadTimeoutError,
  TooManyHeadersError,
} from '../errors.js';
import type { ProxyError } from '../errors.js';
import { R_DATA, R_END, R_HEAD, RequestReader, keepAlive, lastChunkText } from '../http1/index.js';
import type { ResponseHead } from '../http1/index.js';
import { SlabReader, takeReads } from '../http1/readslab.js';
import { rescue } from '../rescue.js';
import { connectionOf } from '../tcp/connection.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { TimerWheel, WheelTimer } from '../tcp/wheel.js';
import type { WheelClock } from '../tcp/wheel.js';
import { CheckedHead } from './dispatch.js';
import type { DownstreamResponse, RequestBody, ResponseOwner } from './exchange.js';
import { filterRequestHeaders, filterTrailers, keptRequestLines, keptResponseLines } from './headers.js';
import type { KeptFacts, RequestHeadInfo } from './headers.js';
import { RequestContext } from './layer.js';
import type { LocalAnswerDeps } from './layer.js';
import { closingAnswer, writeErrorResponse } from './local.js';
import { closeAfterAnswer, isH2c, requestPath } from './stage.js';
import type { HttpStage, HttpStageOptions } from './stage.js';
import { framingProblem } from './validate.js';

/** Bytes of pipelined requests held while a response is running; past it the socket pauses. */
const PIPELINE_LIMIT = 64 * 1024;
/** An idle keep-alive connection is closed after this (node:http's keepAliveTimeout here). */
const KEEP_ALIVE_MS = 5_000;
/** After our side closed: how long the client has to close its own before it is destroyed. */
const CLOSE_GRACE_MS = 5_000;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const KEEP_ALIVE_FIELDS = `connection: keep-alive\r\nkeep-alive: timeout=${KEEP_ALIVE_MS / 1000}\r\n`;
const CRLF = '\r\n';
/** A body piece up to this is copied behind the head into one Buffer; a larger one is corked. */
const COPY_LIMIT = 16 * 1024;

// Reused across requests: filterRequestHeaders fills it synchronously and we read it at once.
const headInfo: RequestHeadInfo = { hasBody: false, upgrade: undefined };

/** What every connection of a stage shares. */
interface Shared {
  readonly o: HttpStageOptions;
  readonly local: LocalAnswerDeps;
  readonly limits: { readonly maxHeadBytes: number; readonly maxFields: number };
  readonly headTimeoutMs: number;
  /** the longest a connection's timer stays armed: the shortest of its three timeouts */
  readonly pollMs: number;
  readonly wheel: TimerWheel;
  readonly conns: Set<H1Conn>;
  /** `Date` header value, at most one tick old (rebuilt by the wheel's tick, not per response) */
  date: string;
}

export function createCodecStage(o: HttpStageOptions, clock?: WheelClock): HttpStage {
  const headTimeoutMs = o.requestHeadTimeoutMs ?? DEFAULTS.requestHeadTimeoutMs;
  const sh: Shared = {
    o,
    local: { metrics: o.metrics, draining: o.draining },
    limits: { maxHeadBytes: o.maxHeaderBytes, maxFields: o.maxHeaders },
    headTimeoutMs,
    pollMs: Math.min(headTimeoutMs, KEEP_ALIVE_MS, CLOSE_GRACE_MS),
    // As node:http checked its headersTimeout: a tenth of it, between 100 ms and 1 s.
    wheel: new TimerWheel(Math.max(100, Math.min(1000, Math.floor(headTimeoutMs / 10))), 64, clock, () => {
      sh.date = new Date().toUTCString();
    }),
    conns: new Set(),
    date: new Date().toUTCString(),
  };
  return {
    serve: (socket) => {
      const conn = connectionOf(socket);
      if (conn === undefined) {
        socket.destroy();
        return;
      }
      new H1Conn(socket, conn, sh).start();
    },
    closeIdle: () => {
      for (const c of sh.conns) c.closeIfIdle();
    },
    close: () => {
      for (const c of sh.conns) c.socket.destroy();
      sh.wheel.clear();
    },
  };
}

/**
 * One client connection: its reader, the request in flight, what waits behind it. It is its own
 * wheel timer: armed once, for at most `pollMs`, and re-armed by expire() for what is left, so
 * every deadline (which only ever starts `now`, and is never shorter than pollMs) is met within
 * one tick without touching the wheel per request.
 */
class H1Conn extends WheelTimer {
  readonly reader: RequestReader;
  /** bytes not parsed yet: a pipelined request behind a running one, or a paused body's rest */
  private pending: Buffer | null = null;
  /** the request in flight (head parsed, response not ended), or null */
  ex: H1Exchange | null = null;
  /** the wheel clock's time when the head being waited for started (0: none, idle) */
  private headStart: number;
  /** when the last response ended on a keep-alive connection (0: busy or first request) */
  private idleSince = 0;
  /** when our side was closed (0: open) */
  private closedAt = 0;
  /** the request body's reader is full: parsing waits for its _read */
  private bodyFull = false;
  private scheduled = false;
  private gone = false;
  /** the wheel looks after it (false once closed or handed to upgrade.ts) */
  private timed = true;
  /** the socket's reads when they bypass its Readable (takeReads) */
  private slab: SlabReader | undefined = undefined;

  constructor(
    readonly socket: Socket,
    readonly conn: ConnectionInfo,
    readonly sh: Shared,
  ) {
    super();
    this.reader = new RequestReader(sh.limits);
    this.headStart = sh.wheel.clock.now();
  }

  start(): void {
    const s = this.socket;
    this.sh.conns.add(this);
    this.sh.wheel.arm(this, this.sh.pollMs);
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('end', () => this.onEnd());
    s.on('drain', () => this.ex?.owner?.responseDrained());
    s.once('close', () => this.onClose());
    // Reads into slab buffers, straight to onData (readslab.ts takeReads): a plain TCP socket's,
    // and a TLS one's (the mesh's inbound tunnel: TLSWrap decrypts into the buffer given).
    const rd = new SlabReader((chunk) => this.onData(chunk));
    if (takeReads(s, rd)) this.slab = rd;
    s.resume();
  }

  private canParse(): boolean {
    const ex = this.ex;
    return !this.bodyFull && (ex === null || ex.reading);
  }

  private onData(chunk: Buffer): void {
    if (this.closedAt !== 0) return; // closing: what the client still sends is dropped
    if (this.ex === null && this.headStart === 0) {
      this.headStart = this.sh.wheel.clock.now();
      this.idleSince = 0;
    }
    const p = this.pending;
    if (p !== null || !this.canParse()) {
      const all = p === null ? chunk : Buffer.concat([p, chunk]);
      if (!this.canParse()) {
        this.pending = all;
        if (all.length > PIPELINE_LIMIT) this.socket.pause();
        return;
      }
      this.pending = null;
      this.parse(all);
      return;
    }
    this.parse(chunk);
  }

  /** Parses buf until it is used up or parsing must wait; starts the request a head began. */
  private parse(buf: Buffer): void {
    const r = this.reader;
    let off = 0;
    let started: H1Exchange | null = null;
    try {
      for (;;) {
        const ev = r.next(buf, off);
        off = r.pos;
        if (ev === R_HEAD) {
          const ex = this.onHead(buf, off);
          if (ex === null) return; // refused: answered, closing
          started = ex;
          if (ex.upgradeAnswer) {
            off = buf.length; // the rest went with the socket (Upgrade) or is not HTTP/1 (h2c)
            break;
          }
        } else if (ev === R_DATA) {
          const ex = this.ex as H1Exchange;
          if (!ex.bodyData(buf.subarray(r.dataStart, r.dataEnd))) {
            this.bodyFull = true;
            this.socket.pause();
            break;
          }
        } else if (ev === R_END) {
          const ex = this.ex as H1Exchange;
          const t = r.decoder.trailers;
          if (t.count > 0) ex.bodyTrailers(t.toArray());
          ex.bodyEnd();
          if (ex.finished) {
            // Answered before its body was all here (a refusal): the body was read to nowhere.
            this.ex = null;
            this.afterResponse(ex);
            if (this.closedAt !== 0) return;
            continue;
          }
          break; // the next request waits for this response
        } else {
          break;
        }
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    if (off < buf.length) this.keep(buf.subarray(off));
    // After the whole read: a malformed body in the same packet as the head is refused above,
    // before the request goes anywhere.
    if (started !== null && !this.gone) this.sh.o.handler(started.ctx as RequestContext);
  }

  private keep(rest: Buffer): void {
    this.pending = this.pending === null ? rest : Buffer.concat([this.pending, rest]);
    if (this.pending.length > PIPELINE_LIMIT) this.socket.pause();
  }

  /** A complete head: the context, or null when it was refused or the connection handed over. */
  private onHead(buf: Buffer, after: number): H1Exchange | null {
    const h = this.reader.head;
    const sh = this.sh;
    const o = sh.o;
    this.headStart = 0;
    this.idleSince = 0;
    const raw = h.toArray();
    const method = h.method;
    let target = h.target();
    const ex = new H1Exchange(this, method, h.minor, keepAlive(h, this.reader.body));
    this.ex = ex;
    if (hasHigh(target)) target = percentEncodeHigh(target);
    const path = requestPath(target);
    if (typeof path !== 'string') return this.refuse(ex, target, raw, path);
    const framing = framingProblem(method, raw);
    if (framing !== undefined) return this.refuse(ex, target, raw, new BadRequestError(framing));
    // RFC 9110 §10.1.1: an expectation we cannot meet is 417 (as node:http answered), HTTP/1.1 only.
    if (h.expectOther && h.minor === 1)
      return this.refuse(ex, target, raw, new ExpectationFailedError(expectValue(raw)));
    const headers: string[] = [];
    headInfo.hasBody = false;
    headInfo.upgrade = undefined;
    const kept: number[] = [];
    filterRequestHeaders(raw, headers, headInfo, kept);
    const hasBody = headInfo.hasBody;
    const protocols = headInfo.upgrade;
    const upgrading = h.connectionUpgrade && protocols !== undefined;
    if (upgrading && hasBody)
      return this.refuse(ex, target, raw, new BadRequestError('an Upgrade request cannot carry a body'));
    if (hasBody) ex.body = new H1Body(this);
    const ctx = this.context(ex, method, path, raw, headers, hasBody);
    ctx.checkedHead = new CheckedHead(path, headers.slice(), h.textOf(), keptRequestLines(h, kept));
    ex.ctx = ctx;
    if (o.draining()) ex.keepAlive = false;
    if (upgrading) {
      // The parser lets go of this connection: the answer before a 101 goes out through `ex`,
      // and the connection closes after it (no further request is read on it).
      ex.keepAlive = false;
      ex.upgradeAnswer = true;
      this.reader.tunnel();
      ex.reading = false;
      if (!isH2c(protocols)) {
        this.handOver();
        const s = this.socket;
        const rest = after < buf.length ? buf.subarray(after) : EMPTY;
        ctx.upgrade = {
          socket: s,
          head: this.pending === null ? rest : Buffer.concat([this.pending, rest]),
          protocols,
        };
        this.pending = null;
      }
      // h2c: served as the plain request it also is (RFC 9110 §7.8 lets a server ignore Upgrade).
      return ex;
    }
    if (h.expectContinue && hasBody && h.minor === 1) this.socket.write(CONTINUE, 'latin1');
    return ex;
  }

  /** A head the checks refuse: the one error writer answers, the connection closes after it. */
  private refuse(ex: H1Exchange, target: string, raw: string[], err: ProxyError): null {
    const ctx = this.context(ex, ex.method, target, raw, [], false);
    ex.ctx = ctx;
    ex.keepAlive = false;
    ex.reading = false;
    this.reader.tunnel(); // nothing after this head is parsed
    const r = rescue(err, '');
    writeErrorResponse(ctx, r, true);
    (this.conn.peer ?? this.sh.o.metrics).requests(r.status).inc();
    return null;
  }

  private context(
    ex: H1Exchange,
    method: string,
    path: string,
    raw: string[],
    headers: string[],
    hasBody: boolean,
  ): RequestContext {
    return new RequestContext(
      this.sh.o.direction,
      ex,
      ex.body,
      method,
      path,
      raw,
      ex.minor === 1 ? '1.1' : '1.0',
      performance.now(),
      this.conn,
      headers,
      hasBody,
      this.sh.local,
    );
  }

  /** Upgrade: upgrade.ts owns the socket's bytes from now on. */
  private handOver(): void {
    const s = this.socket;
    // Reads that took the slab path go into the Readable again, for whoever takes the socket.
    this.slab?.toStream(s);
    s.removeAllListeners('data');
    s.removeAllListeners('end');
    s.pause();
    this.timed = false;
    this.sh.wheel.cancel(this);
  }

  /** The request body's reader wants more. */
  bodyWanted(): void {
    if (!this.bodyFull) return;
    this.bodyFull = false;
    this.socket.resume();
    const p = this.pending;
    if (p !== null) {
      this.pending = null;
      this.parse(p);
    }
  }

  /** The response of `ex` ended (everything handed to the socket). */
  responseEnded(ex: H1Exchange): void {
    if (ex.reading) {
      // Answered before its body was all here: the rest is read to nowhere, then afterResponse.
      this.bodyWanted();
      return;
    }
    if (this.ex === ex) this.ex = null;
    this.afterResponse(ex);
  }

  private afterResponse(ex: H1Exchange): void {
    if (ex.upgradeAnswer) {
      this.closing();
      closeAfterAnswer(this.socket);
      return;
    }
    if (!ex.keepAlive || ex.closeAfter || this.sh.o.draining()) {
      this.closeOurSide();
      return;
    }
    this.headStart = 0;
    this.idleSince = this.sh.wheel.clock.now();
    if (this.pending !== null) {
      // Pipelined: the next request starts on the next turn, not inside this response's end.
      this.socket.resume();
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(parsePending, this);
      }
    }
  }

  parsePending(): void {
    this.scheduled = false;
    const p = this.pending;
    if (p === null || !this.canParse() || this.gone || this.closedAt !== 0) return;
    this.pending = null;
    this.headStart = this.sh.wheel.clock.now();
    this.idleSince = 0;
    this.parse(p);
  }

  /** Our side closes: the client has CLOSE_GRACE_MS to close its own (once per connection). */
  private closing(): void {
    const w = this.sh.wheel;
    this.closedAt = w.clock.now();
    if (this.timed) w.arm(this, CLOSE_GRACE_MS);
  }

  private closeOurSide(): void {
    this.closing();
    this.pending = null;
    this.socket.end();
  }

  /** A malformed head or body (or a head timeout): answered when it still can be, then closed. */
  private fail(err: unknown): void {
    const e = this.requestError(err);
    const ex = this.ex;
    this.reader.tunnel();
    if (ex !== null) {
      ex.body?.destroy();
      if (ex.headersSent || ex.finished) {
        this.gone = true;
        this.socket.destroy();
        return;
      }
      // The exchange is cut: the forwarder stops, this stage answers.
      ex.dead = true;
      ex.owner?.clientClosed();
    }
    const o = this.sh.o;
    const r = rescue(e, '');
    (this.conn.peer ?? o.metrics).requests(r.status).inc();
    if (o.log.isLevelEnabled('info')) {
      o.log.info(
        {
          event: 'bad_request',
          direction: o.direction,
          code: r.code,
          parser: err instanceof Http1Error ? err.reason : '',
          status: r.status,
        },
        e.message,
      );
    }
    this.pending = null;
    this.closing();
    this.socket.end(closingAnswer(r));
    // Read and drop what the client still sends, so the close does not reset the answer away.
    this.socket.resume();
  }

  /** The request-limit answers keep the codes of the node:http stage (errors.ts, rescue.ts). */
  private requestError(err: unknown): ProxyError {
    if (err instanceof Http1HeadTooLargeError) return new HeadersTooLargeError(this.sh.o.maxHeaderBytes);
    if (err instanceof Http1TooManyFieldsError) return new TooManyHeadersError(this.sh.o.maxHeaders);
    if (err instanceof RequestHeadTimeoutError) return err;
    if (err instanceof Http1Error) return new BadRequestError(`${err.reason}: ${err.message}`);
    return new BadRequestError(err instanceof Error ? err.message : String(err));
  }

  private onEnd(): void {
    if (this.closedAt !== 0) return; // our side is closed already; the close follows
    // The client closed its side. Mid-head or mid-body: a truncated request, answered 400.
    try {
      this.reader.end();
    } catch (err) {
      this.fail(err);
      return;
    }
    // As node:http (no half-open HTTP): a request still in flight is abandoned, our side closes.
    const ex = this.ex;
    if (ex !== null && !ex.finished) {
      ex.dead = true;
      ex.body?.destroy();
      ex.owner?.clientClosed();
    }
    this.closeOurSide();
  }

  private onClose(): void {
    this.gone = true;
    this.sh.conns.delete(this);
    this.timed = false;
    this.sh.wheel.cancel(this);
    const ex = this.ex;
    this.ex = null;
    if (ex !== null && !ex.finished && !ex.handedOver()) {
      ex.dead = true;
      ex.body?.destroy();
      ex.owner?.clientClosed();
    }
  }

  closeIfIdle(): void {
    if (this.ex === null && this.pending === null && this.headStart === 0) this.socket.destroy();
  }

  /** The wheel: is a deadline due? If not, look again after what is left (at most pollMs). */
  expire(now: number): void {
    if (!this.timed) return;
    const sh = this.sh;
    const w = sh.wheel;
    let left = sh.pollMs;
    if (this.closedAt !== 0) {
      left = w.remaining(this.closedAt, CLOSE_GRACE_MS, now);
      if (left === 0) {
        this.socket.destroy();
        return;
      }
    } else if (this.ex !== null) {
      // busy: no timeout of ours runs (the layers' own do)
    } else if (this.headStart !== 0) {
      left = w.remaining(this.headStart, sh.headTimeoutMs, now);
      if (left === 0) {
        this.fail(new RequestHeadTimeoutError(sh.headTimeoutMs)); // arms the close grace
        return;
      }
    } else if (this.idleSince !== 0) {
      left = w.remaining(this.idleSince, KEEP_ALIVE_MS, now);
      if (left === 0) {
        this.socket.destroy();
        return;
      }
    }
    w.arm(this, Math.min(left, sh.pollMs));
  }
}

function parsePending(c: H1Conn): void {
  c.parsePending();
}

const EMPTY = Buffer.alloc(0);

/** The request body: a Readable the upstream client reads, fed by the connection's parser. */
class H1Body extends Readable implements RequestBody {
  bytesReceived = 0;
  trailers: string[] | null = null;

  constructor(private readonly c: H1Conn) {
    super();
  }

  override _read(): void {
    this.c.bodyWanted();
  }
}

/**
 * One request and its response (DownstreamResponse, exchange.ts): the response head is encoded
 * here and held until the first body bytes or the end, so head and body leave in one write.
 */
class H1Exchange implements DownstreamResponse {
  ctx: RequestContext | undefined = undefined;
  body: H1Body | null = null;
  owner: ResponseOwner | undefined = undefined;
  headersSent = false;
  finished = false;
  /** the request body is still being parsed */
  reading = false;
  /** cut (the client left, or the stage answered instead): writes are dropped */
  dead = false;
  /** the answer to an Upgrade request that got no 101: the connection closes after it */
  upgradeAnswer = false;
  /** the response asked for (or its framing needs) a close after it */
  closeAfter = false;
  private head: string | null = null;
  /** a Connection field given to writeHead said close */
  private closeAsked = false;
  private chunked = false;
  private noBody = false;

  constructor(
    private readonly c: H1Conn,
    readonly method: string,
    readonly minor: number,
    public keepAlive: boolean,
  ) {
    this.reading = true;
  }

  handedOver(): boolean {
    return this.ctx?.upgrade !== undefined;
  }

  bodyData(chunk: Buffer): boolean {
    const b = this.body;
    if (b === null || this.finished || b.destroyed) return true; // answered already: dropped
    b.bytesReceived += chunk.length;
    return b.push(chunk);
  }

  /** The chunked body's trailer section (parsed and checked by the codec): filtered, kept for 'end'. */
  bodyTrailers(raw: string[]): void {
    const b = this.body;
    if (b === null) return;
    const out: string[] = [];
    filterTrailers(raw, out);
    if (out.length > 0) b.trailers = out;
  }

  bodyEnd(): void {
    this.reading = false;
    const b = this.body;
    if (b !== null && !b.destroyed) b.push(null);
  }

  writeHead(status: number, reason: string, headers: readonly string[]): void {
    if (this.headersSent || this.dead) return;
    this.headersSent = true;
    const f = HEAD_FACTS;
    f.contentLength = false;
    f.date = false;
    const s = this.fieldsOf(statusLine(status, reason), headers, f);
    this.headEnd(s, status, f);
  }

  /**
   * The head of a response our HTTP/1 codec parsed (the forwarder's case): its kept field lines
   * go out as they came, cut from the head's text (keptResponseLines); the status line too when
   * it is HTTP/1.1 with a reason. `h` is the codec's scratch: read now, not kept.
   */
  writeHeadFields(h: ResponseHead, extra: readonly string[] | undefined): void {
    if (this.headersSent || this.dead) return;
    this.headersSent = true;
    const f = HEAD_FACTS;
    const asIs = h.minor === 1 && h.reasonEnd > h.reasonStart;
    let s = keptResponseLines(h, asIs, f);
    if (!asIs) s = statusLine(h.status, h.reasonPhrase()) + s;
    if (extra !== undefined) s = this.fieldsOf(s, extra, f);
    this.headEnd(s, h.status, f);
  }

  /** `s` and the fields of a flat list, noting Content-Length and Date; Connection's close counts. */
  private fieldsOf(s: string, headers: readonly string[], f: KeptFacts): string {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i] as string;
      const value = headers[i + 1] as string;
      const n = name.length;
      if (n === 14 && name.toLowerCase() === 'content-length') f.contentLength = true;
      else if (n === 10 && name.toLowerCase() === 'connection') {
        // Ours to send: only its `close` counts.
        if (value.toLowerCase().includes('close')) this.closeAsked = true;
        continue;
      } else if (n === 17 && name.toLowerCase() === 'transfer-encoding') continue;
      else if (n === 4 && name.toLowerCase() === 'date') f.date = true;
      s += `${name}: ${value}\r\n`;
    }
    return s;
  }

  /** The framing, Date and Connection fields after the head's own, and the empty line. */
  private headEnd(head: string, status: number, f: KeptFacts): void {
    const c = this.c;
    let s = head;
    let close = this.closeAsked || !this.keepAlive || c.sh.o.draining();
    this.noBody = this.method === 'HEAD' || status === 204 || status === 304;
    if (!this.noBody && !f.contentLength) {
      if (this.minor === 1) {
        this.chunked = true;
        s += 'transfer-encoding: chunked\r\n';
      } else close = true; // an HTTP/1.0 client: the body ends with the connection
    }
    if (!f.date) s += `date: ${c.sh.date}\r\n`;
    // As node:http said it: clients and tests read `connection` either way.
    s += close ? 'connection: close\r\n' : KEEP_ALIVE_FIELDS;
    this.closeAfter = close;
    this.head = `${s}\r\n`;
  }

  write(chunk: Buffer): boolean {
    if (this.dead || this.finished) return true;
    const head = this.head;
    this.head = null;
    if (this.noBody || chunk.length === 0) return head === null ? true : this.send(head, null, null);
    return this.send(head, chunk, null);
  }

  end(last?: Buffer | string, trailers?: readonly string[] | null): void {
    if (this.dead || this.finished) return;
    // utf8, as the writers measured it (Buffer.byteLength) for their Content-Length
    let chunk = last === undefined ? null : typeof last === 'string' ? Buffer.from(last) : last;
    if (chunk !== null && (chunk.length === 0 || this.noBody)) chunk = null;
    const tail = this.chunked ? lastChunk(trailers) : null;
    const head = this.head;
    this.head = null;
    if (head !== null || chunk !== null || tail !== null) this.send(head, chunk, tail);
    this.finished = true;
    this.c.responseEnded(this);
  }

  /**
   * The pending head, a body piece (framed when chunked) and the chunked end, in one write: one
   * latin1 string when the piece is small (one syscall, no writev; latin1 maps each byte to one
   * char and back, and a string write needs no Buffer allocated and filled: counted ~2,500
   * instructions per request fewer), corked parts around a large piece (not copied).
   */
  private send(head: string | null, chunk: Buffer | null, tail: string | null): boolean {
    const s = this.c.socket;
    const n = chunk === null ? 0 : chunk.length;
    let before = head ?? '';
    let after = '';
    if (this.chunked && n > 0) {
      before += `${n.toString(16)}\r\n`;
      after = CRLF;
    }
    if (tail !== null) after += tail;
    if (n > COPY_LIMIT) {
      s.cork();
      if (before.length > 0) s.write(before, 'latin1');
      let ok = s.write(chunk as Buffer);
      if (after.length > 0) ok = s.write(after, 'latin1');
      s.uncork();
      return ok;
    }
    const mid = n > 0 ? (chunk as Buffer).toString('latin1', 0, n) : '';
    return s.write(before + mid + after, 'latin1');
  }

  destroy(): void {
    if (this.finished && !this.dead) return;
    this.dead = true;
    this.c.socket.destroy();
  }

  attach(owner: ResponseOwner): void {
    this.owner = owner;
  }

  bytesMoved(): number {
    const s = this.c.socket;
    return s.bytesRead + s.bytesWritten;
  }
}

/** The end of a chunked response, with the trailers that may cross the proxy (filterTrailers). */
function lastChunk(trailers: readonly string[] | null | undefined): string {
  if (trailers == null || trailers.length === 0) return LAST_CHUNK;
  const out: string[] = [];
  filterTrailers(trailers, out);
  return lastChunkText(out);
}

const LAST_CHUNK = '0\r\n\r\n';

/** writeHead's scratch: a head is built synchronously, so one serves every exchange. */
const HEAD_FACTS: KeptFacts = { contentLength: false, date: false };

function statusLine(status: number, reason: string): string {
  return `HTTP/1.1 ${status} ${reason === '' ? (STATUS_CODES[status] ?? '') : reason}\r\n`;
}

/** The value(s) of the Expect fields, for the 417's message. */
function expectValue(raw: readonly string[]): string {
  const v: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2)
    if ((raw[i] as string).toLowerCase() === 'expect') v.push(raw[i + 1] as string);
  return v.join(', ');
}

/** A request-target with raw bytes ≥ 0x80 (UTF-8 paths): the desync corpus counts it Compliant. */
function hasHigh(t: string): boolean {
  for (let i = 0; i < t.length; i++) if (t.charCodeAt(i) >= 0x80) return true;
  return false;
}

/** Those bytes percent-encoded (the target is latin1: one char per byte), so the path checks and
 * the upstream see RFC 3986. */
function percentEncodeHigh(t: string): string {
  let out = '';
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    out += c >= 0x80 ? `%${c.toString(16).toUpperCase()}` : t[i];
  }
  return out;
}
