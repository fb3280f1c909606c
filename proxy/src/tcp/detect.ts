/**
 * Protocol detection on a connection's first bytes (DESIGN §3, docs/proxy.md "Protocol
 * detection"). `sniff` is pure; `detect` waits for enough bytes or the timeout; `routeFor` turns
 * what was seen, and whether the port must speak HTTP (declared HTTP, or governed by L7 policy),
 * into what the stack does with the connection.
 *
 * A client that sends nothing first (server-speaks-first protocols: SMTP, MySQL, ...) is relayed
 * as opaque TCP once the timeout fires, except on a port that must speak HTTP, where it goes to
 * the HTTP stage (whose own head timeout applies) and never to the opaque relay.
 */
import { METHODS } from 'node:http';
import type { Socket } from 'node:net';
import type { Protocol } from '../metrics/proxy.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
// The methods Node's own parser accepts; anything else would be a 400 there anyway.
const HTTP1_METHODS = new Set(METHODS.filter((m) => m !== 'PRI'));
const LONGEST_METHOD = Math.max(...METHODS.map((m) => m.length));
const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;
/** A method-like run longer than this is no method (custom methods included). */
const MAX_METHOD = 32;
/** How far a first line is read to see whether it ends like a request line. */
export const MAX_FIRST_LINE = 8192;

/**
 * What the first bytes are, beyond the protocols metrics count:
 *   - `http-like`: a request line (`<token> SP <target> SP HTTP/d.d`) whose method Node's
 *     parser does not take (lower case `get`, a custom `BAN`): HTTP to many servers, not to us;
 *   - `http-broken`: a request line with a control byte in its method (`bad\x01 /x HTTP/1.1`),
 *     or any other first line ending in ` HTTP/d.d` that is not a request line we can parse;
 *   - `silent`: the detection timeout passed before the bytes (if any) decided.
 */
export type Sniffed = Protocol | 'http-like' | 'http-broken' | 'silent';

// RFC 9110 tchar.
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;

function isCtl(c: number): boolean {
  return (c < 0x20 && c !== CR && c !== LF) || c === 0x7f;
}

/** What the bytes so far say; `undefined` means "need more bytes". */
export function sniff(buf: Buffer): Sniffed | undefined {
  if (buf.length === 0) return undefined;
  const first = buf[0] as number;
  // TLS record: handshake (22), version 3.x
  if (first === 0x16) {
    if (buf.length < 2) return undefined;
    return buf[1] === 0x03 ? 'tls' : 'opaque';
  }
  // HTTP/2 prior knowledge starts with the fixed preface.
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (buf.compare(H2_PREFACE, 0, n, 0, n) === 0) return n === H2_PREFACE.length ? 'http2' : undefined;
  // HTTP/1.x, the fast path: a known method token followed by a space.
  const limit = Math.min(buf.length, LONGEST_METHOD + 1);
  let i = 0;
  for (; i < limit; i++) {
    const c = buf[i] as number;
    if (c === SP) {
      if (HTTP1_METHODS.has(buf.toString('latin1', 0, i))) return 'http1';
      break;
    }
    if ((c < 0x41 || c > 0x5a) && c !== 0x2d && c !== 0x5f) break; // A-Z, '-', '_'
  }
  if (i === limit && buf.length <= LONGEST_METHOD) return undefined;
  return sniffOther(buf);
}

/**
 * Not a known method: a binary protocol, a text protocol (Redis, memcached, SSH banners), or a
 * request line we must not relay. A method starts with a tchar; a run of tchars and control
 * bytes ended by a space could be one, and then the first line tells: ending in ` HTTP/d.d` it
 * is HTTP-shaped. A control byte in the method followed by ` /` or ` *` is refused without
 * waiting for the line. Anything else is opaque as soon as it shows; only a line with a control
 * byte in its method is waited for (to its end), since it may be a broken request line.
 */
function sniffOther(buf: Buffer): Sniffed | undefined {
  const first = buf[0] as number;
  if (first >= 128 || TCHAR[first] === 0) return 'opaque';
  let ctl = false;
  let i = 1;
  const stop = Math.min(buf.length, MAX_METHOD);
  for (; i < stop; i++) {
    const c = buf[i] as number;
    if (c === SP) break;
    if (c < 128 && TCHAR[c] === 1) continue;
    if (isCtl(c)) {
      ctl = true;
      continue;
    }
    return 'opaque'; // CR, LF, a separator or a byte above 0x7f: no method ends so
  }
  if (i === MAX_METHOD) return 'opaque';
  // Without a control byte, waiting could only turn `opaque` into `http-like`, which every port
  // treats alike but for 400 versus close on a strict one: decide now, so that a short text
  // message (`ping`) is not held for the timeout. With one, wait: it may be a broken request line.
  if (i === buf.length) return ctl ? undefined : 'opaque';
  if (ctl) {
    if (i + 1 === buf.length) return undefined;
    const t = buf[i + 1] as number;
    if (t === 0x2f || t === 0x2a) return 'http-broken';
  }
  const lf = buf.indexOf(LF, i);
  if (lf === -1) return ctl && buf.length < MAX_FIRST_LINE ? undefined : 'opaque';
  const end = lf > 0 && buf[lf - 1] === CR ? lf - 1 : lf;
  if (!endsWithVersion(buf, end)) return 'opaque';
  return ctl ? 'http-broken' : 'http-like';
}

/** `buf[..end)` ends in ` HTTP/d.d`. */
function endsWithVersion(buf: Buffer, end: number): boolean {
  if (end < 9) return false;
  const v = buf.toString('latin1', end - 9, end);
  return /^ HTTP\/\d\.\d$/.test(v);
}

/** What the stack does with a connection (`http2`: the HTTP/2 stage, h2c with prior knowledge). */
export type Route = 'http' | 'http2' | 'relay' | 'reject' | 'close';

/**
 * `strict`: the port is declared HTTP or governed by L7 policy: only HTTP/1 and HTTP/2 pass;
 * what looks like a request line gets 400, anything else is closed, silence goes to the HTTP
 * stage. A broken request line is refused on every port. Otherwise non-HTTP is relayed as
 * opaque TCP. The HTTP/2 preface goes to the HTTP/2 stage on every port (docs/grpc.md).
 */
export function routeFor(s: Sniffed, strict: boolean): Route {
  if (s === 'http1') return 'http';
  if (s === 'http2') return 'http2';
  if (s === 'http-broken') return 'reject';
  if (!strict) return 'relay';
  if (s === 'silent') return 'http';
  return s === 'http-like' ? 'reject' : 'close';
}

/** The protocol label a connection is counted under, once routed. */
export function countedAs(s: Sniffed, route: Route): Protocol {
  if (s === 'http-like' || s === 'http-broken') return route === 'relay' ? 'opaque' : 'http1';
  if (s === 'silent') return route === 'http' ? 'http1' : 'opaque';
  return s;
}

export type Detected = (socket: Socket, sniffed: Sniffed) => void;

/**
 * Reads until `sniff` decides or `timeoutMs` passes, puts the bytes back (`unshift`) and calls
 * `done` with the socket paused, so the next stage reads them again from the start. `gone` is
 * called instead when the client closes or errors before anything was decided.
 */
export function detect(
  socket: Socket,
  timeoutMs: number,
  done: Detected,
  gone: (socket: Socket) => void,
): void {
  let buffered: Buffer | undefined;
  let finished = false;
  const finish = (protocol: Sniffed | undefined) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.pause();
    if (buffered !== undefined) socket.unshift(buffered);
    if (protocol === undefined) gone(socket);
    else done(socket, protocol);
  };
  const onData = (chunk: Buffer) => {
    buffered = buffered === undefined ? chunk : Buffer.concat([buffered, chunk]);
    const p = sniff(buffered);
    if (p !== undefined) finish(p);
  };
  // A client that half-closes after a few bytes still gets relayed what it sent.
  const onEnd = () => finish(buffered === undefined ? undefined : (sniff(buffered) ?? 'opaque'));
  const onError = () => finish(undefined);
  // The timers phase of the event loop comes before the poll phase that reads sockets: after the
  // engine was busy past the timeout, the client's first bytes may be waiting unread. Deciding
  // from a setImmediate lets that poll run first (regression: HTTP under load taken for opaque,
  // past every L7 policy).
  const timer = setTimeout(() => setImmediate(finish, 'silent'), timeoutMs);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
}
