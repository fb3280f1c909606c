/**
 * Head serialization for forwarding (RFC 9110 §7.6.1, RFC 9112 §6): the end-to-end field lines
 * go out exactly as they came, copied as runs of whole lines from the parsed Buffer (typically
 * one or two copies per head); hop-by-hop fields are left out; the framing is always the
 * proxy's own, in one canonical form (`content-length: N` or `transfer-encoding: ...chunked`),
 * so no field of the original can be read two ways by the next parser; the proxy's fields
 * follow. One Buffer per head, sized before it is filled.
 *
 * Left out: Connection and every field it names, Keep-Alive, TE, Trailer, Transfer-Encoding,
 * Upgrade (unless the head is forwarded as an upgrade), Proxy-*, Content-Length (re-emitted),
 * Expect on requests (the proxy answers 100-continue itself, as it did with node:http), and
 * x-remora-peer-identity in any spelling (only the proxy sets it, DESIGN §3).
 */
import {
  F_CONNECTION,
  F_CONTENT_LENGTH,
  F_EXPECT,
  F_KEEP_ALIVE,
  F_OTHER,
  F_PEER_IDENTITY,
  F_PROXY,
  F_TE,
  F_TRAILER,
  F_TRANSFER_ENCODING,
  F_UPGRADE,
  isTokenText,
  isValueText,
} from './head.js';
import type { Fields, RequestHead, ResponseHead } from './head.js';
import { BODY_CHUNKED, BODY_LENGTH } from './framing.js';

export interface EncodeOptions {
  /** the framing of the body as it goes out: BODY_LENGTH, BODY_CHUNKED or none (any other) */
  framing: number;
  /** for BODY_LENGTH */
  length: number;
  /** the proxy's own fields, flat [name, value, ...]; checked, never trusted to be clean */
  extra: readonly string[];
  /** a request-target to send instead of the original (absolute-form → origin-form) */
  target?: string | undefined;
  /** forward Upgrade (and send `connection: upgrade`): the tunnel path */
  upgrade?: boolean | undefined;
  /** keep the original Content-Length though no body follows (a response to HEAD, a 304) */
  keepLength?: boolean | undefined;
}

export class EncodeError extends TypeError {
  constructor(what: string) {
    super(`cannot encode the proxy's ${what}`);
    this.name = 'EncodeError';
  }
}

// Scratch for the runs of kept lines: encoding is synchronous, so one set serves every head.
let runs = new Int32Array(64);

/** Is field `i` forwarded (end-to-end, not named by Connection)? */
export function endToEnd(f: Fields, i: number, request: boolean, upgrade: boolean): boolean {
  const k = f.kinds[i];
  if (k === F_OTHER) return !f.namedByConnection(i);
  switch (k) {
    case F_CONNECTION:
    case F_KEEP_ALIVE:
    case F_TE:
    case F_TRAILER:
    case F_TRANSFER_ENCODING:
    case F_CONTENT_LENGTH:
    case F_PROXY:
    case F_PEER_IDENTITY:
      return false;
    case F_UPGRADE:
      return upgrade;
    case F_EXPECT:
      return !request && !f.namedByConnection(i);
    default:
      return !f.namedByConnection(i);
  }
}

/** Collects the runs of forwarded lines into `runs`: how many ints it wrote and the bytes they span. */
function collect(f: Fields, request: boolean, upgrade: boolean): { n: number; bytes: number } {
  if (runs.length < f.count * 2) runs = new Int32Array(f.count * 2);
  let n = 0;
  let bytes = 0;
  let open = -1;
  for (let i = 0; i < f.count; i++) {
    if (endToEnd(f, i, request, upgrade)) {
      if (open === -1) open = f.lineStart(i);
      continue;
    }
    if (open !== -1) {
      const e = f.lineStart(i);
      runs[n++] = open;
      runs[n++] = e;
      bytes += e - open;
      open = -1;
    }
  }
  if (open !== -1) {
    const e = f.end - 2;
    runs[n++] = open;
    runs[n++] = e;
    bytes += e - open;
  }
  RESULT.n = n;
  RESULT.bytes = bytes;
  return RESULT;
}
const RESULT = { n: 0, bytes: 0 };

function framingLine(f: Fields, o: EncodeOptions): string {
  if (o.framing === BODY_LENGTH) return `content-length: ${o.length}\r\n`;
  if (o.framing === BODY_CHUNKED)
    return f.chunked ? `transfer-encoding: ${f.codings}\r\n` : 'transfer-encoding: chunked\r\n';
  if (o.keepLength === true && f.contentLength >= 0) return `content-length: ${f.contentLength}\r\n`;
  return '';
}

function extraBytes(extra: readonly string[]): number {
  let n = 0;
  for (let i = 0; i + 1 < extra.length; i += 2) {
    const name = extra[i] as string;
    const value = extra[i + 1] as string;
    if (!isTokenText(name)) throw new EncodeError(`field name ${JSON.stringify(name.slice(0, 64))}`);
    if (!isValueText(value))
      throw new EncodeError(`field ${name}: a control character or non-latin1 in its value`);
    n += name.length + value.length + 4;
  }
  return n;
}

function writeExtra(out: Buffer, pos: number, extra: readonly string[]): number {
  for (let i = 0; i + 1 < extra.length; i += 2) {
    pos += put(out, pos, extra[i] as string);
    out[pos++] = 0x3a;
    out[pos++] = 0x20;
    pos += put(out, pos, extra[i + 1] as string);
    out[pos++] = 0x0d;
    out[pos++] = 0x0a;
  }
  return pos;
}

function copyRuns(f: Fields, out: Buffer, pos: number, n: number): number {
  const buf = f.buf;
  for (let r = 0; r < n; r += 2) pos += buf.copy(out, pos, runs[r] as number, runs[r + 1] as number);
  return pos;
}

/** After the start line: the kept lines, the proxy's framing and fields, the empty line. */
function finish(
  f: Fields,
  out: Buffer,
  pos: number,
  n: number,
  own: string,
  extra: readonly string[],
  size: number,
): Buffer {
  pos = copyRuns(f, out, pos, n);
  if (own !== '') pos += put(out, pos, own);
  pos = writeExtra(out, pos, extra);
  out[pos++] = 0x0d;
  out[pos++] = 0x0a;
  return pos === size ? out : out.subarray(0, pos);
}

/** The request head to send upstream: `method SP target SP HTTP/1.1`, kept lines, framing, extra. */
export function encodeRequestHead(head: RequestHead, o: EncodeOptions): Buffer {
  const upgrade = o.upgrade === true;
  const { n, bytes } = collect(head, true, upgrade);
  const target = o.target;
  if (target !== undefined && !isTarget(target))
    throw new EncodeError(`target ${JSON.stringify(target.slice(0, 64))}`);
  const lineBytes =
    target === undefined ? head.targetEnd - head.start : head.method.length + 1 + target.length;
  const framing = framingLine(head, o);
  const conn = upgrade ? 'connection: upgrade\r\n' : '';
  const size = lineBytes + 11 + bytes + framing.length + conn.length + extraBytes(o.extra) + 2;
  const out = Buffer.allocUnsafe(size);
  let pos: number;
  if (target === undefined) pos = head.buf.copy(out, 0, head.start, head.targetEnd);
  else {
    pos = put(out, 0, head.method);
    out[pos++] = 0x20;
    pos += put(out, pos, target);
  }
  pos += put(out, pos, ' HTTP/1.1\r\n');
  return finish(head, out, pos, n, framing + conn, o.extra, size);
}

/** The response head to send downstream: `HTTP/1.1 <status and reason as they came>`, kept lines, framing, extra. */
export function encodeResponseHead(head: ResponseHead, o: EncodeOptions): Buffer {
  const upgrade = o.upgrade === true;
  const { n, bytes } = collect(head, false, upgrade);
  const framing = framingLine(head, o);
  const conn = upgrade ? 'connection: upgrade\r\n' : '';
  // "HTTP/1.x " is replaced by our own version (RFC 9110 §6.2); the rest of the line is kept.
  const line = head.reasonEnd - (head.start + 9);
  const size = 9 + line + 2 + bytes + framing.length + conn.length + extraBytes(o.extra) + 2;
  const out = Buffer.allocUnsafe(size);
  let pos = put(out, 0, 'HTTP/1.1 ');
  pos += head.buf.copy(out, pos, head.start + 9, head.reasonEnd);
  out[pos++] = 0x0d;
  out[pos++] = 0x0a;
  return finish(head, out, pos, n, framing + conn, o.extra, size);
}

/** What goes before a chunk's data of `n` bytes (n > 0); the data is followed by CRLF. */
export function chunkPrefix(n: number): string {
  return `${n.toString(16)}\r\n`;
}

export const CRLF: Buffer = Buffer.from('\r\n', 'latin1');
/** The end of a chunked body without trailers. */
export const LAST_CHUNK: Buffer = Buffer.from('0\r\n\r\n', 'latin1');

/** The end of a chunked body with the decoder's trailer section (its forwarded lines). */
export function encodeLastChunk(trailers: Fields): Buffer {
  if (trailers.count === 0) return LAST_CHUNK;
  const { n, bytes } = collect(trailers, false, false);
  const out = Buffer.allocUnsafe(3 + bytes + 2);
  let pos = put(out, 0, '0\r\n');
  pos = copyRuns(trailers, out, pos, n);
  out[pos++] = 0x0d;
  out[pos++] = 0x0a;
  return out.subarray(0, pos);
}

/**
 * The end of a chunked body with a trailer section given flat (names and values the codec
 * parsed and checked, then filtered: http/headers.ts filterTrailers), as latin1 text.
 */
export function lastChunkText(trailers: readonly string[] | null | undefined): string {
  if (trailers == null || trailers.length === 0) return '0\r\n\r\n';
  let t = '0\r\n';
  for (let i = 0; i + 1 < trailers.length; i += 2)
    t += `${trailers[i] as string}: ${trailers[i + 1] as string}\r\n`;
  return `${t}\r\n`;
}

/**
 * Writes a latin1 string (already checked, or our own constant) at `pos`; returns its length.
 * A loop: for the short strings of a head it is several times cheaper than a call into C++.
 */
function put(out: Buffer, pos: number, s: string): number {
  const n = s.length;
  for (let k = 0; k < n; k++) out[pos + k] = s.charCodeAt(k);
  return n;
}

/** VCHAR and obs-text only: a target with SP, a control or a char beyond latin1 could split the line. */
function isTarget(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c > 0xff) return false;
  }
  return true;
}
