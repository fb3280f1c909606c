/**
 * Protocol detection on a connection's first bytes (DESIGN §3). `sniff` is pure; `detect`
 * waits for enough bytes or the timeout. A client that sends nothing first (server-speaks-first
 * protocols: SMTP, MySQL, ...) is relayed as opaque TCP once the timeout fires.
 */
import { METHODS } from 'node:http';
import type { Socket } from 'node:net';
import type { Protocol } from '../metrics/proxy.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
// The methods Node's own parser accepts; anything else would be a 400 there anyway.
const HTTP1_METHODS = new Set(METHODS.filter((m) => m !== 'PRI'));
const LONGEST_METHOD = Math.max(...METHODS.map((m) => m.length));
const SP = 0x20;

/** What the bytes so far say; `undefined` means "need more bytes". */
export function sniff(buf: Buffer): Protocol | undefined {
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
  // HTTP/1.x: a known method token followed by a space.
  const limit = Math.min(buf.length, LONGEST_METHOD + 1);
  for (let i = 0; i < limit; i++) {
    const c = buf[i] as number;
    if (c === SP) return HTTP1_METHODS.has(buf.toString('latin1', 0, i)) ? 'http1' : 'opaque';
    if (c < 0x41 || c > 0x5a) {
      if (c !== 0x2d && c !== 0x5f) return 'opaque'; // methods are upper-case letters, '-' and '_'
    }
  }
  return buf.length > LONGEST_METHOD ? 'opaque' : undefined;
}

export type Detected = (socket: Socket, protocol: Protocol) => void;

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
  const finish = (protocol: Protocol | undefined) => {
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
  const onEnd = () => finish(buffered === undefined ? undefined : 'opaque');
  const onError = () => finish(undefined);
  // The timers phase of the event loop comes before the poll phase that reads sockets: after the
  // engine was busy past the timeout, the client's first bytes may be waiting unread. Deciding
  // from a setImmediate lets that poll run first (regression: HTTP under load taken for opaque,
  // past every L7 policy).
  const timer = setTimeout(() => setImmediate(finish, 'opaque'), timeoutMs);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
}
