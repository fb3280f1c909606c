/**
 * One side of an HTTP/1.1 connection as a stream of messages: heads (head.ts) and bodies
 * (framing.ts) in turn, pipelined messages included. Pull-style like the decoder: `next(buf,
 * off)` returns one event and leaves `pos` where it stopped; the caller loops while it wants
 * more (that is its backpressure: it simply stops calling) and keeps `buf[pos..]` otherwise.
 *
 * A head's fields point into the Buffer they arrived in (or into the reader's own copy when
 * the head came in pieces) and are valid until the next R_HEAD.
 */
import { Http1IncompleteError, Http1UnexpectedDataError } from '../errors.js';
import type { Http1Side } from '../errors.js';
import {
  BODY_INFORMATIONAL,
  BODY_NONE,
  BODY_TUNNEL,
  BodyDecoder,
  EV_DATA,
  EV_END,
  requestBody,
  responseBody,
} from './framing.js';
import { HeadReader, RequestHead, ResponseHead, parseRequestHead, parseResponseHead } from './head.js';
import type { HeadLimits } from './head.js';

/** every byte was used; call again with the next chunk */
export const R_NEED_MORE = 0;
/** a head was parsed: `head`, `body` (BODY_*) and `bodyLength` describe it */
export const R_HEAD = 1;
/** body bytes at buf[dataStart..dataEnd) */
export const R_DATA = 2;
/** the message is complete (a chunked body's trailers are in `decoder.trailers`) */
export const R_END = 3;

const M_HEAD = 0;
const M_BODY = 1;
/** after a tunnel head: the rest of the bytes are not HTTP */
const M_TUNNEL = 2;

abstract class MessageReader {
  pos = 0;
  dataStart = 0;
  dataEnd = 0;
  /** what follows the last head: BODY_* */
  body = BODY_NONE;
  readonly decoder: BodyDecoder;
  protected readonly heads: HeadReader;
  protected mode = M_HEAD;

  constructor(
    protected readonly side: Http1Side,
    protected readonly limits: HeadLimits,
  ) {
    this.heads = new HeadReader(side, limits);
    this.decoder = new BodyDecoder(side, limits);
  }

  protected abstract parseHead(buf: Buffer, start: number, end: number): void;

  /** One event from buf[off..] (R_*); `pos` is where it stopped. */
  next(buf: Buffer, off: number): number {
    if (this.mode === M_BODY) {
      const ev = this.decoder.decode(buf, off);
      this.pos = this.decoder.pos;
      if (ev === EV_DATA) {
        this.dataStart = this.decoder.dataStart;
        this.dataEnd = this.decoder.dataEnd;
        return R_DATA;
      }
      if (ev === EV_END) {
        this.mode = M_HEAD;
        return R_END;
      }
      return R_NEED_MORE;
    }
    if (this.mode === M_TUNNEL) {
      this.pos = off;
      return R_NEED_MORE;
    }
    if (off >= buf.length) {
      this.pos = off;
      return R_NEED_MORE;
    }
    this.before(buf, off);
    const h = this.heads;
    if (!h.read(buf, off)) {
      this.pos = h.pos;
      return R_NEED_MORE;
    }
    this.pos = h.pos;
    this.parseHead(h.buf, h.start, h.end);
    if (this.body === BODY_TUNNEL) this.mode = M_TUNNEL;
    else if (this.body !== BODY_INFORMATIONAL) this.mode = M_BODY;
    return R_HEAD;
  }

  /** Forgets any message in progress (a new connection, or after a tunnel ended). */
  reset(): void {
    this.mode = M_HEAD;
    this.body = BODY_NONE;
    this.heads.reset();
    this.decoder.start(BODY_NONE, 0);
  }

  /** A hook before a head's first byte is read. */
  protected before(_buf: Buffer, _off: number): void {}

  /**
   * The peer closed its side: true when that ends a message cleanly (between messages, or a
   * close-delimited body, then `next` gives R_END); throws Http1IncompleteError otherwise.
   */
  end(): boolean {
    if (this.mode === M_BODY) {
      this.decoder.finish();
      return true;
    }
    if (this.mode === M_HEAD && !this.heads.idle()) throw new Http1IncompleteError(this.side, 'head');
    return true;
  }
}

export class RequestReader extends MessageReader {
  readonly head: RequestHead;

  constructor(limits: HeadLimits) {
    super('request', limits);
    this.head = new RequestHead(limits.maxFields);
  }

  protected parseHead(buf: Buffer, start: number, end: number): void {
    const head = this.head;
    parseRequestHead(buf, start, end, head, this.limits);
    // CONNECT and an Upgrade the caller accepts switch protocols only once it answers; the
    // bytes after the head stay unread until then (the caller decides, then calls tunnel()).
    this.body = requestBody(head);
    this.decoder.start(this.body, head.contentLength);
  }

  /** The caller answered an Upgrade or CONNECT: everything after the head is another protocol. */
  tunnel(): void {
    this.mode = M_TUNNEL;
  }
}

export class ResponseReader extends MessageReader {
  readonly head: ResponseHead;
  private method = 'GET';
  private upgradeAsked = false;
  private expecting = false;

  constructor(limits: HeadLimits) {
    super('response', limits);
    this.head = new ResponseHead(limits.maxFields);
  }

  /** The request the next response answers (its method decides HEAD and CONNECT framing). */
  expect(method: string, upgradeAsked: boolean): void {
    this.method = method;
    this.upgradeAsked = upgradeAsked;
    this.expecting = true;
  }

  protected override before(): void {
    if (!this.expecting)
      throw new Http1UnexpectedDataError('response', 'bytes from the upstream with no request outstanding');
  }

  protected parseHead(buf: Buffer, start: number, end: number): void {
    const head = this.head;
    parseResponseHead(buf, start, end, head, this.limits);
    this.body = responseBody(head, this.method, this.upgradeAsked);
    if (this.body !== BODY_INFORMATIONAL) this.expecting = false;
    this.decoder.start(this.body, head.contentLength);
  }
}
