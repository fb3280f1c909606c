/**
 * Body framing (RFC 9112 §6, §7): which body follows a head, and an incremental decoder for
 * it. The decoder is pull-style: `decode(buf, off)` returns one event and leaves `pos` where it
 * stopped, and body bytes are reported as a range of the caller's Buffer (`dataStart..dataEnd`),
 * never copied. The chunk-size line is a byte state machine, so a line split across reads needs
 * no buffer; only a trailer section is gathered (it is rare and small).
 */
import {
  Http1ChunkError,
  Http1FramingError,
  Http1HeadTooLargeError,
  Http1IncompleteError,
  Http1SyntaxError,
} from '../errors.js';
import type { Http1Side } from '../errors.js';
import { F_CONTENT_LENGTH, F_HOST, F_TRANSFER_ENCODING, Fields, parseFields } from './head.js';
import type { HeadLimits, RequestHead, ResponseHead } from './head.js';

// What follows a head.
/** no body: the next message (or nothing) follows at once */
export const BODY_NONE = 0;
/** exactly `length` bytes */
export const BODY_LENGTH = 1;
export const BODY_CHUNKED = 2;
/** a response whose body runs until the upstream closes (no length, not chunked) */
export const BODY_CLOSE = 3;
/** a 1xx other than 101: no body, and the final response head follows */
export const BODY_INFORMATIONAL = 4;
/** 101 to an Upgrade, or 2xx to CONNECT: the bytes that follow are another protocol */
export const BODY_TUNNEL = 5;

// Events of BodyDecoder.decode.
/** every byte of the input was used and the body goes on */
export const EV_NEED_MORE = 0;
/** body bytes at buf[dataStart..dataEnd) */
export const EV_DATA = 1;
/** the body ended; `pos` is the first byte after it (a pipelined message, or nothing) */
export const EV_END = 2;

/** The body a request head announces (a request is never close-delimited). */
export function requestBody(head: RequestHead): number {
  if (head.chunked) return BODY_CHUNKED;
  return head.contentLength > 0 ? BODY_LENGTH : BODY_NONE;
}

/**
 * The body a response head announces (RFC 9112 §6.3), given the request it answers. A 101
 * nobody asked for is refused: it would turn the connection into a tunnel behind our back.
 */
export function responseBody(head: ResponseHead, method: string, upgradeAsked: boolean): number {
  const s = head.status;
  if (s < 200) {
    if (s !== 101) return BODY_INFORMATIONAL;
    if (!upgradeAsked)
      throw new Http1FramingError('response', 'unexpected_101', '101 to a request without Upgrade');
    return BODY_TUNNEL;
  }
  if (method === 'HEAD' || s === 204 || s === 304) return BODY_NONE;
  if (method === 'CONNECT' && s < 300) return BODY_TUNNEL;
  if (head.chunked) return BODY_CHUNKED;
  if (head.contentLength >= 0) return head.contentLength === 0 ? BODY_NONE : BODY_LENGTH;
  return BODY_CLOSE;
}

/** May the connection carry another message after this one (RFC 9112 §9.3)? */
export function keepAlive(head: RequestHead | ResponseHead, body: number): boolean {
  if (body === BODY_CLOSE || body === BODY_TUNNEL) return false;
  if (head.connectionClose) return false;
  return head.minor === 1 || head.connectionKeepAlive;
}

// Decoder states.
const S_IDLE = 0;
const S_LENGTH = 1;
const S_SIZE = 2; // hex digits
const S_EXT_PRE = 4; // after ';'
const S_EXT_NAME = 5;
const S_EXT_VAL_PRE = 7; // after '='
const S_EXT_TOKEN = 8;
const S_EXT_QUOTED = 9;
const S_EXT_ESCAPE = 10;
const S_EXT_AFTER = 11; // after a quoted value: ';' or CR
const S_SIZE_LF = 12;
const S_DATA = 13;
const S_DATA_CR = 14;
const S_DATA_LF = 15;
const S_TRAILERS = 16;
const S_CLOSE = 17;
const S_DONE = 18;

/** 2^52: a longer chunk cannot be counted exactly in a double; no real chunk is near it */
const MAX_CHUNK = 2 ** 52;
/** longest chunk-size line (size and extensions) */
const MAX_CHUNK_LINE = 4096;

const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;
/** hex digit values, -1 for others */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

const EMPTY = Buffer.alloc(0);

export class BodyDecoder {
  /** after EV_DATA: the body bytes are buf[dataStart..dataEnd) of the Buffer given to decode */
  dataStart = 0;
  dataEnd = 0;
  /** where decode stopped in its input */
  pos = 0;
  /** the trailer section of a chunked body that had one (valid after EV_END), else count 0 */
  readonly trailers: Fields;
  private state = S_IDLE;
  private remaining = 0;
  private lineBytes = 0;
  private digits = 0;
  private trailerAcc: Buffer = EMPTY;
  private trailerLen = 0;

  constructor(
    private readonly side: Http1Side,
    private readonly limits: HeadLimits,
  ) {
    this.trailers = new Fields(limits.maxFields);
  }

  /** Starts the body of a head: `body` is a BODY_* from requestBody/responseBody. */
  start(body: number, length: number): void {
    this.trailers.count = 0;
    switch (body) {
      case BODY_LENGTH:
        this.state = S_LENGTH;
        this.remaining = length;
        return;
      case BODY_CHUNKED:
        this.state = S_SIZE;
        this.remaining = 0;
        this.digits = 0;
        this.lineBytes = 0;
        return;
      case BODY_CLOSE:
        this.state = S_CLOSE;
        return;
      default:
        this.state = S_DONE;
    }
  }

  /** The body ended, or never started. */
  done(): boolean {
    return this.state === S_DONE || this.state === S_IDLE;
  }

  /** The peer closed the connection: ends a close-delimited body, or throws (truncated). */
  finish(): void {
    if (this.state === S_CLOSE || this.state === S_DONE || this.state === S_IDLE) {
      this.state = S_DONE;
      return;
    }
    throw new Http1IncompleteError(this.side, this.state === S_LENGTH ? 'body' : 'chunked body');
  }

  /** Decodes buf[off..]: one event (EV_*); `pos` is where it stopped. */
  decode(buf: Buffer, off: number): number {
    const len = buf.length;
    switch (this.state) {
      case S_LENGTH: {
        if (off >= len) return this.needMore(len);
        const n = Math.min(this.remaining, len - off);
        this.dataStart = off;
        this.dataEnd = off + n;
        this.pos = off + n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = S_DONE;
        return EV_DATA;
      }
      case S_CLOSE:
        if (off >= len) return this.needMore(len);
        this.dataStart = off;
        this.dataEnd = len;
        this.pos = len;
        return EV_DATA;
      case S_DONE:
        this.state = S_IDLE;
        this.pos = off;
        return EV_END;
      case S_IDLE:
        this.pos = off;
        return EV_END;
      default:
        return this.chunked(buf, off, len);
    }
  }

  private needMore(len: number): number {
    this.pos = len;
    return EV_NEED_MORE;
  }

  private chunked(buf: Buffer, i: number, len: number): number {
    let state = this.state;
    while (i < len) {
      if (state === S_DATA) {
        const n = Math.min(this.remaining, len - i);
        this.dataStart = i;
        this.dataEnd = i + n;
        this.pos = i + n;
        this.remaining -= n;
        this.state = this.remaining === 0 ? S_DATA_CR : S_DATA;
        return EV_DATA;
      }
      if (state === S_TRAILERS) {
        this.state = state;
        return this.trailerBytes(buf, i, len);
      }
      const c = buf[i++] as number;
      if (state <= S_SIZE_LF && ++this.lineBytes > MAX_CHUNK_LINE)
        throw this.error('chunk_line_too_long', `chunk-size line longer than ${MAX_CHUNK_LINE} bytes`);
      switch (state) {
        case S_SIZE: {
          const v = HEX[c] as number;
          if (v !== -1) {
            if (this.remaining >= MAX_CHUNK / 16)
              throw this.error('chunk_size_overflow', 'chunk size too large');
            this.remaining = this.remaining * 16 + v;
            this.digits++;
            break;
          }
          if (this.digits === 0) throw this.error('chunk_size', 'chunk size is not a hex number');
          state = this.afterSize(c);
          break;
        }
        case S_EXT_PRE:
          if (TCHAR[c] !== 1) throw this.error('chunk_extension', 'chunk extension name is not a token');
          state = S_EXT_NAME;
          break;
        case S_EXT_NAME:
          if (TCHAR[c] === 1) break;
          state = c === 0x3d ? S_EXT_VAL_PRE : this.afterValue(c);
          break;
        case S_EXT_VAL_PRE:
          if (c === 0x22) state = S_EXT_QUOTED;
          else if (TCHAR[c] === 1) state = S_EXT_TOKEN;
          else throw this.error('chunk_extension', 'chunk extension value is not a token or quoted-string');
          break;
        case S_EXT_TOKEN:
          if (TCHAR[c] === 1) break;
          state = this.afterValue(c);
          break;
        case S_EXT_QUOTED:
          // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
          if (c === 0x22) state = S_EXT_AFTER;
          else if (c === 0x5c) state = S_EXT_ESCAPE;
          else if ((c < 0x20 && c !== 0x09) || c === 0x7f)
            throw this.error('chunk_extension', 'control character in a chunk extension');
          break;
        case S_EXT_ESCAPE:
          if ((c < 0x20 && c !== 0x09) || c === 0x7f)
            throw this.error('chunk_extension', 'control character in a chunk extension');
          state = S_EXT_QUOTED;
          break;
        case S_EXT_AFTER:
          state = this.afterValue(c);
          break;
        case S_SIZE_LF:
          if (c !== 0x0a) throw this.error('chunk_line', 'chunk-size line: CR not followed by LF');
          this.lineBytes = 0;
          this.digits = 0;
          if (this.remaining === 0) {
            // last-chunk: the trailer section (maybe empty) ends the body
            this.trailerLen = 0;
            state = S_TRAILERS;
          } else {
            state = S_DATA;
          }
          break;
        case S_DATA_CR:
          if (c !== 0x0d) throw this.error('chunk_missing_crlf', 'chunk data not followed by CRLF');
          state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (c !== 0x0a) throw this.error('chunk_missing_crlf', 'chunk data not followed by CRLF');
          state = S_SIZE;
          this.remaining = 0;
          break;
        default:
          throw this.error('chunk_state', `decoder in state ${state}`);
      }
    }
    this.state = state;
    return this.needMore(len);
  }

  /**
   * After the size digits: ';' or CR. Whitespace there is refused although RFC 9112 allows BWS
   * before ';': Node's parser refused it too, and parsers that differ on it can be desynced.
   */
  private afterSize(c: number): number {
    if (c === 0x3b) return S_EXT_PRE;
    if (c === 0x0d) return S_SIZE_LF;
    if (c === 0x0a) return this.fail('chunk_line', 'LF without CR after a chunk size');
    if (c === 0x20 || c === 0x09) return this.fail('chunk_size', 'whitespace after a chunk size');
    return this.fail('chunk_size', 'chunk size is not a hex number');
  }

  private fail(reason: string, detail: string): never {
    throw this.error(reason, detail);
  }

  /**
   * After an extension name or value: ';' or CR. No whitespace anywhere in a chunk-size line
   * (RFC 9112 allows BWS; Node's parser refused it, and so do we: fewer ways to read one line).
   */
  private afterValue(c: number): number {
    if (c === 0x3b) return S_EXT_PRE;
    if (c === 0x0d) return S_SIZE_LF;
    throw this.error('chunk_extension', 'bad character after a chunk extension value');
  }

  /**
   * The trailer section: `*( field-line CRLF ) CRLF` after the last chunk, gathered until its
   * empty line, then parsed with the head's field rules. Fields that frame a message (Content-
   * Length, Transfer-Encoding, Host) are refused there: a later parser might act on them.
   */
  private trailerBytes(buf: Buffer, i: number, len: number): number {
    const max = this.limits.maxHeadBytes;
    if (this.trailerLen === 0 && len - i >= 2 && buf[i] === 0x0d && buf[i + 1] === 0x0a) {
      this.state = S_DONE;
      this.pos = i + 2;
      return this.decode(buf, i + 2);
    }
    // Gather: the section is the bytes up to and including the first CRLFCRLF (or a leading CRLF).
    let acc = this.trailerAcc;
    const prev = this.trailerLen;
    const take = Math.min(len - i, max + 4 - prev);
    if (acc.length < prev + take) {
      const grown = Buffer.allocUnsafe(Math.min(Math.max(prev + take, 256, acc.length * 2), max + 4));
      acc.copy(grown, 0, 0, prev);
      acc = grown;
      this.trailerAcc = acc;
    }
    buf.copy(acc, prev, i, i + take);
    const total = prev + take;
    let end = -1;
    if (total >= 2 && acc[0] === 0x0d && acc[1] === 0x0a) end = 2;
    else {
      for (
        let k = acc.indexOf(0x0d, Math.max(0, prev - 3));
        k !== -1 && k + 3 < total;
        k = acc.indexOf(0x0d, k + 1)
      ) {
        if (acc[k + 1] === 0x0a && acc[k + 2] === 0x0d && acc[k + 3] === 0x0a) {
          end = k + 4;
          break;
        }
      }
    }
    if (end === -1 || end > max) {
      if (total > max || end > max) throw new Http1HeadTooLargeError(this.side, max);
      for (let k = Math.max(0, prev); k < total; k++) {
        if (acc[k] === 0x0a && (k === 0 || acc[k - 1] !== 0x0d)) {
          this.state = S_IDLE;
          throw new Http1SyntaxError(this.side, 'bare_lf', 'LF without CR in the trailer section');
        }
      }
      this.trailerLen = total;
      return this.needMore(len);
    }
    this.trailerLen = 0;
    if (end > 2) {
      // Its own Buffer: the fields outlive the decoder's scratch space.
      const section = Buffer.from(acc.subarray(0, end));
      const t = this.trailers;
      t.reset(section, 0);
      parseFields(section, 0, end, t, this.limits, this.side);
      for (let k = 0; k < t.count; k++) {
        const kind = t.kinds[k];
        if (kind === F_CONTENT_LENGTH || kind === F_TRANSFER_ENCODING || kind === F_HOST)
          throw this.error('trailer', `${t.name(k)} is not allowed in a trailer section`);
      }
    }
    this.state = S_DONE;
    return this.decode(buf, i + (end - prev));
  }

  private error(reason: string, detail: string): Http1ChunkError {
    this.state = S_IDLE;
    return new Http1ChunkError(this.side, reason, detail);
  }
}
