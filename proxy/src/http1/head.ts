/**
 * Strict HTTP/1.1 head parsing (RFC 9112 §2-§5, §6.1-§6.3; docs/proxy.md "HTTP/1.1 codec"):
 * the request line or status line and the field lines of one complete head, parsed from a
 * Buffer by index in one pass. Fields are kept as byte ranges into that Buffer (no string
 * is made unless asked for); the fields that frame the body or are hop-by-hop are classified
 * while parsing, so the encoder and the framing never compare names again.
 *
 * What is refused, each with its own reason code (errors.ts Http1*Error): bare CR, bare LF,
 * obs-fold and whitespace before the first field, whitespace between a field name and its
 * colon, any byte outside tchar in a name, controls (but HTAB) in a value, methods Node's
 * parser does not know, an HTTP version other than 1.0 / 1.1, more than one Content-Length
 * (even equal ones, even as a list), a Content-Length that is not 1*DIGIT or not below 2^53,
 * Transfer-Encoding together with Content-Length, Transfer-Encoding in HTTP/1.0, a coding
 * list whose last coding is not `chunked` or that applies `chunked` twice, more than one Host.
 *
 * The Buffer a head points into must not change while the head is in use (socket chunks are
 * never reused by Node; HeadReader copies a head that arrived in pieces into its own Buffer).
 */
import {
  Http1FramingError,
  Http1HeadTooLargeError,
  Http1SyntaxError,
  Http1TooManyFieldsError,
} from '../errors.js';
import type { Http1Side } from '../errors.js';

export interface HeadLimits {
  /** largest head (start line through the empty line) or trailer section, in bytes */
  readonly maxHeadBytes: number;
  /** most field lines in a head or trailer section */
  readonly maxFields: number;
}

// What a field is, decided once while parsing (Head.kinds).
export const F_OTHER = 0;
export const F_CONTENT_LENGTH = 1;
export const F_TRANSFER_ENCODING = 2;
export const F_CONNECTION = 3;
export const F_KEEP_ALIVE = 4;
export const F_UPGRADE = 5;
export const F_TE = 6;
export const F_TRAILER = 7;
/** Proxy-Connection, Proxy-Authorization, ...: meant for this hop's proxy only */
export const F_PROXY = 8;
export const F_HOST = 9;
export const F_EXPECT = 10;
/** x-remora-peer-identity in any case and `_`/`-` spelling: only the proxy may set it (DESIGN §3) */
export const F_PEER_IDENTITY = 11;
/**
 * Content_Length, Transfer---Encoding, ...: not the framing field, but one that a parser which
 * folds `_` into `-` (CGI-style servers) or squeezes delimiters would read as one. Refused.
 */
const F_LOOKALIKE = 12;
/** Date: end-to-end; told apart so that a stage adds its own only when none is forwarded */
export const F_DATE = 13;

// Request-target forms (RFC 9112 §3.2).
export const TARGET_ORIGIN = 0;
export const TARGET_ABSOLUTE = 1;
export const TARGET_AUTHORITY = 2;
export const TARGET_ASTERISK = 3;
/** `GET  HTTP/1.1`: no target at all; the desync corpus counts it Compliant; forward it as `/` */
export const TARGET_EMPTY = 4;

// Byte classes.
const C_TCHAR = 1;
/** allowed inside a field value: HTAB, SP, VCHAR, obs-text */
const C_VALUE = 2;
/** allowed in a request-target: VCHAR and obs-text (raw UTF-8 paths are common) */
const C_TARGET = 4;
const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  let k = 0;
  if (c === 0x09 || (c >= 0x20 && c !== 0x7f)) k |= C_VALUE;
  if (c > 0x20 && c !== 0x7f) k |= C_TARGET;
  if (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))
  )
    k |= C_TCHAR;
  CLASS[c] = k;
}

/**
 * `s` is a token (RFC 9110 §5.6.2), for a name or method given as a string (a layer's field,
 * a method the client did not send): the codec's byte classes, one loop. A regex test cost
 * ~450 instructions per string where the string was built by concatenation (the runtime
 * flattens it first), the loop a few per character.
 */
export function isTokenText(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || (CLASS[c]! & C_TCHAR) === 0) return false;
  }
  return true;
}

/** `s` may be a field value: HTAB, SP, VCHAR and obs-text only (no CR, LF or other control). */
export function isValueText(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || (CLASS[c]! & C_VALUE) === 0) return false;
  }
  return true;
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const DEL = 0x7f;

/** 2^53 - 1 has 16 digits; 15 keeps every accepted length exact as a double. */
const MAX_LENGTH_DIGITS = 15;

/**
 * The methods Node's own parser (llhttp) accepts for HTTP, so the codec is never laxer than
 * node:http was (test/proxy/http1/head.test.ts checks the list against `http.METHODS`).
 */
export const METHODS: readonly string[] = Object.freeze([
  'ACL',
  'BIND',
  'CHECKOUT',
  'CONNECT',
  'COPY',
  'DELETE',
  'GET',
  'HEAD',
  'LINK',
  'LOCK',
  'M-SEARCH',
  'MERGE',
  'MKACTIVITY',
  'MKCALENDAR',
  'MKCOL',
  'MOVE',
  'NOTIFY',
  'OPTIONS',
  'PATCH',
  'POST',
  'PROPFIND',
  'PROPPATCH',
  'PURGE',
  'PUT',
  'REBIND',
  'REPORT',
  'SEARCH',
  'SOURCE',
  'SUBSCRIBE',
  'TRACE',
  'UNBIND',
  'UNLINK',
  'UNLOCK',
  'UNSUBSCRIBE',
]);

const EMPTY = Buffer.alloc(0);

/** The fields of a head or trailer section, as ranges into `buf`, plus what framing needs. */
export class Fields {
  buf: Buffer = EMPTY;
  /** first byte of the head (the start line) or trailer section */
  start = 0;
  /** one past the final CRLF of the empty line */
  end = 0;
  count = 0;
  /** per field: name start, name end (the colon), value start, value end (OWS trimmed) */
  ranges: Int32Array;
  kinds: Uint8Array;
  /** Content-Length's value, or -1 */
  contentLength = -1;
  /** Transfer-Encoding was present (on a valid head: its last coding is chunked) */
  chunked = false;
  /** the Transfer-Encoding codings, lower case, joined ", " (what is forwarded), or '' */
  codings = '';
  connectionClose = false;
  connectionKeepAlive = false;
  connectionUpgrade = false;
  /** index of the Upgrade field, or -1 */
  upgrade = -1;
  /** index of the Host field, or -1 */
  host = -1;
  expectContinue = false;
  /** an Expect field asks for something other than 100-continue (answered 417, RFC 9110 §10.1.1) */
  expectOther = false;
  /** ranges (start, end) of the other tokens Connection names: those fields are hop-by-hop too */
  named: number[] = [];

  constructor(maxFields: number) {
    this.ranges = new Int32Array(maxFields * 4);
    this.kinds = new Uint8Array(maxFields);
  }

  /** buf[start..end) as one latin1 string, decoded on the first name or value asked for */
  private text: string | null = null;

  reset(buf: Buffer, start: number): void {
    this.buf = buf;
    this.text = null;
    this.start = start;
    this.end = start;
    this.count = 0;
    this.contentLength = -1;
    this.chunked = false;
    this.codings = '';
    this.connectionClose = false;
    this.connectionKeepAlive = false;
    this.connectionUpgrade = false;
    this.upgrade = -1;
    this.host = -1;
    this.expectContinue = false;
    this.expectOther = false;
    this.named.length = 0;
  }

  /**
   * The parsed head or section as a string, decoded once: every name and value is a slice of
   * it, so a head of n fields costs one decode instead of 2n (each a native call with its
   * argument checks). Asked only once the section is parsed (`end` is final).
   */
  textOf(): string {
    let t = this.text;
    if (t === null) {
      t = this.buf.toString('latin1', this.start, this.end);
      this.text = t;
    }
    return t;
  }

  /** buf[from..to) of the parsed section, as a slice of its decoded text */
  textAt(from: number, to: number): string {
    return this.textOf().slice(from - this.start, to - this.start);
  }

  name(i: number): string {
    return this.textAt(this.ranges[i * 4] as number, this.ranges[i * 4 + 1] as number);
  }

  value(i: number): string {
    return this.textAt(this.ranges[i * 4 + 2] as number, this.ranges[i * 4 + 3] as number);
  }

  nameLength(i: number): number {
    return (this.ranges[i * 4 + 1] as number) - (this.ranges[i * 4] as number);
  }

  /** Field `i` is named `Close` in any case (a token Connection may name, see keptResponseLines). */
  namedClose(i: number): boolean {
    return this.nameLength(i) === 5 && eqLower(this.buf, this.ranges[i * 4] as number, L_CLOSE);
  }

  /** Where field line `i` starts and ends (through its CRLF), for forwarding it as it came. */
  lineStart(i: number): number {
    return this.ranges[i * 4] as number;
  }

  lineEnd(i: number): number {
    return i + 1 < this.count ? (this.ranges[(i + 1) * 4] as number) : this.end - 2;
  }

  /** Is field `i` named by a token of Connection (so hop-by-hop)? Case-insensitive. */
  namedByConnection(i: number): boolean {
    const named = this.named;
    if (named.length === 0) return false;
    const buf = this.buf;
    const ns = this.ranges[i * 4] as number;
    const len = (this.ranges[i * 4 + 1] as number) - ns;
    for (let t = 0; t < named.length; t += 2) {
      const ts = named[t] as number;
      if ((named[t + 1] as number) - ts !== len) continue;
      let k = 0;
      while (k < len && lower(buf[ns + k] as number) === lower(buf[ts + k] as number)) k++;
      if (k === len) return true;
    }
    return false;
  }

  /** A flat [name, value, ...] list of strings (for tests, logs and the slow paths). */
  toArray(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.name(i), this.value(i));
    return out;
  }
}

export class RequestHead extends Fields {
  /** interned for the common methods */
  method = 'GET';
  targetStart = 0;
  targetEnd = 0;
  targetForm = TARGET_ORIGIN;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 */
  minor = 1;

  target(): string {
    return this.textAt(this.targetStart, this.targetEnd);
  }
}

export class ResponseHead extends Fields {
  status = 0;
  minor = 1;
  reasonStart = 0;
  reasonEnd = 0;

  reasonPhrase(): string {
    return this.textAt(this.reasonStart, this.reasonEnd);
  }
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/**
 * `name` is the ASCII lower-case `lower`, in any case: no allocation and no Unicode case
 * mapping (toLowerCase would also fold U+212A KELVIN SIGN into `k`). For one check of a string
 * that is not otherwise lower-cased; where a name is compared against several literals,
 * lower-casing it once and comparing with `===` counted fewer instructions
 * (docs/performance.md).
 */
export function sameName(name: string, lower: string): boolean {
  const n = lower.length;
  if (name.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    const w = lower.charCodeAt(i);
    if (c !== w && (c < 0x41 || c > 0x5a || c + 0x20 !== w)) return false;
  }
  return true;
}

/** buf[at..at+lit.length) equals the lower-case ASCII `lit`, ignoring case (buf holds a token). */
function eqLower(buf: Buffer, at: number, lit: Uint8Array): boolean {
  for (let k = 0; k < lit.length; k++) if (((buf[at + k] as number) | 0x20) !== lit[k]) return false;
  return true;
}

const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));
const L_TE = bytes('te');
const L_HOST = bytes('host');
const L_DATE = bytes('date');
const L_EXPECT = bytes('expect');
const L_TRAILER = bytes('trailer');
const L_UPGRADE = bytes('upgrade');
const L_CONNECTION = bytes('connection');
const L_KEEP_ALIVE = bytes('keep-alive');
const L_CONTENT_LENGTH = bytes('content-length');
const L_TRANSFER_ENCODING = bytes('transfer-encoding');
const L_PROXY_ = bytes('proxy-');
const L_CHUNKED = bytes('chunked');
const L_CLOSE = bytes('close');
const L_100_CONTINUE = bytes('100-continue');
const L_PEER_IDENTITY = bytes('x-remora-peer-identity');

function kindOf(buf: Buffer, ns: number, len: number): number {
  switch (len) {
    case 2:
      return eqLower(buf, ns, L_TE) ? F_TE : F_OTHER;
    case 4:
      return eqLower(buf, ns, L_HOST) ? F_HOST : eqLower(buf, ns, L_DATE) ? F_DATE : F_OTHER;
    case 6:
      return eqLower(buf, ns, L_EXPECT) ? F_EXPECT : proxyPrefixed(buf, ns);
    case 7:
      return eqLower(buf, ns, L_TRAILER)
        ? F_TRAILER
        : eqLower(buf, ns, L_UPGRADE)
          ? F_UPGRADE
          : proxyPrefixed(buf, ns);
    case 10:
      return eqLower(buf, ns, L_CONNECTION)
        ? F_CONNECTION
        : eqLower(buf, ns, L_KEEP_ALIVE)
          ? F_KEEP_ALIVE
          : proxyPrefixed(buf, ns);
    case 14:
      if (eqLower(buf, ns, L_CONTENT_LENGTH)) return F_CONTENT_LENGTH;
      return lookalike(buf, ns, len) ? F_LOOKALIKE : proxyPrefixed(buf, ns);
    case 17:
      if (eqLower(buf, ns, L_TRANSFER_ENCODING)) return F_TRANSFER_ENCODING;
      return lookalike(buf, ns, len) ? F_LOOKALIKE : proxyPrefixed(buf, ns);
    case 22:
      if (peerIdentity(buf, ns)) return F_PEER_IDENTITY;
      return lookalike(buf, ns, len) ? F_LOOKALIKE : proxyPrefixed(buf, ns);
    default:
      if (len < 7) return F_OTHER;
      if (len > 14 && lookalike(buf, ns, len)) return F_LOOKALIKE;
      return proxyPrefixed(buf, ns);
  }
}

const L_CONTENTLENGTH = bytes('contentlength');
const L_TRANSFERENCODING = bytes('transferencoding');

/** Does the name, lower case and without `-` and `_`, spell a framing field? */
function lookalike(buf: Buffer, ns: number, len: number): boolean {
  const c0 = (buf[ns] as number) | 0x20;
  const lit = c0 === 0x63 ? L_CONTENTLENGTH : c0 === 0x74 ? L_TRANSFERENCODING : undefined;
  if (lit === undefined) return false;
  let k = 0;
  for (let i = ns; i < ns + len; i++) {
    const c = buf[i] as number;
    if (c === 0x2d || c === 0x5f) continue;
    if (k === lit.length || (c | 0x20) !== lit[k]) return false;
    k++;
  }
  return k === lit.length;
}

function proxyPrefixed(buf: Buffer, ns: number): number {
  return eqLower(buf, ns, L_PROXY_) ? F_PROXY : F_OTHER;
}

function peerIdentity(buf: Buffer, ns: number): boolean {
  for (let k = 0; k < 22; k++) {
    let c = (buf[ns + k] as number) | 0x20;
    if (c === 0x7f) c = 0x2d; // '_' | 0x20 is DEL: the `_` spelling of `-`
    if (c !== L_PEER_IDENTITY[k]) return false;
  }
  return true;
}

/** Each known method with its bytes, by length, so a method is matched without making a string. */
const METHODS_BY_LENGTH: { s: string; b: Uint8Array }[][] = [];
for (const m of METHODS) (METHODS_BY_LENGTH[m.length] ??= []).push({ s: m, b: bytes(m) });

/** The interned method string for buf[s..e), or a refusal. */
function methodOf(buf: Buffer, s: number, e: number, side: Http1Side): string {
  const n = e - s;
  const c0 = buf[s] as number;
  if (n === 3 && c0 === 0x47 && buf[s + 1] === 0x45 && buf[s + 2] === 0x54) return 'GET';
  const list = METHODS_BY_LENGTH[n];
  if (list !== undefined) {
    for (const m of list) {
      let k = 0;
      while (k < n && buf[s + k] === m.b[k]) k++;
      if (k === n) return m.s;
    }
  }
  const m = buf.toString('latin1', s, e);
  throw new Http1SyntaxError(side, 'method', `unknown method ${JSON.stringify(m.slice(0, 32))}`);
}

/** `HTTP/1.0` or `HTTP/1.1` at buf[i]: the minor version, or -1. */
function versionAt(buf: Buffer, i: number): number {
  if (
    buf[i] !== 0x48 ||
    buf[i + 1] !== 0x54 ||
    buf[i + 2] !== 0x54 ||
    buf[i + 3] !== 0x50 ||
    buf[i + 4] !== 0x2f ||
    buf[i + 5] !== 0x31 ||
    buf[i + 6] !== 0x2e
  )
    return -1;
  const m = buf[i + 7];
  return m === 0x31 ? 1 : m === 0x30 ? 0 : -1;
}

/**
 * Parses the request head in buf[start..end), where `end` is one past the CRLFCRLF that
 * ends it (HeadReader found it). Throws an Http1*Error for anything not allowed.
 */
export function parseRequestHead(
  buf: Buffer,
  start: number,
  end: number,
  head: RequestHead,
  limits: HeadLimits,
): void {
  head.reset(buf, start);
  let i = start;
  // method SP
  while (CLASS[buf[i] as number]! & C_TCHAR) i++;
  if (i === start || buf[i] !== SP) {
    throw new Http1SyntaxError(
      'request',
      i === start ? 'method' : 'request_line',
      'request line is not "method SP target SP version"',
    );
  }
  head.method = methodOf(buf, start, i, 'request');
  // request-target SP
  const ts = ++i;
  while (CLASS[buf[i] as number]! & C_TARGET) i++;
  const te = i;
  if (buf[i] !== SP) {
    throw new Http1SyntaxError(
      'request',
      buf[i] === CR || buf[i] === LF ? 'version' : 'target',
      buf[i] === CR || buf[i] === LF
        ? 'no HTTP version (HTTP/0.9 is not supported)'
        : 'control character or whitespace in the request target',
    );
  }
  head.targetStart = ts;
  head.targetEnd = te;
  head.targetForm = targetForm(buf, ts, te, head.method);
  // HTTP-version CRLF
  const minor = versionAt(buf, i + 1);
  if (minor === -1)
    throw new Http1SyntaxError('request', 'version', 'HTTP version is not HTTP/1.0 or HTTP/1.1');
  head.minor = minor;
  i += 9;
  if (buf[i] !== CR || buf[i + 1] !== LF)
    throw new Http1SyntaxError('request', 'request_line', 'request line does not end in CRLF');
  parseFields(buf, i + 2, end, head, limits, 'request');
  checkFraming(head, 'request', minor);
}

/** Parses a response head in buf[start..end) (see parseRequestHead). */
export function parseResponseHead(
  buf: Buffer,
  start: number,
  end: number,
  head: ResponseHead,
  limits: HeadLimits,
): void {
  head.reset(buf, start);
  const minor = versionAt(buf, start);
  if (minor === -1 || buf[start + 8] !== SP)
    throw new Http1SyntaxError(
      'response',
      'version',
      'status line does not start with HTTP/1.0 or HTTP/1.1 and SP',
    );
  head.minor = minor;
  const d0 = (buf[start + 9] as number) - 0x30;
  const d1 = (buf[start + 10] as number) - 0x30;
  const d2 = (buf[start + 11] as number) - 0x30;
  if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9))
    throw new Http1SyntaxError('response', 'status', 'status code is not three digits 100..999');
  head.status = d0 * 100 + d1 * 10 + d2;
  let i = start + 12;
  if (buf[i] === SP) {
    i++;
    head.reasonStart = i;
    while (CLASS[buf[i] as number]! & C_VALUE) i++;
  } else {
    head.reasonStart = i;
  }
  head.reasonEnd = i;
  if (buf[i] !== CR || buf[i + 1] !== LF)
    throw new Http1SyntaxError(
      'response',
      'status_line',
      'status line has a control character or does not end in CRLF',
    );
  parseFields(buf, i + 2, end, head, limits, 'response');
  checkFraming(head, 'response', minor);
}

function targetForm(buf: Buffer, s: number, e: number, method: string): number {
  if (s === e) return TARGET_EMPTY;
  const c = buf[s];
  if (c === 0x2f) return TARGET_ORIGIN;
  if (c === 0x2a && e - s === 1) return TARGET_ASTERISK;
  if (method === 'CONNECT') return TARGET_AUTHORITY;
  return TARGET_ABSOLUTE;
}

/**
 * Field lines from `i` to `end` (which ends in the empty line's CRLF) into `f`. Shared by heads
 * and trailer sections. Throws on the first fault.
 */
export function parseFields(
  buf: Buffer,
  i: number,
  end: number,
  f: Fields,
  limits: HeadLimits,
  side: Http1Side,
): void {
  const ranges = f.ranges;
  const kinds = f.kinds;
  const max = limits.maxFields;
  let n = 0;
  if (buf[i] === SP || buf[i] === HTAB)
    throw new Http1SyntaxError(side, 'obs_fold', 'whitespace before the first field line');
  for (;;) {
    const ns = i;
    let c = buf[i] as number;
    if (c === CR) {
      if (buf[i + 1] !== LF || i + 2 !== end)
        throw new Http1SyntaxError(side, 'bare_cr', 'CR not followed by LF');
      break;
    }
    while (CLASS[c]! & C_TCHAR) c = buf[++i] as number;
    if (c !== COLON) {
      if (i === ns) {
        throw new Http1SyntaxError(
          side,
          c === LF ? 'bare_lf' : 'field_name',
          c === LF ? 'LF without CR' : c === COLON ? 'empty field name' : 'field name is not a token',
        );
      }
      throw new Http1SyntaxError(
        side,
        c === SP || c === HTAB
          ? 'whitespace_before_colon'
          : c === LF
            ? 'bare_lf'
            : c === CR
              ? 'bare_cr'
              : 'field_name',
        c === SP || c === HTAB
          ? 'whitespace between a field name and its colon'
          : 'field name is not a token',
      );
    }
    if (i === ns) throw new Http1SyntaxError(side, 'field_name', 'empty field name');
    const ne = i;
    if (n === max) throw new Http1TooManyFieldsError(side, max);
    c = buf[++i] as number;
    while (c === SP || c === HTAB) c = buf[++i] as number;
    const vs = i;
    // The hot loop: HTAB, SP..~ and obs-text (C_VALUE), as two compares rather than a table
    // load (its map and bounds checks ran per byte: −10 % instructions for the whole parse).
    // Trailing OWS is trimmed afterwards.
    while (c >= SP ? c !== DEL : c === HTAB) c = buf[++i] as number;
    let ve = i;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    if (c !== CR) {
      throw new Http1SyntaxError(
        side,
        c === LF ? 'bare_lf' : 'field_value',
        c === LF ? 'LF without CR in a field value' : 'control character in a field value',
      );
    }
    if (buf[i + 1] !== LF)
      throw new Http1SyntaxError(side, 'bare_cr', 'CR not followed by LF in a field value');
    i += 2;
    c = buf[i] as number;
    if (c === SP || c === HTAB) throw new Http1SyntaxError(side, 'obs_fold', 'obsolete line folding');
    const k = n * 4;
    ranges[k] = ns;
    ranges[k + 1] = ne;
    ranges[k + 2] = vs;
    ranges[k + 3] = ve;
    const kind = kindOf(buf, ns, ne - ns);
    kinds[n] = kind;
    n++;
    if (kind !== F_OTHER && kind !== F_DATE) fieldFacts(buf, f, kind, n - 1, vs, ve, side);
  }
  f.count = n;
  f.end = end;
}

/** Acts on a field that frames the body or decides the connection. */
function fieldFacts(
  buf: Buffer,
  f: Fields,
  kind: number,
  idx: number,
  vs: number,
  ve: number,
  side: Http1Side,
): void {
  switch (kind) {
    case F_CONTENT_LENGTH: {
      if (f.contentLength !== -1)
        throw new Http1FramingError(side, 'multiple_content_length', 'more than one Content-Length');
      const n = ve - vs;
      if (n === 0 || n > MAX_LENGTH_DIGITS)
        throw new Http1FramingError(side, 'content_length', 'Content-Length is not a number below 2^53');
      let v = 0;
      for (let i = vs; i < ve; i++) {
        const d = (buf[i] as number) - 0x30;
        if (d < 0 || d > 9)
          throw new Http1FramingError(side, 'content_length', 'Content-Length is not 1*DIGIT');
        v = v * 10 + d;
      }
      f.contentLength = v;
      return;
    }
    case F_TRANSFER_ENCODING:
      codings(buf, f, vs, ve, side);
      return;
    case F_CONNECTION:
      connectionTokens(buf, f, vs, ve);
      return;
    case F_UPGRADE:
      f.upgrade = idx;
      return;
    case F_HOST:
      if (f.host !== -1) throw new Http1FramingError(side, 'multiple_host', 'more than one Host');
      f.host = idx;
      return;
    case F_EXPECT:
      if (ve - vs === 12 && eqLower(buf, vs, L_100_CONTINUE)) f.expectContinue = true;
      else f.expectOther = true;
      return;
    case F_LOOKALIKE:
      throw new Http1FramingError(
        side,
        'framing_lookalike',
        `${buf.toString('latin1', f.ranges[idx * 4] as number, f.ranges[idx * 4 + 1] as number)} looks like a framing field`,
      );
    default:
  }
}

/**
 * transfer-coding list: `#( token *( OWS ";" OWS [ token [ BWS "=" BWS ( token / quoted-string ) ] ] ) )`
 * (empty parameters are allowed: the desync corpus counts `chunked;custom_param;` compliant).
 * `chunked` must be last and only once, over every Transfer-Encoding field.
 */
function codings(buf: Buffer, f: Fields, vs: number, ve: number, side: Http1Side): void {
  let i = vs;
  const before = f.codings;
  while (i < ve) {
    let c = buf[i] as number;
    if (c === 0x2c || c === SP || c === HTAB) {
      i++;
      continue; // empty list elements and OWS
    }
    const s = i;
    while (i < ve && CLASS[buf[i] as number]! & C_TCHAR) i++;
    if (i === s)
      throw new Http1FramingError(side, 'transfer_encoding', 'Transfer-Encoding coding is not a token');
    const isChunked = i - s === 7 && eqLower(buf, s, L_CHUNKED);
    if (f.chunked) {
      throw isChunked
        ? new Http1FramingError(side, 'chunked_twice', 'chunked applied more than once')
        : new Http1FramingError(side, 'chunked_not_last', 'a coding after chunked in Transfer-Encoding');
    }
    const name = isChunked ? 'chunked' : buf.toString('latin1', s, i).toLowerCase();
    f.codings = f.codings === '' ? name : `${f.codings}, ${name}`;
    if (isChunked) f.chunked = true;
    // parameters, up to the next ',' (outside quotes)
    for (;;) {
      while (i < ve && ((c = buf[i] as number) === SP || c === HTAB)) i++;
      if (i >= ve || buf[i] === 0x2c) break;
      if (buf[i] !== 0x3b)
        throw new Http1FramingError(side, 'transfer_encoding', 'Transfer-Encoding is not a coding list');
      i++;
      while (i < ve && ((c = buf[i] as number) === SP || c === HTAB)) i++;
      while (i < ve && CLASS[buf[i] as number]! & C_TCHAR) i++;
      while (i < ve && ((c = buf[i] as number) === SP || c === HTAB)) i++;
      if (i < ve && buf[i] === 0x3d) {
        i++;
        while (i < ve && ((c = buf[i] as number) === SP || c === HTAB)) i++;
        if (buf[i] === 0x22) i = quotedEnd(buf, i, ve, side);
        else {
          const p = i;
          while (i < ve && CLASS[buf[i] as number]! & C_TCHAR) i++;
          if (i === p)
            throw new Http1FramingError(side, 'transfer_encoding', 'Transfer-Encoding parameter value');
        }
      }
    }
  }
  // An empty Transfer-Encoding is not "no Transfer-Encoding": some parsers would still see one.
  if (f.codings === before) throw new Http1FramingError(side, 'transfer_encoding', 'empty Transfer-Encoding');
}

/** One past the closing quote of the quoted-string at buf[i]. */
export function quotedEnd(buf: Buffer, i: number, ve: number, side: Http1Side): number {
  i++;
  while (i < ve) {
    const c = buf[i] as number;
    if (c === 0x22) return i + 1;
    if (c === 0x5c) i++;
    i++;
  }
  throw new Http1FramingError(side, 'transfer_encoding', 'unterminated quoted-string');
}

function connectionTokens(buf: Buffer, f: Fields, vs: number, ve: number): void {
  let i = vs;
  while (i < ve) {
    const c = buf[i] as number;
    if (!(CLASS[c]! & C_TCHAR)) {
      i++;
      continue;
    }
    const s = i;
    while (i < ve && CLASS[buf[i] as number]! & C_TCHAR) i++;
    const n = i - s;
    if (n === 5 && eqLower(buf, s, L_CLOSE)) f.connectionClose = true;
    else if (n === 10 && eqLower(buf, s, L_KEEP_ALIVE)) f.connectionKeepAlive = true;
    else if (n === 7 && eqLower(buf, s, L_UPGRADE)) f.connectionUpgrade = true;
    else f.named.push(s, i);
  }
}

function checkFraming(f: Fields, side: Http1Side, minor: number): void {
  if (f.codings === '') return;
  if (f.contentLength !== -1)
    throw new Http1FramingError(
      side,
      'content_length_with_transfer_encoding',
      'both Content-Length and Transfer-Encoding',
    );
  if (minor === 0)
    throw new Http1FramingError(side, 'transfer_encoding_http10', 'Transfer-Encoding in an HTTP/1.0 message');
  if (!f.chunked)
    throw new Http1FramingError(side, 'transfer_encoding', 'Transfer-Encoding does not end in chunked');
  // A response's codings other than chunked would reach the client undecoded and unmarked once
  // the hop-by-hop field is rewritten; the fast upstream client refused them too.
  if (side === 'response' && f.codings !== 'chunked')
    throw new Http1FramingError(side, 'transfer_encoding', 'a response Transfer-Encoding other than chunked');
}

/**
 * Finds complete heads in a byte stream that may split them anywhere: a head inside one chunk
 * is parsed where it lies (no copy); one that arrives in pieces is gathered into a Buffer of
 * its own. The size limit and bare LFs are enforced as bytes arrive, not only at the end, so a
 * slow or LF-only head is refused early instead of held.
 */
export class HeadReader {
  /** after read() returned true: the head is buf[start..end) */
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;
  /** where reading stopped in the chunk given to read() */
  pos = 0;
  private acc: Buffer | undefined = undefined;
  private accLen = 0;
  /** a request's leading empty line ended a chunk with its CR */
  private skipLF = false;

  constructor(
    private readonly side: Http1Side,
    private readonly limits: HeadLimits,
  ) {}

  /** No partial head is held (a close here is a clean one). */
  idle(): boolean {
    return this.accLen === 0;
  }

  reset(): void {
    this.acc = undefined;
    this.accLen = 0;
    this.skipLF = false;
  }

  /**
   * Reads from chunk[off..]: true when a complete head is at buf[start..end) (`pos` is just
   * after it in `chunk`); false when every byte was kept for later.
   */
  read(chunk: Buffer, off: number): boolean {
    const max = this.limits.maxHeadBytes;
    const len = chunk.length;
    if (this.accLen === 0) {
      // RFC 9112 §2.2: empty lines before a request line are ignored (robustness after a body).
      if (this.side === 'request') {
        if (this.skipLF && off < len) {
          if (chunk[off] !== LF) throw new Http1SyntaxError(this.side, 'bare_cr', 'CR not followed by LF');
          this.skipLF = false;
          off++;
        }
        while (off + 1 < len && chunk[off] === CR && chunk[off + 1] === LF) off += 2;
        if (off + 1 === len && chunk[off] === CR) {
          this.skipLF = true; // the LF of this empty line is in the next chunk
          this.pos = len;
          return false;
        }
        if (chunk[off] === LF)
          throw new Http1SyntaxError(this.side, 'bare_lf', 'LF without CR before the request line');
      }
      if (off === len) {
        this.pos = len;
        return false;
      }
      const at = chunk.indexOf(CRLFCRLF, off);
      if (at !== -1 && at + 4 - off <= max) {
        this.buf = chunk;
        this.start = off;
        this.end = at + 4;
        this.pos = at + 4;
        return true;
      }
      if (at !== -1 || len - off > max) throw new Http1HeadTooLargeError(this.side, max);
      this.keep(chunk, off, len);
      this.checkLF(0);
      this.pos = len;
      return false;
    }
    // Continue a gathered head: the terminator may straddle the boundary.
    const prev = this.accLen;
    const take = Math.min(len - off, max + 4 - prev);
    this.keep(chunk, off, off + take);
    const acc = this.acc as Buffer;
    const at = indexOfCRLFCRLF(acc, Math.max(0, prev - 3), this.accLen);
    if (at !== -1 && at + 4 <= max) {
      const end = at + 4;
      this.buf = acc;
      this.start = 0;
      this.end = end;
      this.pos = off + (end - prev);
      this.acc = undefined;
      this.accLen = 0;
      return true;
    }
    if (this.accLen > max) throw new Http1HeadTooLargeError(this.side, max);
    this.checkLF(prev);
    this.pos = len;
    return false;
  }

  /** Appends chunk[s..e) to the gathered bytes. */
  private keep(chunk: Buffer, s: number, e: number): void {
    let acc = this.acc;
    const at = this.accLen;
    const need = at + (e - s);
    if (acc === undefined || acc.length < need) {
      const size = Math.min(Math.max(need, 1024, (acc?.length ?? 0) * 2), this.limits.maxHeadBytes + 4);
      const grown = Buffer.allocUnsafe(size);
      if (acc !== undefined) acc.copy(grown, 0, 0, at);
      acc = grown;
      this.acc = acc;
    }
    chunk.copy(acc, at, s, e);
    this.accLen = need;
  }

  /** A head that is still incomplete may hold no bare LF: refuse it now, not at the size limit. */
  private checkLF(from: number): void {
    const acc = this.acc as Buffer;
    for (let i = from; i < this.accLen; i++) {
      if (acc[i] === LF && (i === 0 || acc[i - 1] !== CR))
        throw new Http1SyntaxError(this.side, 'bare_lf', 'LF without CR in the head');
    }
  }
}

function indexOfCRLFCRLF(b: Buffer, from: number, to: number): number {
  for (let i = b.indexOf(CR, from); i !== -1 && i + 3 < to; i = b.indexOf(CR, i + 1)) {
    if (b[i + 1] === LF && b[i + 2] === CR && b[i + 3] === LF) return i;
  }
  return -1;
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
